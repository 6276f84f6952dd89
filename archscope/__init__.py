"""archscope: see what a convolutional network does to a tensor.

>>> import archscope
>>> t = archscope.trace("alexnet")          # meta device: no weights allocated
>>> t.row("conv").output_shape
[1, 256, 5, 5]
>>> t.totals.params
46764746

Everything heavy is imported lazily, so ``import archscope`` (and the CLI's start-up) stays fast.
"""
__version__ = "0.1.0"

_LAZY = {
    "trace": ("archscope.trace", "trace"),
    "Trace": ("archscope.trace", "Trace"),
    "check": ("archscope.trace.check", "check"),
    "scan_sizes": ("archscope.trace.check", "scan_sizes"),
    "get_model": ("archscope.zoo", "get_model"),
    "list_models": ("archscope.zoo", "list_models"),
    "register_model": ("archscope.zoo", "register_model"),
    "render": ("archscope.report", "render"),
    "memory": ("archscope.trace.memory", "memory"),
    "compare": ("archscope.trace.compare", "compare"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'archscope' has no attribute {name!r}")


__all__ = list(_LAZY)
