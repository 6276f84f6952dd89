"""Turning what the user typed (``1x1x224x224``, ``--size 96``, ``--batch 4``) into an input shape."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

from torch import nn

from archscope.errors import UsageError

Shape = Tuple[int, ...]
InputSize = Union[int, Sequence[int], str, None]


def parse_shape(text: str) -> Shape:
    """``"1x1x224x224"`` → ``(1, 1, 224, 224)``; anything malformed is a ``UsageError``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"malformed --input '{text}': expected sizes joined by 'x', e.g. 1x1x224x224"
        ) from None
    if len(dims) < 2:
        raise UsageError(f"malformed --input '{text}': give at least batch x features, e.g. 1x1x224x224")
    if any(d <= 0 for d in dims):
        raise UsageError(f"malformed --input '{text}': every size must be a positive integer")
    return dims


def first_in_channels(model: nn.Module) -> Optional[int]:
    """The channel count the first conv layer expects, if the model has one."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    return None


def expected_rank(model: nn.Module) -> Optional[int]:
    """How many sizes the input needs, judged from the first conv (Conv2d → 4)."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return len(module.kernel_size) + 2
    return None


def resolve_shape(
    input_size: InputSize,
    model: nn.Module,
    default_side: Optional[int],
    batch: Optional[int] = None,
    channels: Optional[int] = None,
) -> Shape:
    """Work out the full input shape.

    ``input_size`` may be a full shape (tuple or ``"1x1x224x224"``), a square side (int),
    or ``None`` for the model's default side. A side becomes ``batch × C × side × side``
    with C taken from ``channels``, else from the model's first conv, else 1.
    """
    if isinstance(input_size, str):
        shape = parse_shape(input_size)
    elif isinstance(input_size, (tuple, list)):
        shape = tuple(int(d) for d in input_size)
        if len(shape) < 2 or any(d <= 0 for d in shape):
            raise UsageError(f"bad input shape {tuple(input_size)}: need >= 2 positive sizes")
    else:
        side = input_size if input_size is not None else default_side
        if side is None:
            raise UsageError(
                "this model has no default input size: pass --input (e.g. 1x3x32x32) or --size"
            )
        if int(side) <= 0:
            raise UsageError(f"bad input size {side}: it must be a positive integer")
        c = channels or first_in_channels(model) or 1
        shape = (1, c, int(side), int(side))
    expected = expected_rank(model)
    if expected is not None and len(shape) != expected:
        text = "x".join(map(str, shape))
        example = "x".join(["1", str(first_in_channels(model) or 1)] + [str(default_side or 224)] * (expected - 2))
        raise UsageError(
            f"malformed --input '{text}': this model takes {expected} sizes "
            f"(batch x channels x {' x '.join(['side'] * (expected - 2))}), e.g. {example}"
        )
    if batch is not None:
        if batch <= 0:
            raise UsageError(f"bad --batch {batch}: it must be a positive integer")
        shape = (batch,) + tuple(shape[1:])
    return shape
