"""ONNX operators as PyTorch calls: the table the ONNX converter runs (``onnx_file.py``).

Each entry takes the node's input tensors (None for an omitted optional input) and its
attributes, and returns its outputs. Tensors whose values decide a shape (what ``Shape``
returns, a ``Reshape``'s target, a ``Slice``'s bounds) are small CPU tensors with real values:
``values`` reads them. Everything else may be on meta. Semantics follow the ONNX operator
specification (https://onnx.ai/onnx/operators/) for the opsets the PyTorch exporters write.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from archscope.errors import UsageError

# ONNX TensorProto element types → torch dtypes
DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
          9: torch.bool, 10: torch.float16, 11: torch.float64, 12: torch.uint32 if hasattr(torch, "uint32") else None,
          16: torch.bfloat16}


def values(t: torch.Tensor, what: str) -> List[int]:
    """The integer values of a tensor a shape depends on."""
    if t.device.type == "meta":
        raise UsageError(f"the ONNX graph computes {what} from the input's values, which a meta run does not have: "
                         "trace it with --device cpu")
    return [int(v) for v in t.reshape(-1).tolist()]


def _same_device(*xs):
    """Mixed inputs: small CPU constants join a meta tensor on meta."""
    meta = any(isinstance(x, torch.Tensor) and x.device.type == "meta" for x in xs)
    if not meta:
        return xs
    return tuple(x.to("meta") if isinstance(x, torch.Tensor) and x.device.type != "meta" and x.dim() > 0 else x
                 for x in xs)


def _binary(fn):
    def run(inputs, attrs):
        a, b = _same_device(*inputs[:2])
        return [fn(a, b)]
    return run


def _unary(fn):
    return lambda inputs, attrs: [fn(inputs[0])]


def _pads(attrs, spatial: int):
    pads = attrs.get("pads", [0] * (2 * spatial))
    begin, end = pads[:spatial], pads[spatial:]
    return begin, end


def _conv(inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    spatial = w.dim() - 2
    begin, end = _pads(attrs, spatial)
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise UsageError(f"Conv with auto_pad={attrs['auto_pad']} is not converted: export with explicit pads")
    if begin != end:
        x = F.pad(x, [p for pair in zip(reversed(begin), reversed(end)) for p in pair])
        begin = [0] * spatial
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[spatial]
    return [conv(x, w, b, stride=attrs.get("strides", [1] * spatial), padding=begin,
                 dilation=attrs.get("dilations", [1] * spatial), groups=attrs.get("group", 1))]


def _pool(kind):
    def run(inputs, attrs):
        x = inputs[0]
        kernel = attrs["kernel_shape"]
        spatial = len(kernel)
        begin, end = _pads(attrs, spatial)
        ceil = bool(attrs.get("ceil_mode", 0))
        if begin != end:
            x = F.pad(x, [p for pair in zip(reversed(begin), reversed(end)) for p in pair],
                      value=-math.inf if kind == "max" else 0.0)
            begin = [0] * spatial
        stride = attrs.get("strides", [1] * spatial)
        if kind == "max":
            pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[spatial]
            return [pool(x, kernel, stride, begin, attrs.get("dilations", [1] * spatial), ceil)]
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[spatial]
        return [pool(x, kernel, stride, begin, ceil, bool(attrs.get("count_include_pad", 0)))]
    return run


def _global_pool(kind):
    def run(inputs, attrs):
        x = inputs[0]
        dims = list(range(2, x.dim()))
        return [x.mean(dims, keepdim=True) if kind == "avg" else x.amax(dims, keepdim=True)]
    return run


def _gemm(inputs, attrs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transA", 0):
        a = a.transpose(0, 1)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transB", 0) and alpha == 1.0 and beta == 1.0:
        return [F.linear(a, b, c)]  # what a Linear is exported as
    if attrs.get("transB", 0):
        b = b.transpose(0, 1)
    out = a @ b
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        out = out + (c if beta == 1.0 else c * beta)
    return [out]


def _batch_norm(inputs, attrs):
    x, scale, bias, mean, var = inputs[:5]
    return [F.batch_norm(x, mean, var, scale, bias, training=False, eps=attrs.get("epsilon", 1e-5))]


def _layer_norm(inputs, attrs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = attrs.get("axis", -1) % x.dim()
    return [F.layer_norm(x, list(x.shape[axis:]), scale, bias, attrs.get("epsilon", 1e-5))]


def _reshape(inputs, attrs):
    x, shape = inputs[0], values(inputs[1], "a Reshape's target shape")
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def _flatten(inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 1) % max(x.dim(), 1)
    return [x.reshape(math.prod(x.shape[:axis]), -1)]


def _transpose(inputs, attrs):
    x = inputs[0]
    return [x.permute(attrs.get("perm", list(reversed(range(x.dim())))))]


def _axes(inputs, attrs, index: int = 1) -> Optional[List[int]]:
    if len(inputs) > index and inputs[index] is not None:
        return values(inputs[index], "axes")
    return attrs.get("axes")


def _unsqueeze(inputs, attrs):
    x = inputs[0]
    axes = sorted(a % (x.dim() + len(_axes(inputs, attrs))) for a in _axes(inputs, attrs))
    for a in axes:
        x = x.unsqueeze(a)
    return [x]


def _squeeze(inputs, attrs):
    x = inputs[0]
    axes = _axes(inputs, attrs)
    if axes is None:
        return [x.squeeze()]
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return [x]


def _concat(inputs, attrs):
    xs = _same_device(*[x for x in inputs if x is not None])
    return [torch.cat(xs, dim=attrs["axis"])]


def _gather(inputs, attrs):
    x, index = inputs[0], inputs[1]
    axis = attrs.get("axis", 0) % x.dim()
    if index.device.type == "meta":  # an embedding lookup: the indices are the input's own values
        return [torch.index_select(x, axis, index.reshape(-1).to(torch.int64)).reshape(
            *x.shape[:axis], *index.shape, *x.shape[axis + 1:])]
    idx = index.to(torch.int64)
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    if x.device.type != "meta" or idx.dim() == 0:
        return [x.index_select(axis, idx.reshape(-1).to(x.device)).reshape(*x.shape[:axis], *idx.shape,
                                                                              *x.shape[axis + 1:])]
    return [torch.index_select(x, axis, idx.reshape(-1).to("meta")).reshape(*x.shape[:axis], *idx.shape,
                                                                              *x.shape[axis + 1:])]


def _slice(inputs, attrs):
    x = inputs[0]
    starts, ends = values(inputs[1], "a Slice's start"), values(inputs[2], "a Slice's end")
    axes = values(inputs[3], "a Slice's axes") if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = values(inputs[4], "a Slice's steps") if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step < 0:
            raise UsageError("Slice with a negative step is not converted")
        size = x.shape[axis]
        start = max(0, min(size, start + size if start < 0 else start))
        end = max(0, min(size, end + size if end < 0 else end))
        index[axis % x.dim()] = slice(start, end, step)
    return [x[tuple(index)]]


def _split(inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 0)
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = values(inputs[1], "a Split's sizes")
    elif "split" in attrs:
        sizes = attrs["split"]
    else:
        n = attrs["num_outputs"]
        size = math.ceil(x.shape[axis] / n)
        sizes = [size] * (n - 1) + [x.shape[axis] - size * (n - 1)]
    return list(torch.split(x, sizes, dim=axis))


def _expand(inputs, attrs):
    x, shape = inputs[0], values(inputs[1], "an Expand's shape")
    shape = list(torch.broadcast_shapes(tuple(x.shape), tuple(shape)))
    return [x.expand(shape)]


def _reduce(fn):
    def run(inputs, attrs):
        x = inputs[0]
        axes = _axes(inputs, attrs)
        keep = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.dim()))
        return [fn(x, axes, keep)]
    return run


def _cast(inputs, attrs):
    dtype = DTYPES.get(attrs["to"])
    if dtype is None:
        raise UsageError(f"Cast to ONNX element type {attrs['to']} is not converted")
    return [inputs[0].to(dtype)]


def _constant(inputs, attrs):
    value = attrs.get("value")
    if value is None:
        for key in ("value_float", "value_int"):
            if key in attrs:
                return [torch.tensor(attrs[key])]
        for key in ("value_floats", "value_ints"):
            if key in attrs:
                return [torch.tensor(attrs[key])]
        raise UsageError("a Constant node without a value is not converted")
    return [value]


def _constant_of_shape(inputs, attrs):
    shape = values(inputs[0], "a ConstantOfShape's shape")
    fill = attrs.get("value")
    dtype = fill.dtype if fill is not None else torch.float32
    value = fill.reshape(-1)[0].item() if fill is not None and fill.device.type != "meta" else 0
    return [torch.full(shape, value, dtype=dtype)]


def _range(inputs, attrs):
    start, limit, delta = (t.item() for t in inputs[:3])
    return [torch.arange(start, limit, delta, dtype=inputs[0].dtype)]


def _where(inputs, attrs):
    c, a, b = _same_device(*inputs[:3])
    return [torch.where(c, a, b)]


def _clip(inputs, attrs):
    x = inputs[0]
    low = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min")
    high = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max")
    low = low.item() if isinstance(low, torch.Tensor) and low.device.type != "meta" else low
    high = high.item() if isinstance(high, torch.Tensor) and high.device.type != "meta" else high
    return [torch.clamp(x, low, high)]


def _softmax(fn):
    return lambda inputs, attrs: [fn(inputs[0], dim=attrs.get("axis", -1))]


def _gelu(inputs, attrs):
    return [F.gelu(inputs[0], approximate=attrs.get("approximate", "none"))]


def _pow(inputs, attrs):
    a, b = _same_device(*inputs[:2])
    return [torch.pow(a, b)]


def _pad(inputs, attrs):
    x = inputs[0]
    pads = values(inputs[1], "a Pad's pads") if len(inputs) > 1 and inputs[1] is not None else attrs["pads"]
    n = len(pads) // 2
    flat = [p for pair in zip(reversed(pads[:n]), reversed(pads[n:])) for p in pair]
    value = inputs[2].item() if len(inputs) > 2 and inputs[2] is not None and inputs[2].device.type != "meta" else 0.0
    return [F.pad(x, flat, mode={"constant": "constant", "reflect": "reflect", "edge": "replicate"}[
        attrs.get("mode", "constant")], value=value if attrs.get("mode", "constant") == "constant" else None)]


OPS: Dict[str, Callable[[List[Any], Dict[str, Any]], List[torch.Tensor]]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _binary(torch.matmul),
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Relu": _unary(F.relu),
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "HardSigmoid": lambda i, a: [torch.clamp(i[0] * a.get("alpha", 0.2) + a.get("beta", 0.5), 0, 1)
                                 if (a.get("alpha", 0.2), a.get("beta", 0.5)) != (1 / 6, 0.5) else F.hardsigmoid(i[0])],
    "HardSwish": _unary(F.hardswish),
    "LeakyRelu": lambda i, a: [F.leaky_relu(i[0], a.get("alpha", 0.01))],
    "Elu": lambda i, a: [F.elu(i[0], a.get("alpha", 1.0))],
    "Gelu": _gelu,
    "Erf": _unary(torch.erf),
    "Exp": _unary(torch.exp),
    "Log": _unary(torch.log),
    "Sqrt": _unary(torch.sqrt),
    "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs),
    "Reciprocal": _unary(torch.reciprocal),
    "Softmax": _softmax(torch.softmax),
    "LogSoftmax": _softmax(torch.log_softmax),
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _binary(lambda a, b: torch.div(a, b, rounding_mode="trunc") if not a.is_floating_point()
                   and not b.is_floating_point() else torch.div(a, b)),
    "Pow": _pow,
    "Equal": _binary(torch.eq),
    "Less": _binary(torch.lt),
    "Greater": _binary(torch.gt),
    "Max": lambda i, a: [torch.stack(torch.broadcast_tensors(*_same_device(*i))).amax(0)],
    "Min": lambda i, a: [torch.stack(torch.broadcast_tensors(*_same_device(*i))).amin(0)],
    "Where": _where,
    "Clip": _clip,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_pool("avg"),
    "GlobalMaxPool": _global_pool("max"),
    "ReduceMean": _reduce(lambda x, axes, keep: x.mean(axes, keepdim=keep)),
    "ReduceSum": _reduce(lambda x, axes, keep: x.sum(axes, keepdim=keep)),
    "ReduceMax": _reduce(lambda x, axes, keep: x.amax(axes, keepdim=keep)),
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "Gather": _gather,
    "Slice": _slice,
    "Split": _split,
    "Expand": _expand,
    "Shape": lambda i, a: [torch.tensor(list(i[0].shape)[a.get("start", 0):a.get("end")], dtype=torch.int64)],
    "Size": lambda i, a: [torch.tensor(i[0].numel(), dtype=torch.int64)],
    "Cast": _cast,
    "CastLike": lambda i, a: [i[0].to(i[1].dtype)],
    "Identity": lambda i, a: [i[0]],
    "Dropout": lambda i, a: [i[0]] + ([torch.ones_like(i[0], dtype=torch.bool)] if a.get("_outputs", 1) > 1 else []),
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Pad": _pad,
}
