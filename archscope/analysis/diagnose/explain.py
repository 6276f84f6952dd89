"""Why a model failed on an input, and what to change.

The tracer's hooks know which modules were entered and not left when the forward
raised: the innermost one is the failing layer, and its recorded input is the shape
that reached it. The layer's own attributes (``in_features``, ``in_channels``, kernel,
stride) say what it expected; the size solver finds inputs that would work.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence

from torch import nn

from archscope.analysis.diagnose import solver
from archscope.analysis.diagnose.arithmetic import output_sides
from archscope.analysis.diagnose.blame import classify, failing_layer
from archscope.errors import first_line
from archscope.inputs import layer_name, shape_text


def _x(dims: Sequence[int]) -> str:
    return "×".join(str(d) for d in dims)


@dataclass
class Diagnosis:
    layer: Optional[str]  # qualified name of the failing module ("" is the model itself)
    layer_type: Optional[str]
    arriving: Any  # the shape that reached it
    kind: str  # "width" | "channels" | "rank" | "spatial" | "other"
    problem: str  # what went wrong, in words
    fix: str  # what to change
    error: str  # PyTorch's own message, first line

    def one_line(self) -> str:
        where = f"{layer_name(self.layer) or '(model)'} ({self.layer_type})" if self.layer_type else "the model"
        return f"{where} failed: {self.problem}; fix: {self.fix}"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def diagnose(model: nn.Module, shape: Optional[Sequence[int]], error: BaseException, loaded=None) -> Diagnosis:
    """``shape`` is the single input's shape (None for several inputs or real data): the
    size solver can only suggest other sides for one square image input."""
    found = failing_layer(error)
    message = first_line(error)
    if found is None:
        arriving = list(shape) if shape is not None else None
        return Diagnosis(None, None, arriving, "other", message, "check the model's forward for this input", message)
    name, module, arriving = found
    label = layer_name(name) or type(module).__name__
    kind = classify(module, arriving)
    type_name = type(module).__name__
    image = shape is not None and len(shape) == 4 and shape[2] == shape[3]

    if kind == "width":
        want, got = module.in_features, arriving[-1]
        problem = f"{_x(arriving)} arrives, so it gets {got} input features but expects in_features={want}"
        fix = f"set in_features={got}"
        if image:
            sides = solver.sides_giving_width(model, shape, name, want)
            if sides:
                lo, hi = sides
                default = getattr(loaded, "default_side", None)
                pick = default if isinstance(default, int) and lo <= default <= hi else _nearest(shape[2], lo, hi)
                fix += f", or feed {lo}×{lo}" if lo == hi else f", or feed a side in {lo}..{hi} (e.g. {pick}×{pick})"
            else:
                fix += f" (no square input side up to {solver.MAX_SIDE} gives {want} features)"
        return Diagnosis(name, type_name, arriving, kind, problem, fix, message)

    if kind == "rank":
        rank = len(module.kernel_size) + 2
        axes = " x ".join(["batch", "channels"] + ["side"] * (rank - 2))
        problem = (f"{_x(arriving)} arrives with {len(arriving)} sizes, but a {type_name} takes {rank} "
                   f"({axes}; {rank - 1} are read as one unbatched sample)")
        example = "x".join(["1", str(module.in_channels)] + [str(arriving[-1])] * (rank - 2))  # a square sample
        if shape is not None and list(arriving) == list(shape):
            fix = f"give {rank} sizes, e.g. --input {example}"
        else:
            fix = f"make the layer before {label} output {rank} dimensions"
        return Diagnosis(name, type_name, arriving, kind, problem, fix, message)

    if kind == "channels":
        want, got = module.in_channels, arriving[1]
        problem = f"{_x(arriving)} arrives with {got} channels but it expects in_channels={want}"
        if shape is not None and list(arriving) == list(shape):  # the model's first layer sees the raw input
            command_line = "x".join(str(d) for d in (shape[0], want, *shape[2:]))  # typeable on a terminal
            fix = (f"feed a {want}-channel input (--input {command_line}), "
                   f"or build it with in_channels={got} (--arg in_channels={got})")
        else:
            fix = f"set {label}'s in_channels={got}, or make the layer before it output {want} channels"
        return Diagnosis(name, type_name, arriving, kind, problem, fix, message)

    if kind == "spatial":
        out = output_sides(module, arriving[2:])
        problem = (f"{_x(arriving)} arrives; its {_x(arriving[2:])} is too small for this layer's "
                   f"kernel/stride and the output would be {_x(out)}")
        if image:
            smallest = solver.smallest_side(model, shape)
            if smallest is None:
                fix = f"no square side up to {solver.MAX_SIDE} gets through every conv/pool layer"
            else:
                fix = f"feed at least {smallest}×{smallest} (the smallest side that gets through every conv/pool layer)"
                # One probe at that side: if a Linear then refuses the width, say which sides satisfy it.
                width = solver.first_width_failure(model, shape, smallest)
                if width is not None:
                    lname, want = width
                    sides = solver.sides_giving_width(model, shape, lname, want)
                    if sides:
                        fix += f"; the whole model runs only at sides {sides[0]}..{sides[1]} ({layer_name(lname)} needs {want} features)"
        else:
            fix = "feed a larger input, or use less downsampling (smaller stride/kernel, fewer pools)"
        return Diagnosis(name, type_name, arriving, kind, problem, fix, message)

    if "more than 1 value per channel when training" in message:
        return Diagnosis(name, type_name, arriving, "other",
                         f"{shape_text(arriving)} arrives and BatchNorm in train mode needs more than one value per channel",
                         "use a batch of 2 or more (--batch 2)", message)
    arriving_text = shape_text(arriving)
    where = "its own forward" if list(module.children()) else "this layer"
    return Diagnosis(name, type_name, arriving, "other", f"{arriving_text} arrives and {where} raised: {message}",
                     f"check what {label} expects for this input", message)


def _nearest(side: int, lo: int, hi: int) -> int:
    return min(max(side, lo), hi)
