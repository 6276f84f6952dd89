"""The conv/pool size arithmetic of a single layer, used to explain failures."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

from torch import nn

SPATIAL_TYPES = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


def _tuple(v, n: int) -> List[int]:
    return list(v) if isinstance(v, (tuple, list)) else [v] * n


def output_sides(layer: nn.Module, sides: Sequence[int]) -> Optional[List[int]]:
    """Output spatial sizes of a conv or pooling layer for input ``sides`` (None if the
    layer is of another kind). A result <= 0 means the input is too small."""
    n = len(sides)
    if not isinstance(layer, SPATIAL_TYPES):
        return None
    k = _tuple(layer.kernel_size, n)
    s = _tuple(layer.stride if layer.stride is not None else layer.kernel_size, n)
    pad = layer.padding
    if isinstance(pad, str):  # "same" keeps the size; "valid" is no padding
        if pad == "same":
            return list(sides)
        pad = 0
    p = _tuple(pad, n)
    d = _tuple(getattr(layer, "dilation", 1), n)
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):  # grows its input: the conv's arithmetic reversed
        extra = _tuple(layer.output_padding, n)
        return [(sides[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + extra[i] + 1 for i in range(n)]
    ceil = getattr(layer, "ceil_mode", False)
    out = []
    for i in range(n):
        span = sides[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1
        q = math.ceil(span / s[i]) if ceil else math.floor(span / s[i])
        out.append(q + 1 if span >= 0 else 0)
    return out
