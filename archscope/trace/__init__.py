"""Run models on a dummy input and record what every layer does."""
import sys
import types

from archscope.trace.tracer import FLOPS_CONVENTION, LayerRow, Totals, Trace, trace

__all__ = ["FLOPS_CONVENTION", "LayerRow", "Totals", "Trace", "trace"]


class _CallableModule(types.ModuleType):
    """Once imported, ``archscope.trace`` names this package, shadowing the function of the
    same name that ``import archscope`` promises; making the package callable keeps
    ``archscope.trace("vgg")`` working either way."""

    def __call__(self, *args, **kwargs):
        return trace(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
