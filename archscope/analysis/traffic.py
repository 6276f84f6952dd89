"""Bytes an op moves: what it reads and writes, at the tensors' own dtypes.

An op reads every tensor it is given (activations and weights alike) and writes every tensor
it returns. Two refinements keep the figure honest:

- a broadcast input (a stride-0 dimension, e.g. a bias ``expand``-ed over the batch) is read
  once per distinct element, not once per use;
- a view (``view``, ``t``, ``permute``, ``expand``...) moves nothing and launches no kernel.

This is the traffic of an unfused, eager run: every intermediate goes to memory and back,
which is what PyTorch's eager mode does (a compiler that fuses element-wise ops moves less).
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_leaves


def tensor_bytes(t: torch.Tensor) -> int:
    """Distinct bytes of ``t``: a stride-0 (broadcast) dimension counts once."""
    try:
        elements = 1
        for size, stride in zip(t.shape, t.stride()):
            if stride != 0:
                elements *= size
        return elements * t.element_size()
    except (RuntimeError, NotImplementedError):  # sparse or nested tensors have no strides
        return t.numel() * t.element_size()


def is_view(func) -> bool:
    """An op whose results alias its inputs without writing them: no data moves."""
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def op_bytes(func, args: Any, kwargs: Any, out: Any) -> int:
    """Bytes read (every distinct input tensor) plus bytes written: every output tensor, and every
    argument the op mutates without returning it (``_foreach_add_`` returns nothing)."""
    read, seen = 0, set()
    for t in tree_leaves((args, kwargs)):
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            read += tensor_bytes(t)
    outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
    written = sum(tensor_bytes(t) for t in outputs)
    returned = {id(t) for t in outputs}
    for index, argument in enumerate(func._schema.arguments):
        if argument.alias_info is None or not argument.alias_info.is_write:
            continue
        value = args[index] if index < len(args) else kwargs.get(argument.name)
        written += sum(tensor_bytes(t) for t in tree_leaves(value)
                       if isinstance(t, torch.Tensor) and id(t) not in returned)
    return read + written


def fresh_sizes(args: Any, kwargs: Any, out: Any) -> tuple:
    """Bytes of each output that is a new tensor (an in-place op writes into its input): a CPU
    allocator may hand out fresh pages for large ones, which cost a page fault each."""
    try:
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        return tuple(tensor_bytes(t) for t in tree_leaves(out)
                     if isinstance(t, torch.Tensor) and t.untyped_storage()._cdata not in inputs)
    except (RuntimeError, NotImplementedError):  # tensors without a storage (nested, functional wrappers)
        return ()


# --------------------------------------------------------------------------- what kind of work an op is

_GEMMS = {"mm", "addmm", "bmm", "baddbmm", "convolution", "convolution_backward", "_convolution"}
_POOLS = {"max_pool2d_with_indices", "max_pool2d", "max_pool3d_with_indices", "avg_pool2d", "avg_pool3d",
          "max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward", "avg_pool2d_backward",
          "avg_pool3d_backward", "_mkldnn_max_pool2d"}
_NORMS = {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
          "native_batch_norm_backward", "native_layer_norm", "native_layer_norm_backward", "native_group_norm",
          "native_group_norm_backward", "_batch_norm_with_update", "_batch_norm_no_update", "batch_norm_backward"}


def work_kind(name: str, args, out):
    """``(kind, size)``: a matrix product's smallest GEMM dimension (how well it can use the
    peak), a pooling op's window elements, a normalisation's elements; else ``("other", 0)``."""
    try:
        if name in _GEMMS:
            return "gemm", max(1, _gemm_dim(name, args, out))
        if name in _POOLS:
            if name.endswith("_backward"):  # (grad_out, input, kernel, ...): one window per grad element
                return "pool", args[0].numel() * _window(args[2])
            output = out[0] if isinstance(out, (tuple, list)) else out
            return "pool", output.numel() * _window(args[1])
        if name in _NORMS:
            return "norm", args[0].numel()
    except (IndexError, AttributeError, TypeError, ValueError):
        pass
    return "other", 0


def _window(kernel) -> int:
    kernel = [int(k) for k in kernel] if isinstance(kernel, (list, tuple)) else [int(kernel)] * 2
    if len(kernel) == 1:
        kernel = kernel * 2  # max_pool2d(x, 3): a 3 x 3 window
    size = 1
    for k in kernel:
        size *= k
    return size


def _gemm_dim(name: str, args, out) -> int:
    """The smallest of M, N, K of the matrix product an op is. A convolution is one: batch x
    output pixels by output channels (per group) by input channels (per group) x kernel."""
    if name in ("mm", "bmm"):
        a, b = args[0], args[1]
    elif name in ("addmm", "baddbmm"):
        a, b = args[1], args[2]
    else:
        if name == "convolution_backward":  # (grad_out, input, weight, bias_sizes, stride, ..., groups)
            result, weight, groups = args[0], args[2], int(args[9])
        else:  # (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
            result, weight, groups = out, args[1], int(args[8])
        kernel = 1
        for k in weight.shape[2:]:
            kernel *= int(k)
        pixels = result.numel() // max(1, result.shape[1])
        return min(pixels, weight.shape[0] // groups, weight.shape[1] * kernel)
    return min(a.shape[-2], a.shape[-1], b.shape[-1])
