"""``archscope compare``: several models side by side, one row each.

Every figure comes from the same machinery as the single-model commands (trace, memory,
check, the size solver), at each model's default input unless one is given.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from archscope.analysis.api import trace
from archscope.analysis.check import check
from archscope.analysis.diagnose.solver import smallest_running_side
from archscope.analysis.memory import memory
from archscope.analysis.records import Result
from archscope.errors import ArchscopeError, UsageError, first_line
from archscope.inputs import resolve_inputs
from archscope.models import load_model, registry


@dataclass
class Comparison:
    model: str
    input_shape: Any
    params: int
    flops: int
    train_flops: Optional[int]  # one training step (forward + backward) at ``batch``
    memory_bytes: Optional[int]  # training-step peak at ``batch``
    smallest_side: Optional[int]  # the smallest square side at which the whole model runs
    first_fc_width: Optional[int]  # features reaching the first Linear at the default input
    output_rf: Optional[List[int]]  # receptive field of the deepest spatial feature map
    batch: int
    note: Optional[str] = None
    output_rf_whole: bool = False  # that feature map has mixed every position (after global pooling)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Comparisons(Result, list):
    """The rows of a comparison: a list of ``Comparison`` that renders as one table."""

    def to_dict(self) -> List[Dict[str, Any]]:
        return [c.to_dict() for c in self]

    def summary(self) -> str:
        return f"{len(self)} models: {', '.join(c.model for c in self)}"


def _deepest_field(t) -> Optional[dict]:
    """The receptive field of the deepest spatial feature map (the last row whose output still has
    spatial axes: GoogLeNet's 1×1024×1×1 after its global pool, AlexNet's 1×256×5×5)."""
    def spatial(shape) -> bool:
        return isinstance(shape, list) and len(shape) >= 3 and all(isinstance(d, int) for d in shape)

    fields = [r.rf for r in t.rows if r.rf and spatial(r.output_shape)]
    return fields[-1] if fields else None


def _smallest_running_side(module, shape) -> Optional[int]:
    if shape is None or len(shape) != 4:
        return None
    return smallest_running_side(module, shape)[0]


def compare_one(spec: Any, batch: int = 1, model_kwargs: Optional[Dict[str, Any]] = None,
                input_size=None) -> Comparison:
    kwargs = dict(model_kwargs or {})
    t = trace(spec, depth=99, rf=True, model_kwargs=kwargs, batch=batch, input_size=input_size)
    notes = [t.note] if t.note else []
    # FLOPs are linear in the batch; BatchNorm in train mode needs two images, so count at >= 2.
    step_batch = max(batch, 2)
    train_flops = memory_bytes = None
    try:
        train_flops = trace(spec, train=True, batch=step_batch, model_kwargs=kwargs,
                            input_size=input_size).totals.train_flops * batch // step_batch
    except ArchscopeError as error:
        notes.append(f"training FLOPs: {first_line(error)}")
    try:
        memory_bytes = memory(spec, batch=batch, model_kwargs=kwargs, input_size=input_size).training_bytes
    except ArchscopeError as error:
        notes.append(f"memory: {first_line(error)}")
    first_fc = None
    report = check(spec, model_kwargs=kwargs, input_size=input_size)
    linear = report.first_linear()
    if linear is not None:
        first_fc = linear.arriving
    deepest = _deepest_field(t)
    loaded = load_model(spec, device="meta", **kwargs)
    shape = resolve_inputs(input_size, loaded.module, loaded.default_input).shape
    return Comparison(t.model, t.input_shape, t.totals.params, t.totals.flops, train_flops, memory_bytes,
                      _smallest_running_side(loaded.module, shape), first_fc,
                      deepest["size"] if deepest else None, batch, "; ".join(notes) or None,
                      bool(deepest and deepest.get("whole_input")))


def compare(models: Sequence[Any], batch: int = 1, model_kwargs: Optional[Dict[str, Any]] = None,
            input_size=None) -> "Comparisons":
    """One ``Comparison`` per model; builder options apply to the models that accept them.
    ``input_size`` (a side or a shape) is given to every model; without it each takes its default."""
    if not models:
        raise UsageError("name at least one model to compare")
    if batch < 1:
        raise UsageError(f"bad --batch {batch}: it must be a positive integer")
    return Comparisons(compare_one(spec, batch, _accepted(spec, model_kwargs or {}), input_size) for spec in models)


def _accepted(spec: Any, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``--ratio 8`` in a comparison of VGG and GoogLeNet applies to VGG only."""
    if not kwargs or not isinstance(spec, str) or ":" in spec:
        return kwargs
    entry = registry.get_entry(spec)
    if entry.accepts_any_keyword():
        return kwargs
    return {k: v for k, v in kwargs.items() if k in entry.kwargs()}
