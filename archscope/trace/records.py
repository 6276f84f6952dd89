"""The records a trace produces: one ``LayerRow`` per row, ``Totals``, and the ``Trace``.

Plain dataclasses with ``to_dict()``. Rendering lives in ``archscope.report``, which
depends on this module; the ``__rich__``/``_repr_html_`` hooks import it only when called.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import torch

from archscope.trace.counter import CONVENTION as FLOPS_CONVENTION


class Rendered:
    """Every result: ``to_dict()``/``to_json()``, a rich table in a terminal (``__rich__``) and an
    HTML table in Jupyter (``_repr_html_``), both from the one view ``_view()`` that report builds."""

    def to_json(self) -> str:
        import json
        return json.dumps(self.to_dict(), indent=2)

    def _view(self):
        raise NotImplementedError

    def __rich__(self):
        return self._view()

    def _repr_html_(self) -> str:
        from archscope.report.tables import html_of
        return html_of(self._view())


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

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["macs"] = self.macs
        for optional in ("train_flops", "rf"):
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


@dataclass
class Trace(Rendered):
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

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def _view(self):
        from archscope.report.tables import summary_table
        return summary_table(self)


def shape_of(obj: Any) -> Any:
    """Shapes of the tensors in a module's input or output: a list for one tensor, a list of
    those for several, ``{key: shape}`` for a dict (its keys kept), None if there is none."""
    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, dict):
        shapes = {str(k): shape_of(v) for k, v in obj.items()}
        shapes = {k: s for k, s in shapes.items() if s is not None}
        return shapes or None
    if isinstance(obj, (tuple, list)):
        shapes = [shape_of(o) for o in obj]
        shapes = [s for s in shapes if s is not None]
        if not shapes:
            return None
        return shapes[0] if len(shapes) == 1 else shapes
    return None


def shape_text(shape: Any) -> str:
    """[1, 3, 8, 8] → '1×3×8×8'; several → joined by ', '; a dict keeps its keys: 'out: 1×21×8×8'."""
    if shape is None:
        return "—"
    if isinstance(shape, dict):
        return ", ".join(f"{k}: {shape_text(s)}" for k, s in shape.items())
    if shape and isinstance(shape[0], (list, dict)):
        return ", ".join(shape_text(s) for s in shape)
    return "×".join(str(d) for d in shape)
