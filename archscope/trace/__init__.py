"""Run models on a dummy input and record what every layer does."""
from archscope.trace.tracer import FLOPS_CONVENTION, LayerRow, Totals, Trace, trace

__all__ = ["FLOPS_CONVENTION", "LayerRow", "Totals", "Trace", "trace"]
