"""archscope's own meta kernels (fast_meta.py) against PyTorch's: the same output metadata on
every case they take, and no case taken that PyTorch's kernel refuses."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from archscope.analysis.fast_meta import KERNELS, UNARY

aten = torch.ops.aten


def _meta(t):
    return tuple(t.shape), t.stride(), t.dtype


def _describe(out):
    if isinstance(out, torch.Tensor):
        return _meta(out)
    return tuple(_describe(o) for o in out)


def _compare(func, args, kwargs=None) -> bool:
    """True when the fast kernel took the case; then PyTorch's must agree on every output."""
    kwargs = kwargs or {}
    fast = KERNELS[func](*args, **kwargs)
    try:
        real = func(*args, **kwargs)
    except Exception as error:  # noqa: BLE001
        assert fast is None, f"{func} took a case PyTorch refuses ({error})"
        return False
    if fast is None:
        return False
    assert _describe(fast) == _describe(real), func
    return True


class _BothKernels(TorchDispatchMode):
    """Runs every op PyTorch's way and, where fast_meta has a kernel, compares the two."""

    def __init__(self):
        super().__init__()
        self.taken = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in KERNELS:
            fast = KERNELS[func](*args, **kwargs)
            real = func(*args, **kwargs)
            if fast is not None:
                assert _describe(fast) == _describe(real), (func, [getattr(a, "shape", a) for a in args])
                self.taken.add(func._overloadpacket.__name__)
            return real
        return func(*args, **kwargs)


def _models():
    import torchvision.models as tv

    from archscope.inputs import resolve_inputs
    from archscope.models import load_model

    for name in ("lenet", "alexnet", "vgg", "nin", "googlenet"):
        loaded = load_model(name, device="meta")
        yield name, loaded.module, resolve_inputs(None, loaded.module, loaded.default_input, None, None, None).shapes[0]
    for builder in (tv.resnet18, tv.mobilenet_v3_small, tv.vit_b_16, tv.convnext_tiny, tv.efficientnet_b0,
                    tv.mobilenet_v2):
        with torch.device("meta"):
            yield builder.__name__, builder(), (2, 3, 224, 224)
    with torch.device("meta"):
        layer = torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, norm_first=True)
        yield "encoder", torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), (2, 10, 64)


@pytest.mark.parametrize("train", [False, True])
def test_every_op_of_real_models_matches_pytorch(train):
    """On CNNs and transformers nobody wrote the kernels for, each op the fast kernels take gives
    exactly PyTorch's shapes, strides and dtypes; and they take the common ops."""
    taken = set()
    for _name, model, shape in _models():
        model.train(train)
        mode = _BothKernels()
        with torch.no_grad(), mode:
            model(torch.empty(shape, device="meta"))
        taken |= mode.taken
    assert {"convolution", "addmm", "relu", "max_pool2d_with_indices", "native_layer_norm", "gelu",
            "add", "mean", "relu_", "hardswish_", "add_", "silu_"} <= taken


_FLOATS = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64])
_DTYPES = st.sampled_from([torch.float32, torch.float16, torch.int64, torch.float64])
_LAYOUTS = st.sampled_from(["contiguous", "channels_last", "transposed"])


def _tensor(shape, dtype=torch.float32, layout="contiguous"):
    t = torch.empty(shape, dtype=dtype, device="meta")
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "transposed" and t.dim() >= 2:
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    return t


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 8), groups=st.sampled_from([1, 2, 4]), o=st.integers(1, 8),
       h=st.integers(1, 12), w=st.integers(1, 12), k=st.integers(1, 5), stride=st.integers(1, 3),
       pad=st.integers(0, 3), dil=st.integers(1, 2), bias=st.booleans(), dtype=_DTYPES, layout=_LAYOUTS,
       wdtype=_DTYPES)
def test_convolution(n, c, groups, o, h, w, k, stride, pad, dil, bias, dtype, layout, wdtype):
    x = _tensor((n, c * groups if c % 2 else c, h, w), dtype, layout)
    weight = _tensor((o * groups, c, k, k), wdtype)
    b = _tensor((o * groups,), dtype) if bias else None
    _compare(aten.convolution.default, (x, weight, b, [stride] * 2, [pad] * 2, [dil] * 2, False, [0, 0], groups))


@_SETTINGS
@given(shape=st.lists(st.integers(1, 9), min_size=3, max_size=4), k=st.integers(1, 4), stride=st.integers(0, 3),
       pad=st.integers(0, 2), dil=st.integers(1, 2), ceil=st.booleans(), dtype=_DTYPES, layout=_LAYOUTS,
       out=st.integers(0, 4))
def test_pooling(shape, k, stride, pad, dil, ceil, dtype, layout, out):
    x = _tensor(tuple(shape), dtype, layout)
    strides = [] if stride == 0 else [stride, stride]
    _compare(aten.max_pool2d_with_indices.default, (x, [k, k], strides, [pad, pad], [dil, dil], ceil))
    _compare(aten.avg_pool2d.default, (x, [k, k], strides, [pad, pad], ceil, True))
    _compare(aten._adaptive_avg_pool2d.default, (x, [out, out]))


@_SETTINGS
@given(m=st.integers(1, 6), k=st.integers(1, 6), p=st.integers(1, 6), k2=st.integers(1, 6), b=st.integers(1, 3),
       bias=st.sampled_from(["row", "full", "one_row", "column"]), dtype=_FLOATS, dtype2=_FLOATS, layout=_LAYOUTS)
def test_matrix_products(m, k, p, k2, b, bias, dtype, dtype2, layout):
    mat1, mat2 = _tensor((m, k), dtype, layout), _tensor((k2, p), dtype2, layout)
    shapes = {"row": (p,), "full": (m, p), "one_row": (1, p), "column": (m, 1)}
    _compare(aten.addmm.default, (_tensor(shapes[bias], dtype), mat1, mat2))
    _compare(aten.mm.default, (mat1, mat2))
    _compare(aten.bmm.default, (_tensor((b, m, k), dtype, layout), _tensor((b, k2, p), dtype2, layout)))


_SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=4)


@_SETTINGS
@given(a=_SHAPES, b=_SHAPES, dtype=_DTYPES, dtype2=_DTYPES, layout=_LAYOUTS, layout2=_LAYOUTS,
       number=st.sampled_from([2, 0.5, True]))
def test_element_wise(a, b, dtype, dtype2, layout, layout2, number):
    x, y = _tensor(tuple(a), dtype, layout), _tensor(tuple(b), dtype2, layout2)
    for op in (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor):
        _compare(op, (x, y))
    _compare(aten.add.Tensor, (x, y), {"alpha": 2})
    _compare(aten.mul.Scalar, (x, number))
    _compare(aten.add.Scalar, (x, number))
    for name in UNARY:
        _compare(getattr(aten, name).default, (x,))
        _compare_in_place(getattr(aten, f"{name}_").default, x)
    _compare(aten.hardtanh.default, (x, 0.0, 6.0))
    _compare_in_place(aten.hardtanh_.default, x, 0.0, 6.0)
    _compare_in_place(aten.leaky_relu_.default, x, 0.2)
    for op in (aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor, aten.div_.Tensor):
        _compare_in_place(op, x, y)
    _compare_in_place(aten.add_.Tensor, x, y, alpha=2)
    _compare_in_place(aten.mul_.Scalar, x, number)
    _compare_in_place(aten.add_.Scalar, x, number)


def _compare_in_place(func, x, *args, **kwargs) -> bool:
    """An in-place op writes its first argument: each kernel gets a fresh copy of it; when the fast one
    takes the case it must return its own argument, as PyTorch's does, and PyTorch must accept it."""
    mine, theirs = torch.empty_like(x), torch.empty_like(x)
    fast = KERNELS[func](mine, *args, **kwargs)
    try:
        real = func(theirs, *args, **kwargs)
    except Exception as error:  # noqa: BLE001
        assert fast is None, f"{func} took a case PyTorch refuses ({error})"
        return False
    if fast is None:
        return False
    assert real is theirs and fast is mine and _describe(mine) == _describe(theirs), func
    return True


@_SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), k=st.integers(0, 3), dim=st.integers(-5, 4),
       dims=st.lists(st.integers(-4, 3), min_size=0, max_size=3), keep=st.booleans(), dtype=_FLOATS,
       layout=_LAYOUTS, training=st.booleans())
def test_norms_softmax_reductions(shape, k, dim, dims, keep, dtype, layout, training):
    x = _tensor(tuple(shape), dtype, layout)
    normalized = list(shape[len(shape) - k:]) if k <= len(shape) else [2]
    _compare(aten.native_layer_norm.default, (x, normalized, _tensor(tuple(normalized)), None, 1e-5))
    if len(shape) >= 2:
        c = shape[1]
        stats = [_tensor((c,)) for _ in range(4)]
        _compare(aten.native_batch_norm.default, (x, *stats, training, 0.1, 1e-5))
        _compare(aten._native_batch_norm_legit_no_training.default, (x, *stats, 0.1, 1e-5))
    _compare(aten._softmax.default, (x, dim, False))
    _compare(aten._safe_softmax.default, (x, dim))
    _compare(aten.mean.dim, (x, dims, keep))


@_SETTINGS
@given(shapes=st.lists(st.lists(st.integers(1, 4), min_size=3, max_size=3), min_size=1, max_size=3),
       dim=st.integers(-3, 2), dtype=_FLOATS, layout=_LAYOUTS)
def test_cat(shapes, dim, dtype, layout):
    tensors = [_tensor(tuple(s), dtype, layout if i == 0 else "contiguous") for i, s in enumerate(shapes)]
    _compare(aten.cat.default, (tensors, dim))



@_SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), n=st.integers(1, 3), dim=st.integers(-4, 3),
       dtype=_FLOATS, layout=_LAYOUTS, other=st.booleans())
def test_stack(shape, n, dim, dtype, layout, other):
    tensors = [_tensor(tuple(shape), dtype, layout if i == 0 else "contiguous") for i in range(n)]
    if other and n > 1:  # a tensor of another shape: PyTorch refuses, the kernel must decline
        tensors[-1] = _tensor(tuple(shape) + (2,), dtype)
    _compare(aten.stack.default, (tensors, dim))


@_SETTINGS
@given(steps=st.integers(1, 5), batch=st.integers(1, 3), features=st.integers(1, 6), hidden=st.integers(1, 6),
       batch_first=st.booleans(), dtype=_FLOATS, layout=_LAYOUTS)
def test_mkldnn_rnn_layer(steps, batch, features, hidden, batch_first, dtype, layout):
    x = _tensor((batch, steps, features) if batch_first else (steps, batch, features), dtype, layout)
    w_ih, w_hh = _tensor((4 * hidden, features), dtype), _tensor((4 * hidden, hidden), dtype)
    b_ih, b_hh = _tensor((4 * hidden,), dtype), _tensor((4 * hidden,), dtype)
    hx, cx = _tensor((batch, hidden), dtype), _tensor((batch, hidden), dtype)
    _compare(aten.mkldnn_rnn_layer.default, (x, w_ih, w_hh, b_ih, b_hh, hx, cx, False, [], 2, hidden, 1, True, False,
                                             batch_first, False))


def test_a_real_lstm_layer_on_meta_matches_pytorch():
    """The arguments an nn.LSTM really passes (heavy_on_meta.py sends them to meta) take the fast kernel."""
    from archscope.analysis.heavy_on_meta import HeavyOnMeta

    seen = []

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is aten.mkldnn_rnn_layer.default:
                metas = [torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device="meta")
                         if isinstance(a, torch.Tensor) else a for a in args]
                seen.append(_compare(func, tuple(metas), kwargs))
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), HeavyOnMeta(), Spy():
        torch.nn.LSTM(8, 16, 2, batch_first=True)(torch.zeros(3, 5, 8))
    assert seen == [True, True]
