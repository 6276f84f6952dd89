"""Analysis: run models (hooks, dispatch-level counting, meta device by default) and return
plain result records. Nothing here renders; ``archscope.report`` does."""
from archscope.analysis.api import trace
from archscope.analysis.records import FLOPS_CONVENTION, LayerRow, Result, Totals, Trace

__all__ = ["FLOPS_CONVENTION", "LayerRow", "Result", "Totals", "Trace", "trace"]
