"""archscope: see what a convolutional network does to a tensor.

>>> import archscope
>>> t = archscope.trace("alexnet")          # meta device: no weights allocated
>>> t.row("conv").output_shape
[1, 256, 5, 5]
>>> t.totals.params
46764746

This package is the façade above the layers (models → analysis → report): asking it for any
API function also imports the report layer, which plugs rendering into every result, so a
result shows its table in a terminal and in Jupyter. Everything heavy is imported lazily, so
``import archscope`` (and the CLI's start-up) stays fast.
"""
__version__ = "0.1.0"

_LAZY = {
    "trace": ("archscope.analysis.api", "trace"),
    "Trace": ("archscope.analysis.records", "Trace"),
    "check": ("archscope.analysis.check", "check"),
    "scan_sizes": ("archscope.analysis.check", "scan_sizes"),
    "memory": ("archscope.analysis.memory", "memory"),
    "time": ("archscope.analysis.timing", "time_model"),
    "hardware": ("archscope.analysis.hardware", "parse_hardware"),
    "compare": ("archscope.analysis.compare", "compare"),
    "get_model": ("archscope.models", "get_model"),
    "list_models": ("archscope.models", "list_models"),
    "register_model": ("archscope.models", "register_model"),
    "graph": ("archscope.report.diagram", "diagram"),
    "report": ("archscope.report.page", "page"),
    "render": ("archscope.report", "render"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        importlib.import_module("archscope.report")  # plugs rendering into every result
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'archscope' has no attribute {name!r}")


def __dir__():
    """The API for tab completion: the lazy names are not attributes until first asked for."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = list(_LAZY)
