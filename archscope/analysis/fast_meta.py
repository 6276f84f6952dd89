"""Meta kernels for the ops every CNN and transformer runs, without PyTorch's Python ones.

On the meta device most ops run a Python meta kernel or reference (``torch._meta_registrations``,
``torch._refs``). Each costs 0.05–1.5 ms (a BatchNorm 0.9 ms, a LayerNorm 1.5), and the first
``torch._check`` of a process imports SymPy through ``torch.fx.experimental.symbolic_shapes``:
0.4 s of a command that has nothing symbolic. For the common case (plain meta tensors, dense and
row-major, floating dtypes, arguments that PyTorch accepts) the output's metadata is simple
arithmetic, done here (and for the fused RNN layer a small CPU model sends to meta).

Each kernel takes the op's own arguments and returns what PyTorch's meta kernel returns (the same
shapes, strides and dtypes; ``tests/test_fast_meta.py`` compares them on generated cases), or
``None`` to decline: anything it does not handle (a channels-last or ambiguous layout, an integer
dtype, a shape PyTorch would refuse) goes to PyTorch's kernel, which also raises PyTorch's own
error message, so a refusal reads exactly as it would without this module.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

aten = torch.ops.aten
_META = torch.device("meta")


def _dense(t) -> bool:
    """A plain floating meta tensor with exactly the strides ``torch.empty`` gives its shape (row-major).
    Any other layout (channels-last, a transpose, a slice) is declined: there PyTorch's choice of
    output strides follows the input's."""
    if type(t) is not torch.Tensor and type(t) is not torch.nn.Parameter:
        return False
    if t.device != _META or t.layout is not torch.strided or not t.is_floating_point() or t.storage_offset():
        return False
    expected = 1
    for size, stride in zip(reversed(t.shape), reversed(t.stride())):
        if stride != expected:
            return False
        expected *= size
    return True


def _empty(shape, dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=_META)


def _ints(value, n: int) -> Optional[List[int]]:
    """An int or a list of ints as n ints (a one-element list repeats), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * n
    if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
        if len(value) == n:
            return list(value)
        if len(value) == 1:
            return list(value) * n
    return None


# --------------------------------------------------------------------------- convolution and pooling

def _convolution(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    if transposed or not (_dense(x) and _dense(weight)) or x.dim() != weight.dim() or x.dim() < 3:
        return None
    if x.dtype != weight.dtype or (bias is not None and (not _dense(bias) or bias.dtype != x.dtype)):
        return None
    n = x.dim() - 2
    stride, padding, dilation = _ints(stride, n), _ints(padding, n), _ints(dilation, n)
    if stride is None or padding is None or dilation is None or type(groups) is not int or groups < 1:
        return None
    out_channels = weight.shape[0]
    if x.shape[1] != weight.shape[1] * groups or out_channels % groups:
        return None
    if bias is not None and tuple(bias.shape) != (out_channels,):
        return None
    spatial = []
    for size, k, s, p, d in zip(x.shape[2:], weight.shape[2:], stride, padding, dilation):
        if s < 1 or p < 0 or d < 1:
            return None
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            return None
        spatial.append(out)
    return _empty((x.shape[0], out_channels, *spatial), x.dtype)


def _pooled(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode):
    if not _dense(x) or x.dim() not in (3, 4) or type(ceil_mode) is not bool:
        return None
    kernel = _ints(kernel_size, 2)
    stride = kernel if stride in ([], (), None) else _ints(stride, 2)
    padding, dilation = _ints(padding, 2), _ints(dilation, 2)
    if kernel is None or stride is None or padding is None or dilation is None:
        return None
    spatial = []
    for size, k, s, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation):
        if k < 1 or s < 1 or d < 1 or p < 0 or p > k // 2:
            return None
        out = _pooled(size, k, s, p, d, ceil_mode)
        if out < 1:
            return None
        spatial.append(out)
    if any(size == 0 for size in x.shape):
        return None
    return (*x.shape[:-2], *spatial)


def _max_pool2d_with_indices(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    shape = _pool_shape(x, kernel_size, stride, padding, dilation, ceil_mode)
    if shape is None:
        return None
    return _empty(shape, x.dtype), _empty(shape, torch.int64)


def _avg_pool2d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    if divisor_override is not None:
        return None
    shape = _pool_shape(x, kernel_size, stride, padding, 1, ceil_mode)
    return None if shape is None else _empty(shape, x.dtype)


def _adaptive_avg_pool2d(x, output_size):
    size = _ints(output_size, 2)
    if not _dense(x) or x.dim() not in (3, 4) or size is None or any(s < 0 for s in size) \
            or any(s == 0 for s in x.shape[-3:]):
        return None
    return _empty((*x.shape[:-2], *size), x.dtype)


# --------------------------------------------------------------------------- matrix products

def _addmm(bias, mat1, mat2, beta=1, alpha=1):
    if not (_plain_2d(mat1) and _plain_2d(mat2)) or mat1.shape[1] != mat2.shape[0] or mat1.dtype != mat2.dtype:
        return None
    out = (mat1.shape[0], mat2.shape[1])
    if not _dense(bias) or bias.dtype != mat1.dtype or tuple(bias.shape) not in ((out[1],), out, (1, out[1])):
        return None
    return _empty(out, mat1.dtype)


def _mm(mat1, mat2):
    if not (_plain_2d(mat1) and _plain_2d(mat2)) or mat1.shape[1] != mat2.shape[0] or mat1.dtype != mat2.dtype:
        return None
    return _empty((mat1.shape[0], mat2.shape[1]), mat1.dtype)


def _bmm(a, b):
    if not (_plain(a) and _plain(b)) or a.dim() != 3 or b.dim() != 3 or a.dtype != b.dtype \
            or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        return None
    return _empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)


def _plain(t) -> bool:
    """A plain floating meta tensor in any strides (a matrix product's output is row-major whatever
    its operands' layout: a weight's transpose is the usual second operand)."""
    return (type(t) is torch.Tensor or type(t) is torch.nn.Parameter) and t.device == _META and \
        t.layout is torch.strided and t.is_floating_point()


def _plain_2d(t) -> bool:
    return _plain(t) and t.dim() == 2


# --------------------------------------------------------------------------- element-wise

def _unary(x, *args, **kwargs):
    """An element-wise op of one floating tensor (activations): the same shape and dtype."""
    if not _dense(x):
        return None
    return _empty(x.shape, x.dtype)


def _broadcast(shapes: Sequence[Sequence[int]]) -> Optional[tuple]:
    n = max(len(s) for s in shapes)
    out = []
    for i in range(n):
        size = 1
        for s in shapes:
            j = len(s) - n + i
            if j < 0 or s[j] == 1:
                continue
            if size not in (1, s[j]):
                return None
            size = s[j]
        out.append(size)
    if any(s == 0 for s in out):
        return None
    return tuple(out)


def _binary(a, b, *args, **kwargs):
    """``a op b`` of two floating tensors, or of a tensor and a Python number: the broadcast shape,
    in the promoted dtype, row-major."""
    if not _dense(a):
        return None
    if isinstance(b, torch.Tensor):
        if not _dense(b) or (b.dim() == 0) != (a.dim() == 0):
            return None  # a zero-dim operand promotes like a number: left to PyTorch
        shape = _broadcast([a.shape, b.shape])
    elif type(b) in (int, float):
        shape = tuple(a.shape)
    else:
        return None
    extra = list(args) + [v for k, v in kwargs.items() if k == "alpha"]
    if shape is None or len(extra) != len(args) + len(kwargs) or any(type(v) not in (int, float) for v in extra):
        return None
    dtype = torch.result_type(a, b)
    if not dtype.is_floating_point:
        return None
    return _empty(shape, dtype)


def _unary_in_place(x, *args, **kwargs):
    """``relu_(x)``, ``hardswish_(x)``...: writes x and returns it (only its values change). The
    extra arguments (hardtanh's bounds, leaky_relu's slope) must be numbers."""
    if not _dense(x) or any(type(v) not in (int, float) for v in list(args) + list(kwargs.values())):
        return None
    return x


def _binary_in_place(a, b, *args, **kwargs):
    """``a += b`` (a residual's ``out += identity``): a keeps its shape, strides and dtype, so b must
    broadcast to a's shape and promote to a's own dtype; a is returned."""
    if not _dense(a):
        return None
    if isinstance(b, torch.Tensor):
        if not _dense(b) or b.dtype != a.dtype or b.dim() > a.dim() or _broadcast([a.shape, b.shape]) != tuple(a.shape):
            return None
    elif type(b) not in (int, float):
        return None
    extra = list(args) + [v for k, v in kwargs.items() if k == "alpha"]
    if len(extra) != len(args) + len(kwargs) or any(type(v) not in (int, float) for v in extra):
        return None
    return a


# --------------------------------------------------------------------------- normalisation, softmax, reductions

def _native_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    if training or not _dense(x) or x.dim() < 2 or x.dtype != torch.float32:
        return None
    channels = x.shape[1]
    for t in (weight, bias, running_mean, running_var):
        if t is not None and (not _dense(t) or tuple(t.shape) != (channels,) or t.dtype != torch.float32):
            return None
    if running_mean is None or running_var is None:
        return None
    return _empty(x.shape, x.dtype), _empty((channels,), x.dtype), _empty((channels,), x.dtype)  # as meta's own


def _no_training_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps):
    return _native_batch_norm(x, weight, bias, running_mean, running_var, False, momentum, eps)


def _native_layer_norm(x, normalized_shape, weight, bias, eps):
    if not _dense(x) or x.dtype != torch.float32 or not isinstance(normalized_shape, (list, tuple)):
        return None
    k = len(normalized_shape)
    if k == 0 or k > x.dim() or tuple(x.shape[-k:]) != tuple(normalized_shape):
        return None
    for t in (weight, bias):
        if t is not None and (not _dense(t) or tuple(t.shape) != tuple(normalized_shape) or t.dtype != x.dtype):
            return None
    stats = (*x.shape[:-k], *([1] * k))
    return _empty(x.shape, x.dtype), _empty(stats, x.dtype), _empty(stats, x.dtype)


def _softmax(x, dim, half_to_float=False):
    if half_to_float or not _dense(x) or type(dim) is not int or not -max(x.dim(), 1) <= dim < max(x.dim(), 1):
        return None
    return _empty(x.shape, x.dtype)


def _safe_softmax(x, dim, dtype=None):
    return None if dtype is not None else _softmax(x, dim)


def _mean_dim(x, dim, keepdim=False, dtype=None):
    if dtype is not None or not _dense(x) or x.dim() == 0 or type(keepdim) is not bool:
        return None
    dims = [dim] if type(dim) is int else dim
    if not isinstance(dims, (list, tuple)) or not dims or any(type(d) is not int for d in dims):
        return None
    n = x.dim()
    if any(not -n <= d < n for d in dims):
        return None
    reduced = {d % n for d in dims}
    if len(reduced) != len(dims):
        return None
    shape = [1 if i in reduced else s for i, s in enumerate(x.shape)] if keepdim else \
        [s for i, s in enumerate(x.shape) if i not in reduced]
    return _empty(shape, x.dtype)


def _cat(tensors, dim=0):
    if not isinstance(tensors, (list, tuple)) or not tensors or type(dim) is not int:
        return None
    first = tensors[0]
    if not all(_dense(t) for t in tensors) or first.dim() == 0:
        return None
    n = first.dim()
    if not -n <= dim < n:
        return None
    dim %= n
    total = 0
    for t in tensors:
        if t.dim() != n or t.dtype != first.dtype or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape))
                                                         if i != dim):
            return None
        total += t.shape[dim]
    shape = list(first.shape)
    shape[dim] = total
    if math.prod(shape) == 0:
        return None
    return _empty(shape, first.dtype)


def _stack(tensors, dim=0):
    # A row-major stack of same-shaped tensors is row-major (PyTorch's reference: a cat of unsqueezes).
    if not isinstance(tensors, (list, tuple)) or not tensors or type(dim) is not int:
        return None
    first = tensors[0]
    if not all(_dense(t) for t in tensors) or any(t.shape != first.shape or t.dtype != first.dtype for t in tensors):
        return None
    n = first.dim() + 1
    if not -n <= dim < n:
        return None
    shape = list(first.shape)
    shape.insert(dim % n, len(tensors))
    if math.prod(shape) == 0:
        return None
    return _empty(shape, first.dtype)


def _mkldnn_rnn_layer(x, w0, w1, w2, w3, hx, cx, reverse, batch_sizes, mode, hidden_size, num_layers, has_biases,
                      bidirectional, batch_first, train):
    # One fused RNN layer of an LSTM on CPU (heavy_on_meta.py sends it here): the output over every step,
    # the last hidden and cell states, and an empty workspace, as PyTorch's meta kernel makes them.
    if not (_dense(x) and x.dim() == 3 and type(hidden_size) is int and all(_dense(h) for h in (hx, cx))):
        return None
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    out = [batch, steps, hidden_size] if batch_first else [steps, batch, hidden_size]
    return (_empty(out, x.dtype), _empty(hx.shape, hx.dtype), _empty(cx.shape, cx.dtype),
            torch.empty(0, dtype=torch.uint8, device=_META))


# Activations, each also in place (torchvision's inplace=True: ReLU, Hardswish, ReLU6 as hardtanh_, SiLU).
UNARY = ("relu", "sigmoid", "tanh", "gelu", "silu", "hardswish", "hardsigmoid", "hardtanh", "leaky_relu")

KERNELS: Dict[Any, Callable[..., Any]] = {
    aten.convolution.default: _convolution,
    aten.max_pool2d_with_indices.default: _max_pool2d_with_indices,
    aten.avg_pool2d.default: _avg_pool2d,
    aten._adaptive_avg_pool2d.default: _adaptive_avg_pool2d,
    aten.addmm.default: _addmm,
    aten.mm.default: _mm,
    aten.bmm.default: _bmm,
    aten.native_batch_norm.default: _native_batch_norm,
    aten._native_batch_norm_legit_no_training.default: _no_training_batch_norm,
    aten.native_layer_norm.default: _native_layer_norm,
    aten._softmax.default: _softmax,
    aten._safe_softmax.default: _safe_softmax,
    aten.mean.dim: _mean_dim,
    aten.cat.default: _cat,
    aten.stack.default: _stack,
    aten.mkldnn_rnn_layer.default: _mkldnn_rnn_layer,
    **{getattr(aten, name).default: _unary for name in UNARY},
    **{getattr(aten, f"{name}_").default: _unary_in_place for name in UNARY},
    **{overload: _binary_in_place for overload in (aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor,
                                                   aten.div_.Tensor, aten.mul_.Scalar, aten.add_.Scalar)},
    **{overload: _binary for overload in
       (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.mul.Scalar, aten.add.Scalar)},
}


def fast_meta(func, args, kwargs) -> Any:
    """The op's output made here, or None when PyTorch's own kernel must run it."""
    kernel = KERNELS.get(func)
    if kernel is None:
        return None
    try:
        return kernel(*args, **kwargs)
    except TypeError:  # arguments in a form this does not know (a keyword it lacks)
        return None
