"""Receptive fields, propagated op by op at dispatch level.

Every tensor that depends on the input image carries, per spatial axis, the receptive field
of one of its positions: ``size`` (how many input pixels it sees), ``jump`` (how far apart in
the input two neighbouring positions' fields are: the product of strides) and ``start``
(the input coordinate of the centre of position 0's field; pixel i has centre i). A
convolution or pooling with kernel k, stride s, padding p and dilation d maps
``(size, jump, start)`` to ``(size + (d(k-1)) jump, jump s, start + (d(k-1)/2 - p) jump)``.
Where several inputs meet (a residual sum, Inception's concatenation) the largest field wins.
Once spatial positions are mixed away (global pooling, flatten, a Linear) the field is the
whole input and stays so.

Working at dispatch level means functional ops in ``forward`` and branching blocks need no
special case: whatever the model does, each op's output gets a field from its inputs.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils._pytree import tree_leaves

from archscope.dispatch import DispatchMode

aten = torch.ops.aten
ATTR = "_archscope_rf"


@dataclass(frozen=True)
class Field:
    size: Tuple[float, ...]
    jump: Tuple[float, ...]
    start: Tuple[float, ...]
    whole: bool = False  # spatial positions have been mixed: the field is the whole input

    def to_dict(self) -> Dict[str, Any]:
        return {"size": [_num(v) for v in self.size], "jump": [_num(v) for v in self.jump],
                "start": [_num(v) for v in self.start], "whole_input": self.whole}

    def bounds(self, index: Sequence[int]) -> List[Tuple[float, float]]:
        """The input interval [first, last] (pixel coordinates, unclipped) seen by one output position."""
        out = []
        for i, u in enumerate(index):
            centre = self.start[i] + u * self.jump[i]
            half = (self.size[i] - 1) / 2
            out.append((centre - half, centre + half))
        return out


def _num(v: float):
    return int(v) if float(v).is_integer() else v


def _tuple(v, n: int) -> Tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        v = list(v) or [None]
        return tuple(v) * n if len(v) == 1 else tuple(v)
    return (v,) * n


def _window(field: Field, kernel, stride, padding, dilation) -> Field:
    if field.whole:  # a window over something that already saw the whole input still does
        return field
    n = len(field.size)
    k, p, d = _tuple(kernel, n), _tuple(padding, n), _tuple(dilation, n)
    s = tuple(ki if si is None else si for ki, si in zip(k, _tuple(stride, n)))
    size = tuple(r + d[i] * (k[i] - 1) * j for i, (r, j) in enumerate(zip(field.size, field.jump)))
    start = tuple(st + (d[i] * (k[i] - 1) / 2 - p[i]) * j for i, (st, j) in enumerate(zip(field.start, field.jump)))
    return Field(size, tuple(j * s[i] for i, j in enumerate(field.jump)), start)


def _whole(field: Field, sides: Sequence[int]) -> Field:
    """The field of something that sees every position along each axis of a tensor of ``sides``."""
    if field.whole:
        return field
    size = tuple(r + (n - 1) * j for r, j, n in zip(field.size, field.jump, sides))
    start = tuple(st + (n - 1) / 2 * j for st, j, n in zip(field.start, field.jump, sides))
    return Field(size, tuple(j * n for j, n in zip(field.jump, sides)), start, whole=True)


def _conv(args, field):
    if args[6]:  # transposed: the field arithmetic runs backwards; not modelled
        return None
    return _window(field, list(args[1].shape[2:]), args[3], args[4], args[5])


def _pool(args, field):
    kernel = args[1]
    stride = args[2] if len(args) > 2 else []
    padding = args[3] if len(args) > 3 else 0
    return _window(field, kernel, stride or kernel, padding, 1)


def _max_pool(args, field):
    kernel = args[1]
    stride = args[2] if len(args) > 2 else []
    padding = args[3] if len(args) > 3 else 0
    dilation = args[4] if len(args) > 4 else 1
    return _window(field, kernel, stride or kernel, padding, dilation)


def _adaptive(args, field):
    x, out_size = args[0], args[1]
    sides = list(x.shape[-len(field.size):])
    out_size = _tuple(out_size, len(sides))
    if all(o == 1 for o in out_size):
        return _whole(field, sides)
    kernel = [math.ceil(n / o) for n, o in zip(sides, out_size)]
    return _window(field, kernel, [max(n // o, 1) for n, o in zip(sides, out_size)], 0, 1)


WINDOWS = {
    aten.convolution.default: _conv,
    aten.max_pool2d_with_indices.default: _max_pool,
    aten.max_pool3d_with_indices.default: _max_pool,
    aten.max_pool2d.default: _max_pool,
    aten.avg_pool2d.default: _pool,
    aten.avg_pool3d.default: _pool,
    aten.avg_pool1d.default: _pool,
    aten._adaptive_avg_pool2d.default: _adaptive,
    aten._adaptive_avg_pool3d.default: _adaptive,
    aten.adaptive_max_pool2d.default: _adaptive,
}


def field_of(obj) -> Optional[Field]:
    for t in tree_leaves(obj):
        if isinstance(t, torch.Tensor):
            f = getattr(t, ATTR, None)
            if f is not None:
                return f
    return None


def mark_input(x: torch.Tensor) -> None:
    """A fresh image: each position sees itself (size 1, jump 1, centred on its own pixel)."""
    if isinstance(x, torch.Tensor) and x.dim() >= 3 and x.is_floating_point():
        k = x.dim() - 2
        setattr(x, ATTR, Field((1,) * k, (1,) * k, (0,) * k))


class ReceptiveFields(DispatchMode):
    """Gives every op's outputs the receptive field its inputs imply. Ops whose effect on it is
    not modelled (upsampling, spatial reshapes) end the field there: they are kept in
    ``stopped_at`` (op name → times), so the report can say why rows after them show none."""

    def __init__(self):
        super().__init__()
        self.stopped_at: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        sources = [(t, getattr(t, ATTR)) for t in tree_leaves((args, kwargs))
                   if isinstance(t, torch.Tensor) and getattr(t, ATTR, None) is not None]
        if not sources:
            return out
        if func in WINDOWS:
            field = WINDOWS[func](args, sources[0][1])
        else:
            field = _merge(sources, out)
        if field is None:
            if any(isinstance(t, torch.Tensor) for t in tree_leaves(out)):
                self.stopped_at[f"aten.{func._overloadpacket.__name__}"] += 1
            return out
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                try:
                    setattr(t, ATTR, field)
                except (AttributeError, RuntimeError):  # a tensor subclass that takes no attributes
                    self.stopped_at[f"aten.{func._overloadpacket.__name__}"] += 1
        return out

    def note(self) -> Optional[str]:
        if not self.stopped_at:
            return None
        ops = ", ".join(sorted(self.stopped_at))
        return f"receptive fields are not followed through {ops} (not modelled): rows after it show none"


def _merge(sources, out) -> Optional[Field]:
    """Element-wise ops, concatenations, reshapes: the largest field among the inputs; mixing
    spatial positions away (a flatten, a mean, a matmul over them) gives the whole input."""
    tensor_out = next((t for t in tree_leaves(out) if isinstance(t, torch.Tensor)), None)
    if tensor_out is None:
        return None
    source, field = max(sources, key=lambda s: (s[1].whole, s[1].size))
    if field.whole:
        return field
    k = len(field.size)
    sides = tuple(source.shape[-k:])
    if tensor_out.dim() >= k + 1 and tuple(tensor_out.shape[-k:]) == sides:
        return field  # same spatial grid: element-wise, concatenation on channels, channel shuffles
    pooled = tensor_out.dim() == source.dim() and all(n == 1 for n in tensor_out.shape[-k:])
    if tensor_out.numel() and (tensor_out.dim() < source.dim() or pooled):
        return _whole(field, sides)  # flatten, global means (keepdim or not), tokens, linear layers
    return None  # upsampling, spatial reshapes: not modelled
