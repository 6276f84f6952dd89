"""Why a model failed on an input, and what to change.

The tracer's hooks know which modules were entered and not left when the forward
raised: the innermost one is the failing layer, and its recorded input is the shape
that reached it. The layer's own attributes (``in_features``, ``in_channels``, kernel,
stride) say what it expected; the size solver finds inputs that would work.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from torch import nn

from archscope.errors import first_line

from archscope.trace.arithmetic import SPATIAL_TYPES, output_sides


def _x(dims: Sequence[int]) -> str:
    return "×".join(str(d) for d in dims)


@dataclass
class Diagnosis:
    layer: Optional[str]  # qualified name of the failing module ("" is the model itself)
    layer_type: Optional[str]
    arriving: Any  # the shape that reached it
    kind: str  # "width" | "channels" | "spatial" | "other"
    problem: str  # what went wrong, in words
    fix: str  # what to change
    error: str  # PyTorch's own message, first line

    def one_line(self) -> str:
        where = f"{self.layer or '(model)'} ({self.layer_type})" if self.layer_type else "the model"
        return f"{where} failed: {self.problem}; fix: {self.fix}"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def failing_layer(error: BaseException):
    """(name, module, input shape) of the innermost module that was running, or None."""
    recorder = getattr(error, "__archscope_recorder__", None)
    if recorder is None or not recorder.stack:
        return None
    name, module, _ = recorder.stack[-1]
    return name, module, recorder.inputs.get(name)


def classify(module: nn.Module, arriving: Any) -> Optional[str]:
    """Which contract of the layer the arriving shape breaks, judged from the layer itself."""
    if not arriving or not isinstance(arriving[0], int):
        return None
    if isinstance(module, nn.Linear) and arriving[-1] != module.in_features:
        return "width"
    if isinstance(module, nn.modules.conv._ConvNd) and len(arriving) >= 2 and arriving[1] != module.in_channels:
        return "channels"
    sides = output_sides(module, arriving[2:]) if len(arriving) > 2 else None
    if sides is not None and min(sides) <= 0:
        return "spatial"
    return None


def diagnose(model: nn.Module, shape: Sequence[int], error: BaseException, loaded=None) -> Diagnosis:
    from archscope.trace import solver

    found = failing_layer(error)
    message = first_line(error)
    if found is None:
        return Diagnosis(None, None, list(shape), "other", message, "check the model's forward for this input", message)
    name, module, arriving = found
    label = name or type(module).__name__
    kind = classify(module, arriving)
    type_name = type(module).__name__
    image = len(shape) == 4 and shape[2] == shape[3]

    if kind == "width":
        want, got = module.in_features, arriving[-1]
        problem = f"{_x(arriving)} arrives, so it gets {got} input features but expects in_features={want}"
        fix = f"set in_features={got}"
        if image:
            sides = solver.sides_giving_width(model, shape, name, want)
            if sides:
                lo, hi = sides
                default = getattr(loaded, "input_size", None)
                pick = default if isinstance(default, int) and lo <= default <= hi else _nearest(shape[2], lo, hi)
                fix += f", or feed {lo}×{lo}" if lo == hi else f", or feed a side in {lo}..{hi} (e.g. {pick}×{pick})"
            else:
                fix += f" (no square input side up to {solver.MAX_SIDE} gives {want} features)"
        return Diagnosis(name, type_name, arriving, kind, problem, fix, message)

    if kind == "channels":
        want, got = module.in_channels, arriving[1]
        problem = f"{_x(arriving)} arrives with {got} channels but it expects in_channels={want}"
        if list(arriving) == list(shape):  # the model's first layer sees the raw input
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
                        fix += f"; the whole model runs only at sides {sides[0]}..{sides[1]} ({lname} needs {want} features)"
        else:
            fix = "feed a larger input, or use less downsampling (smaller stride/kernel, fewer pools)"
        return Diagnosis(name, type_name, arriving, kind, problem, fix, message)

    arriving_text = _x(arriving) if arriving and isinstance(arriving[0], int) else str(arriving)
    where = "its own forward" if list(module.children()) else "this layer"
    return Diagnosis(name, type_name, arriving, "other", f"{arriving_text} arrives and {where} raised: {message}",
                     f"check what {label} expects for this input", message)


def _nearest(side: int, lo: int, hi: int) -> int:
    return min(max(side, lo), hi)
