"""Which layer a failed forward stopped in, and which of its contracts the arriving shape broke.

Shared by the diagnosis and the size solver (which only needs the kind of failure).
"""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from archscope.analysis.diagnose.arithmetic import output_sides


def failing_layer(error: BaseException):
    """(name, module, input shape) of the innermost module that was running, or None."""
    recorder = getattr(error, "__archscope_recorder__", None)
    if recorder is None or not recorder.stack:
        return None
    name, module, _ = recorder.stack[-1]
    return name, module, recorder.inputs.get(name)


def classify(module: nn.Module, arriving: Any) -> Optional[str]:
    """Which contract of the layer the arriving shape breaks, judged from the layer itself."""
    if not isinstance(arriving, list) or not arriving or not isinstance(arriving[0], int):
        return None
    if isinstance(module, nn.Linear) and arriving[-1] != module.in_features:
        return "width"
    if isinstance(module, nn.modules.conv._ConvNd) and len(arriving) != len(module.kernel_size) + 2:
        return "rank"  # (an unbatched input has one size fewer, and is read as one image of C channels)
    if isinstance(module, nn.modules.conv._ConvNd) and len(arriving) >= 2 and arriving[1] != module.in_channels:
        return "channels"
    sides = output_sides(module, arriving[2:]) if len(arriving) > 2 else None
    if sides is not None and min(sides) <= 0:
        return "spatial"
    return None
