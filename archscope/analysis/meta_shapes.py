"""Output shapes for ops whose meta kernel refuses what the CPU kernel runs.

A meta kernel is supposed to check exactly what the real kernel checks. A few check what
only their CUDA kernel needs: ``aten._grouped_mm`` (mixture-of-experts layers in
transformers ≥ 5) accepts only bfloat16/float16 and 16-byte-aligned strides on meta, while the
CPU kernel multiplies float32 too. A float32 MoE model would then fail on meta although it runs
on CPU, so when such an op's meta kernel raises, its output is made here from the shapes alone.
Each entry takes the op's arguments and returns an empty meta tensor of the real output's shape.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import torch

aten = torch.ops.aten


def grouped_mm_shape(mat_a, mat_b, offs=None):
    """The four layouts of ``_grouped_mm`` (groups G; ``offs`` are the groups' end offsets):
    2-D × 3-D: rows split into groups, ``(M, K) × (G, K, N) → (M, N)``;
    2-D × 2-D: the contraction split, ``(M, K) × (K, N) → (G, M, N)``;
    3-D × 2-D: columns split, ``(G, M, K) × (K, N) → (M, N)``;
    3-D × 3-D: a plain batch, ``(G, M, K) × (G, K, N) → (G, M, N)``."""
    a, b = tuple(mat_a.shape), tuple(mat_b.shape)
    if len(a) == 2 and len(b) == 3:
        return (a[0], b[2])
    if len(a) == 2 and len(b) == 2:
        if offs is None:
            raise ValueError("a 2-D x 2-D grouped matmul needs offs")
        return (offs.shape[0], a[0], b[1])
    if len(a) == 3 and len(b) == 2:
        return (a[1], b[1])
    return (a[0], a[1], b[2])


def _grouped_mm(mat_a, mat_b, offs=None, bias=None, out_dtype=None):
    return torch.empty(grouped_mm_shape(mat_a, mat_b, offs), dtype=out_dtype or mat_a.dtype, device="meta")


META_SHAPES: Dict[Any, Callable[..., torch.Tensor]] = {
    aten._grouped_mm.default: _grouped_mm,
}


def meta_fallback(func, args, kwargs):
    """The output of ``func`` made from shapes, when it has an entry and its inputs are on meta; else None."""
    make = META_SHAPES.get(func)
    if make is None or not any(isinstance(a, torch.Tensor) and a.device.type == "meta" for a in args):
        return None
    return make(*args, **kwargs)
