"""The records a trace produces: one ``LayerRow`` per row, ``Totals``, and the ``Trace``.

Plain dataclasses with ``to_dict()``, and the ``Result`` base every result type shares.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple

from archscope.analysis.counter import CONVENTION as FLOPS_CONVENTION
from archscope.inputs import shape_text


class Result:
    """Base of every result: ``to_dict()``/``to_json()``; in a terminal (``__rich__``), in Jupyter
    (``_repr_html_``) and as ``str()`` it shows its table.

    Rendering lives in ``archscope.report``, a layer above this one, so a result never imports
    it. Instead the report layer plugs itself in here when it is imported (``Result.show`` and
    ``Result.html``), and the package façade (``import archscope``) imports the report layer
    before handing out any API function. Without it a result still has its one-line ``repr``.
    """

    # Filled by archscope.report: result → rich renderable; rich renderable → HTML; → plain text.
    show: ClassVar[Optional[Callable[["Result"], Any]]] = None
    html: ClassVar[Optional[Callable[[Any], str]]] = None
    text: ClassVar[Optional[Callable[[Any], str]]] = None

    def summary(self) -> str:
        """One line: what this result is about (``repr`` shows it)."""
        return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.summary()}>"

    def __str__(self) -> str:
        if Result.show is None or Result.text is None:
            return repr(self)
        return Result.text(Result.show(self))

    def to_dict(self) -> Any:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __rich__(self):
        if Result.show is None:
            return repr(self)
        return Result.show(self)

    def _repr_html_(self) -> Optional[str]:
        if Result.show is None or Result.html is None:
            return None  # Jupyter then falls back to repr()
        return Result.html(Result.show(self))


@dataclass
class LayerRow:
    """One row of a trace: a module at the requested depth, or the work a parent did itself."""

    name: str
    type: str
    depth: int
    output_shape: Any  # [1, 96, 54, 54]; a list (or {key: shape}) for several outputs; None if it never ran
    input_shape: Any
    params: int
    trainable_params: int
    flops: int
    calls: int
    # "module" | "container" (never called itself; its children were) | "self" (a parent's own
    # forward/parameters) | "other" (ops outside any module) | "total"
    kind: str = "module"
    train_flops: Optional[int] = None  # forward + backward of one training step (``--train``)
    rf: Optional[Dict[str, Any]] = None  # receptive field of the output (``--rf``): size, jump, start per axis
    # The call paths whose work this row sums, as (path, with everything below it); path None:
    # ops outside any module. Lets any per-path measure (bytes, seconds) be summed like FLOPs.
    paths: Tuple[Tuple[Optional[str], bool], ...] = field(default=(), repr=False, compare=False)
    # Every call's output shape, in call order, when a module called several times gave different
    # ones (torchvision's Bottleneck calls one ReLU at 64 and at 256 channels); None otherwise, and
    # ``output_shape`` is then every call's shape. With it, ``output_shape`` is the last call's.
    call_shapes: Optional[List[Any]] = None

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["macs"] = self.macs
        del d["paths"]
        for optional in ("train_flops", "rf", "call_shapes"):
            if d[optional] is None:
                del d[optional]
        return d


@dataclass
class Totals:
    params: int
    trainable_params: int
    flops: int
    train_flops: Optional[int] = None  # forward + backward of one training step, when asked for

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> Dict[str, int]:
        d = {"params": self.params, "trainable_params": self.trainable_params,
             "flops": self.flops, "macs": self.macs}
        if self.train_flops is not None:
            d["train_flops"] = self.train_flops
        return d


@dataclass(repr=False)
class Trace(Result):
    """What one forward pass did, layer by layer. Renders itself in a terminal and in Jupyter."""

    model: str
    input_shape: Any  # one shape, or a list / {name: shape} for several inputs
    output_shape: Any
    device: str
    depth: int
    rows: List[LayerRow]
    totals: Totals
    options: Dict[str, Any] = field(default_factory=dict)
    note: Optional[str] = None  # e.g. "fell back to CPU"
    flops_convention: str = FLOPS_CONVENTION
    uncounted_ops: Dict[str, int] = field(default_factory=dict)  # "aten.foo" → times run, no formula
    input_dtypes: Any = None  # ["float32"], one per input; None when every input is float32

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "options": self.options,
            "input_shape": self.input_shape,
            "input_dtypes": self.input_dtypes,
            "output_shape": self.output_shape,
            "device": self.device,
            "depth": self.depth,
            "flops_convention": self.flops_convention,
            "uncounted_ops": self.uncounted_ops,
            "note": self.note,
            "layers": [r.to_dict() for r in self.rows],
            "totals": self.totals.to_dict(),
        }

    def summary(self) -> str:
        return (f"{self.model}: input {shape_text(self.input_shape)} → {shape_text(self.output_shape)}, "
                f"{self.totals.params:,} params, {self.totals.flops:,} FLOPs, {len(self.rows)} rows at depth {self.depth}")

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)
