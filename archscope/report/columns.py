"""The columns each view shows, and how a cell is formatted. One place for both, so the
rich table and the Markdown table of a command always agree."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List

from archscope.analysis.records import LayerRow, Trace
from archscope.inputs import shape_text
from archscope.report.text import calls_shape_text, human, human_bytes, share


@dataclass(frozen=True)
class Column:
    title: str
    cell: Callable[[LayerRow, Trace], str]
    numeric: bool = False
    drop: int = 0  # at a narrow terminal: 0 always shown, else the higher the sooner it is left out
    wrap: bool = False  # may wrap onto several lines (names), never cut


def _output(r: LayerRow, t: Trace) -> str:
    if r.kind == "module" and r.calls == 0:
        return "not run"
    if r.kind == "module":
        return calls_shape_text(r.output_shape, r.calls, r.call_shapes, shape_text)
    return shape_text(r.output_shape) if r.kind in ("container", "total") else "(own forward)"


NAME = Column("Layer", lambda r, t: r.name, wrap=True)
TYPE = Column("Type", lambda r, t: r.type, drop=3, wrap=True)
OUTPUT = Column("Output shape", _output, wrap=True)  # every call's shape can be long: wraps at its commas
PARAMS = Column("Params", lambda r, t: f"{r.params:,}", True)
TRAINABLE = Column("Trainable", lambda r, t: f"{r.trainable_params:,}", True, drop=2)
FROZEN = Column("Frozen", lambda r, t: f"{r.frozen_params:,}", True, drop=4)
PARAM_SHARE = Column("% params", lambda r, t: share(r.params, t.totals.params), True, drop=5)
BYTES = Column("fp32 bytes", lambda r, t: human_bytes(4 * r.params), True, drop=6)
FLOPS = Column("FLOPs", lambda r, t: human(r.flops), True)
MACS = Column("MACs", lambda r, t: human(r.macs), True, drop=7)
FLOP_SHARE = Column("% FLOPs", lambda r, t: share(r.flops, t.totals.flops), True, drop=2)


def _rf(key: str):
    def cell(r: LayerRow, t: Trace) -> str:
        if not r.rf:
            return "—"
        values = r.rf[key]
        text = str(values[0]) if len(set(values)) == 1 else "×".join(map(str, values))
        return f"{text} (whole)" if key == "size" and r.rf.get("whole_input") else text
    return cell


RF = Column("RF", _rf("size"), True, drop=1)
JUMP = Column("Jump", _rf("jump"), True, drop=8)
TRAIN_FLOPS = Column("Train FLOPs", lambda r, t: human(r.train_flops) if r.train_flops is not None else "—", True)

VIEWS: Dict[str, List[Column]] = {
    "shapes": [NAME, TYPE, OUTPUT],
    "params": [NAME, TYPE, PARAMS, TRAINABLE, FROZEN, PARAM_SHARE, BYTES],
    "flops": [NAME, TYPE, FLOPS, MACS, FLOP_SHARE],
    "summary": [NAME, TYPE, OUTPUT, PARAMS, PARAM_SHARE, FLOPS, MACS, FLOP_SHARE],
}


def columns(view: str, t: Trace) -> List[Column]:
    """The view's columns; a training-step trace adds its forward + backward FLOPs after FLOPs."""
    cols = list(VIEWS[view])
    if t.totals.train_flops is not None and FLOPS in cols:
        cols.insert(cols.index(FLOPS) + 1, TRAIN_FLOPS)
    if any(r.rf is not None for r in t.rows):
        cols.insert(cols.index(OUTPUT) + 1 if OUTPUT in cols else 2, RF)
        cols.insert(cols.index(RF) + 1, JUMP)
    return cols


TITLES = {
    "shapes": "output shape per layer",
    "params": "parameters per layer",
    "flops": "FLOPs per layer",
    "summary": "summary",
}


def header(t: Trace, view: str) -> str:
    return f"{t.model} — {TITLES[view]} — input {input_text(t)} on {t.device}"


SHORT_CONVENTION = ("FLOPs = 2 × MACs of conv, linear, matmul, attention and RNN ops; element-wise, pooling "
                    "and normalisation are not counted.")


def caption(t: Trace, view: str = "summary") -> str:
    """The FLOPs convention, short, where FLOPs are shown (the JSON keeps the full text)."""
    return SHORT_CONVENTION if view in ("flops", "summary") else ""


def uncounted_line(t: Trace) -> str:
    """'not counted: aten.foo ×3, aten.bar ×1 (no FLOP formula)', or '' when every op was counted."""
    if not t.uncounted_ops:
        return ""
    ops = ", ".join(f"{op} ×{n}" for op, n in t.uncounted_ops.items())
    return f"not counted: {ops} (ops with arithmetic but no FLOP formula: the FLOPs total leaves them out)"


def input_text(t: Trace) -> str:
    text = shape_text(t.input_shape)
    return text + (f" ({', '.join(t.input_dtypes)})" if t.input_dtypes else "")


def totals_lines(t: Trace) -> List[str]:
    tot = t.totals
    return [
        f"input {input_text(t)} → output {shape_text(t.output_shape)}  (device: {t.device})",
        f"params {tot.params:,} ({human(tot.params)}), trainable {tot.trainable_params:,}, "
        f"frozen {tot.params - tot.trainable_params:,}, {human_bytes(4 * tot.params)} at float32",
        f"FLOPs {tot.flops:,} ({human(tot.flops)}), MACs {tot.macs:,} ({human(tot.macs)}) per forward pass",
    ] + ([f"training step (forward + backward): {tot.train_flops:,} FLOPs ({human(tot.train_flops)}), "
          f"{tot.train_flops / tot.flops:.2f}x the forward" if tot.flops else
          f"training step (forward + backward): {tot.train_flops:,} FLOPs"]
         if tot.train_flops is not None else [])
