"""archscope's FLOP counter: a small dispatch mode over PyTorch's own formulas.

Every aten op that runs inside the mode is looked up in ``torch.utils.flop_counter``'s
registry (PyTorch maintains those formulas) plus a few of our own for the fused CPU fast
paths PyTorch has none for (multi-head attention, the transformer encoder layer, CPU
flash attention, oneDNN's LSTM/GRU layer). Its FLOPs are charged to whatever the tracer
says is running now (``path_changed``), so a row's FLOPs are exactly the ops executed
while that module was the innermost one on the hook stack.

An op that does arithmetic but has no formula is not silently dropped: it is collected in
``uncounted`` (op name → times run), and the report prints it under the table. Ops that
the FLOPs convention leaves out on purpose (element-wise, pooling, normalisation,
reductions, data movement) are not "uncounted": they are outside the convention.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, List, Optional

import torch
from torch.utils._pytree import tree_leaves

from archscope.analysis.fast_meta import fast_meta
from archscope.analysis.meta_shapes import grouped_mm_shape, meta_fallback
from archscope.analysis.mixed_dtypes import refuse_mixed_dtypes
from archscope.analysis.traffic import fresh_sizes, is_view, op_bytes, work_kind
from archscope.dispatch import DispatchMode, writes_first_in_place

aten = torch.ops.aten

CONVENTION = (
    "FLOPs = 2 x MACs of conv/linear/matmul/attention/RNN, counted at dispatch level with "
    "torch.utils.flop_counter's formulas (plus archscope's for fused CPU kernels); activations, "
    "pooling, normalisation and element-wise ops are not counted; ops with arithmetic but no "
    "formula are listed as uncounted"
)

# --------------------------------------------------------------------------- extra formulas
# Each takes the op's real arguments (tensors, not shapes) and returns FLOPs. They count what
# the unfused path counts on the meta device, so a model's FLOPs do not depend on the device.


def _mha_core(batch: int, q_len: int, kv_len: int, embed: int) -> int:
    """In-projection of q, k, v, the two attention matmuls, out-projection (2 x MACs)."""
    projections = 2 * batch * (q_len + 2 * kv_len) * embed * embed
    attention = 2 * 2 * batch * q_len * kv_len * embed  # q·kᵀ, then weights·v, summed over heads
    out = 2 * batch * q_len * embed * embed
    return projections + attention + out


def _native_mha(query, key, value, embed_dim, *args, **kwargs) -> int:
    # Fast path of nn.MultiheadAttention in eval: tensors are (batch, length, embed), or nested
    # (ragged: a padding mask left only each sequence's real tokens).
    if getattr(query, "is_nested", False):
        q_lens = [int(part.shape[0]) for part in query.unbind()]
        k_lens = [int(part.shape[0]) for part in key.unbind()] if getattr(key, "is_nested", False) else \
            [int(key.shape[1])] * len(q_lens)
        return sum(_mha_core(1, q, k, int(embed_dim)) for q, k in zip(q_lens, k_lens))
    batch, q_len = query.shape[0], query.shape[1]
    return _mha_core(batch, q_len, key.shape[1], int(embed_dim))


def _encoder_layer(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias,
                   use_gelu, norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2,
                   ffn_weight_1, *args, **kwargs) -> int:
    # Fast path of nn.TransformerEncoderLayer in eval: self-attention, then the two FFN linears.
    embed, hidden = int(embed_dim), ffn_weight_1.shape[0]
    if getattr(src, "is_nested", False):
        # A padding mask made the input ragged: only real tokens are computed, each sequence
        # attending within itself.
        lengths = [int(part.shape[0]) for part in src.unbind()]
        tokens, pairs = sum(lengths), sum(n * n for n in lengths)
        return 2 * tokens * 4 * embed * embed + 2 * 2 * pairs * embed + 2 * 2 * tokens * embed * hidden
    batch, length = src.shape[0], src.shape[1]
    return _mha_core(batch, length, length, embed) + 2 * 2 * batch * length * embed * hidden


def _cpu_flash_attention(query, key, value, *args, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query.shape, key.shape, value.shape)


def _attention_backward(grad_out, query, key, value, *args, **kwargs) -> int:
    """The fused attention backwards (CPU flash, which PyTorch has no formula for, and CUDA's):
    the four products of the math path's backward. PyTorch's own formula adds a fifth, the
    scores a flash kernel recomputes; the convention counts the algorithm, not a kernel's
    recomputation, so meta (the math path), CPU and CUDA agree."""
    from torch.utils.flop_counter import sdpa_backward_flop_count

    total = sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)
    b, h, s_q, d = query.shape
    return total - 2 * b * h * s_q * d * key.shape[2]  # minus q·kᵀ recomputed


def _conv_backward(grad_out, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
                   output_mask, *args, **kwargs) -> int:
    # Each multiply x·w of the forward has one partner in grad_input (grad_out·w) and one in
    # grad_weight (x·grad_out), so each costs what the forward did. PyTorch 2.14's own formula
    # transposes the shapes as if groups were 1 and counts grad_weight of a grouped conv
    # `groups` times (65x the forward for a 64-channel depthwise conv instead of 3x).
    forward = _conv_flops(x.shape, w.shape, grad_out.shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


# The products nearly every model runs, by hand: the same formulas as torch.utils.flop_counter's
# (tests compare them with FlopCounterMode), so that a command counting a CNN does not import that
# module, which imports Triton where it is installed (0.1-0.2 s of a fresh process).
def _conv_flops(x_shape, w_shape, out_shape, transposed: bool) -> int:
    """Each output position of each output channel is a dot product over the kernel and the input
    channels of its group (``w_shape[1]``); a transposed conv does that at each *input* position."""
    positions = math.prod((x_shape if transposed else out_shape)[2:])
    c_out, c_in = w_shape[0], w_shape[1]
    return 2 * x_shape[0] * positions * c_out * c_in * math.prod(w_shape[2:])


def _convolution_formula(args, kwargs, out) -> int:
    x, w = args[0], args[1]
    transposed = args[6] if len(args) > 6 else kwargs.get("transposed", False)
    return _conv_flops(x.shape, w.shape, out.shape, bool(transposed))


def _mm_formula(args, kwargs, out) -> int:
    a, b = args[0], args[1]
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _addmm_formula(args, kwargs, out) -> int:
    return _mm_formula(args[1:], kwargs, out)


def _bmm_formula(args, kwargs, out) -> int:
    a, b = args[0], args[1]
    return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _baddbmm_formula(args, kwargs, out) -> int:
    return _bmm_formula(args[1:], kwargs, out)


CORE_FORMULAS: Dict[Any, Callable[[tuple, dict, Any], int]] = {
    aten.convolution: _convolution_formula,
    aten._convolution: _convolution_formula,
    aten.mm: _mm_formula,
    aten.addmm: _addmm_formula,
    aten.bmm: _bmm_formula,
    aten.baddbmm: _baddbmm_formula,
}


def _pytorch_formulas() -> Dict[Any, Any]:
    """torch.utils.flop_counter's registry, imported the first time an op needs it."""
    from torch.utils.flop_counter import flop_registry

    return flop_registry


def _mkldnn_rnn_layer(input, weight0, weight1, *args, **kwargs) -> int:
    # One direction of one LSTM/GRU/RNN layer: every time step multiplies the input by W_ih
    # and the hidden state by W_hh (gates stacked in the rows of both).
    steps_times_batch = input.shape[0] * input.shape[1]
    return 2 * steps_times_batch * (weight0.numel() + weight1.numel())


def _mv(mat, vec, *args, **kwargs) -> int:
    return 2 * mat.shape[0] * mat.shape[1]


def _addmv(self, mat, vec, *args, **kwargs) -> int:
    return _mv(mat, vec)


def _addbmm(self, batch1, batch2, *args, **kwargs) -> int:
    # Σ over the batch of (n x m) @ (m x p), reduced into one (n x p)
    b, n, m = batch1.shape
    return 2 * b * n * m * batch2.shape[2]


def _linear(input, weight, bias=None, *args, **kwargs) -> int:
    # Seen only on nested tensors (a dense linear decomposes into addmm/mm, which are counted).
    return 2 * input.numel() * weight.shape[0]


def _dot(a, b, *args, **kwargs) -> int:
    return 2 * a.numel()


def _grouped_mm(mat_a, mat_b, offs=None, *args, **kwargs) -> int:
    # Mixture-of-experts (transformers >= 5): each row (token) is multiplied by its group's
    # (expert's) matrix, so the products are those of one matmul over all rows, whichever
    # expert each row went to. (Rows past the last offset are skipped by the kernel; the models
    # that use it assign every row.) 2-D x 2-D (a weight's gradient) splits the contraction
    # instead: each of its indices belongs to one group's output, not to all G of them.
    if mat_a.dim() == 2 and mat_b.dim() == 2:
        return 2 * mat_a.shape[0] * mat_a.shape[1] * mat_b.shape[1]
    return 2 * math.prod(grouped_mm_shape(mat_a, mat_b, offs)) * mat_a.shape[-1]


def _grouped_mm_fallback(input, weight, *args, **kwargs) -> int:
    # transformers' own loop over experts where torch._grouped_mm is unavailable: (S, K) x (E, K, N).
    return 2 * input.shape[0] * input.shape[1] * weight.shape[-1]


def _grouped_mm_fallback_backward(input, weight, offs, grad_output, *args, **kwargs) -> int:
    return 2 * _grouped_mm_fallback(input, weight)  # grad_input and grad_weight: one product each


def _linear_dynamic(input, packed, *args, **kwargs) -> int:
    # A dynamically quantized Linear: int8 weights, the same multiply-adds as the float layer.
    weight, _ = torch.ops.quantized.linear_unpack(packed)
    return 2 * input.numel() * weight.shape[0]


EXTRA_FORMULAS: Dict[Any, Callable[..., int]] = {
    torch.ops.quantized.linear_dynamic: _linear_dynamic,
    aten.mv: _mv,
    aten.linear: _linear,
    aten.addmv: _addmv,
    aten.addbmm: _addbmm,
    aten.dot: _dot,
    aten.vdot: _dot,
    aten._native_multi_head_attention: _native_mha,
    aten._transformer_encoder_layer_fwd: _encoder_layer,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward,
    aten._scaled_dot_product_flash_attention_backward: _attention_backward,
    aten._scaled_dot_product_efficient_attention_backward: _attention_backward,
    aten.mkldnn_rnn_layer: _mkldnn_rnn_layer,
    aten.convolution_backward: _conv_backward,
    aten._grouped_mm: _grouped_mm,
}

# Custom ops of libraries that may not be imported, by their schema name.
FORMULAS_BY_NAME: Dict[str, Callable[..., int]] = {
    "transformers::grouped_mm_fallback": _grouped_mm_fallback,
    "transformers::grouped_mm_fallback_backward": _grouped_mm_fallback_backward,
}

# --------------------------------------------------------------------------- what the convention leaves out

# Not arithmetic the convention counts: pooling, normalisation, reductions, softmax, data
# movement and creation. Element-wise ops are recognised by PyTorch's own "pointwise" tag.
_NOT_COUNTED_BY_CONVENTION = {
    # activations (most carry PyTorch's pointwise tag; these do not, or not in every version)
    "hardswish", "hardsigmoid", "silu", "gelu", "mish", "elu", "leaky_relu", "softplus", "threshold",
    "hardtanh", "prelu", "_prelu_kernel", "glu", "log_sigmoid_forward", "rrelu_with_noise", "relu", "sigmoid",
    "tanh", "dropout", "feature_dropout", "alpha_dropout",
    # pooling
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "max_unpool2d", "_mkldnn_max_pool2d",
    # normalisation
    "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional", "native_layer_norm", "native_group_norm", "_batch_norm_with_update",
    "_batch_norm_no_update", "_fused_rms_norm", "batch_norm", "instance_norm", "local_response_norm",
    # reductions and softmax
    "sum", "mean", "amax", "amin", "max", "min", "prod", "var", "std", "var_mean", "std_mean", "norm",
    "linalg_vector_norm", "argmax", "argmin", "cumsum", "cumprod", "logsumexp", "all", "any",
    "_softmax", "_log_softmax", "_safe_softmax", "softmax", "log_softmax", "topk", "sort", "median",
    # data movement, creation, indexing
    "_unsafe_view", "unfold", "alias", "select", "slice", "as_strided", "diagonal", "expand", "permute", "split", "unsafe_split", "split_with_sizes", "unsafe_split_with_sizes",
    "chunk", "unbind", "cat", "stack", "clone", "copy", "copy_", "_to_copy", "contiguous", "empty", "empty_like",
    "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_empty",
    "new_zeros", "new_ones", "new_full", "new_empty_strided", "fill", "fill_", "zero_", "arange",
    "linspace", "scalar_tensor", "lift_fresh", "lift_fresh_copy", "index", "index_select", "gather",
    "scatter", "scatter_add", "index_put", "index_put_", "masked_fill", "masked_fill_", "where",
    "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "replicate_pad2d", "replication_pad2d",
    "roll", "flip", "repeat", "tril", "triu", "embedding", "embedding_dense", "one_hot", "nonzero", "masked_select",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact2d",
    "upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_bicubic2d", "grid_sampler_2d",
    "im2col", "col2im", "channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "native_dropout",
    "bernoulli", "bernoulli_", "rand", "randn", "rand_like", "randn_like", "randint", "randperm",
    "normal", "uniform_", "normal_", "item", "_local_scalar_dense", "equal", "allclose", "isin",
    "unique", "_unique2", "bincount", "histc", "floor_divide", "searchsorted", "bucketize", "set_", "resize_",
    "sym_constrain_range_for_size", "_assert_async", "_assert_scalar", "_functional_assert_async",
    "_nested_tensor_from_mask", "_nested_tensor_from_mask_left_aligned", "to_padded_tensor",
    "_nested_tensor_from_tensor_list", "nested_to_padded_tensor",
    "nms", "roi_align", "roi_pool", "ps_roi_align", "ps_roi_pool",  # torchvision's detection helpers
}


def _element_wise(func) -> bool:
    """An op overload the convention leaves out by its kind: element-wise, or named in the set above."""
    return torch.Tag.pointwise in func.tags or func._overloadpacket.__name__.rstrip("_") in _NOT_COUNTED_BY_CONVENTION


_BACKWARD_SUFFIXES = ("_backward_data", "_backward_input", "_backward_weight", "_backward")


def _outside_convention(func) -> bool:
    if torch.Tag.pointwise in func.tags or torch.Tag.view_copy in func.tags:
        return True
    schema = func._schema
    if any(r.alias_info is not None for r in schema.returns) or not schema.returns:
        return True  # views, in-place ops returning self, ops returning nothing
    name = func._overloadpacket.__name__.rstrip("_")
    for suffix in _BACKWARD_SUFFIXES:  # the backward of an op outside the convention is outside it too
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            forward = getattr(getattr(aten, name, None), "default", None)
            if forward is not None and torch.Tag.pointwise in forward.tags:
                return True
            break
    return name in _NOT_COUNTED_BY_CONVENTION


# Queries about a tensor's layout are not ops a model "runs".
METADATA_OPS = {
    aten.is_contiguous.default, aten.is_contiguous.memory_format, aten.sym_size.default,
    aten.sym_stride.default, aten.sym_numel.default, aten.sym_storage_offset.default,
    aten.size.default, aten.stride.default, aten.numel.default, aten.dim.default,
    aten.storage_offset.default, aten.is_strides_like_format.default,
    aten.is_non_overlapping_and_dense.default, torch.ops.prim.layout.default,
    torch.ops.prim.device.default,
}


@dataclass
class OpCost:
    """One op as it ran: whose it was (call path, None outside any module), in which pass, its
    FLOPs by the convention, the bytes it read and wrote, and the dtype it computed in."""

    key: Hashable
    phase: str  # "forward" | "backward"
    op: str
    flops: int
    bytes: int  # read + written
    dtype: str
    kind: str = "other"  # "gemm" | "pool" | "norm" | "other": how a time model rates it
    size: int = 0  # gemm: its smallest dimension; pool: window elements; norm: elements
    fresh: tuple = ()  # bytes of each output written into a newly allocated tensor (not in place)


class FlopCounter(DispatchMode):
    """Counts FLOPs per attribution key: the call path the tracer's recorder last named
    (``path_changed``; a ``PathListener``).

    With ``record_ops`` it also keeps one ``OpCost`` per op that moves data (views and
    metadata queries are not kernels): what a time model needs, at a little extra cost."""

    def __init__(self, record_ops: bool = False):
        super().__init__()
        self.record_ops = record_ops
        self.ops: List[OpCost] = []
        self._phase = "forward"
        self.by_key: Dict[Hashable, int] = {}
        self.total = 0
        self.uncounted: Counter = Counter()
        self.current: Hashable = None  # the key ops are charged to now (None: outside any module)
        self.backward_by_key: Optional[Dict[Hashable, int]] = None  # set by a training-step trace
        self.backward_total: Optional[int] = None
        self.forward_by_key: Dict[Hashable, int] = self.by_key  # the forward's table while backward counts
        self.forward_total = 0
        self._formulas: Dict[Any, Any] = {}  # op overload → formula, for this counter's run
        self._decomposable: Dict[Any, bool] = {}  # op overload → whether it has a decomposition
        self.data_dependent = False  # an op read a tensor's values (.item(), nonzero...): the input's values mattered
        self.routed = False  # a grouped matmul ran: tokens went through experts a router chose (mixture of experts)
        self._outputs: Dict[Any, Any] = {}  # meta op signature → its outputs' metadata (see _run)
        self.refuse_mixed = False  # on meta: the dtype check a real kernel makes (mixed_dtypes.py; mode_stack sets it)
        self.beneath = None  # what runs each op instead of a plain call (heavy_on_meta.HeavyBeneath sets it)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in METADATA_OPS:
            return func(*args, **kwargs)
        if self.refuse_mixed:
            refuse_mixed_dtypes(func, args)
        if func._overloadpacket in _READS_VALUES:
            self.data_dependent = True
        if self._formula(func) is _UNCOUNTED and self._decomposes(func) and not _has_nested(args):
            with self:  # no formula: count what it decomposes into, when it has a decomposition
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = self._run(func, args, kwargs)
        flops = self._flops(func, args, kwargs, out)
        if func in _ROUTING:
            self.routed = True
        if flops:
            self.total += flops
            key = self.current
            self.by_key[key] = self.by_key.get(key, 0) + flops
        if self.record_ops and not is_view(func):
            name = func._overloadpacket.__name__
            kind, size = work_kind(name, args, out)
            self.ops.append(OpCost(self.current, self._phase, name, flops, op_bytes(func, args, kwargs, out),
                                   _compute_dtype(args, out), kind, size, fresh_sizes(args, kwargs, out)))
        return out

    def _run(self, func, args, kwargs):
        """The op's output. On meta, PyTorch's Python meta kernels cost up to a millisecond an op and
        give the same output for the same signature (op, shapes, strides, dtypes, other arguments),
        so a transformer's twelfth identical block reuses the first's outputs' metadata, as
        FakeTensorMode's dispatch cache does; the common ops' first run skips PyTorch's Python kernel
        (fast_meta.py). Views, ops that read values or change a tensor's shape in
        place are not cached; an op that writes its first argument's contents returns that argument."""
        cacheable = _cacheable(func)
        key = _signature(func, args, kwargs) if cacheable else None
        if key is not None:
            made = self._outputs.get(key)
            if made is not None:
                return args[0] if made is _SELF else _remake(made)
        out = fast_meta(func, args, kwargs) if key is not None else None  # plain meta tensors only
        if out is None:
            try:
                out = func(*args, **kwargs) if self.beneath is None else self.beneath.run(func, args, kwargs)
            except RuntimeError:
                out = meta_fallback(func, args, kwargs)  # a meta kernel stricter than the CPU one
                if out is None:
                    raise
        if key is not None:
            made = _SELF if cacheable is _SELF else _describe(out)
            if made is not None:
                self._outputs[key] = made
        return out

    def path_changed(self, path: Hashable) -> None:
        self.current = path

    def fresh(self) -> "FlopCounter":
        """A new, empty counter with the same options (for a second attempt)."""
        return FlopCounter(record_ops=self.record_ops)

    def _formula(self, func):
        # Looked up once per op per counter, not per process: a formula added to EXTRA_FORMULAS after a
        # first trace counts from the next trace on.
        formula = self._formulas.get(func)
        if formula is None:
            formula = self._formulas[func] = self._formula_for(func)
        return formula

    def _decomposes(self, func) -> bool:
        """Whether ``func.decompose`` would find a decomposition (the test it makes itself), asked once per
        op per counter: most ops without a formula have none, and re-entering the mode to learn that
        costs a mode push and pop per op."""
        known = self._decomposable.get(func)
        if known is None:
            implicit = torch._C.DispatchKey.CompositeImplicitAutograd
            known = self._decomposable[func] = implicit in func.py_kernels or \
                torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), implicit)
        return known

    def _flops(self, func, args, kwargs, out) -> int:
        formula = self._formula(func)
        if formula is _UNCOUNTED:
            self.uncounted[f"{func.namespace}.{func._overloadpacket.__name__}"] += 1
            return 0
        if formula is _ZERO:
            return 0
        if _has_nested(args) or _has_nested(kwargs.values()):
            try:
                return int(formula(args, kwargs, out))  # a formula that knows nested tensors
            except (RuntimeError, NotImplementedError):
                return _per_component(formula, args, kwargs, out)
        return int(formula(args, kwargs, out))

    @staticmethod
    def _formula_for(func):
        if func._overloadpacket is aten._grouped_mm or func._schema.name.startswith("transformers::grouped_mm"):
            _ROUTING.add(func)  # a mixture of experts' grouped matmul: tokens go through the experts a router chose
        packet = func._overloadpacket
        name = packet.__name__
        if name.endswith("_") and not name.startswith("_"):
            # In-place arithmetic (addmm_, baddbmm_, addmv_...) costs what its out-of-place form does.
            functional = getattr(aten, name[:-1], None)
            same = getattr(functional, func._overloadname, None) if functional is not None else None
            if functional is not None and not (same is not None and _element_wise(same)) and (
                    functional in CORE_FORMULAS or functional in EXTRA_FORMULAS or functional in _pytorch_formulas()):
                packet = functional
        if packet in CORE_FORMULAS:
            return CORE_FORMULAS[packet]
        if packet in EXTRA_FORMULAS or func._schema.name in FORMULAS_BY_NAME:
            extra = EXTRA_FORMULAS.get(packet) or FORMULAS_BY_NAME[func._schema.name]

            def formula(args, kwargs, out):
                try:
                    return extra(*args, **kwargs)
                except (ValueError, IndexError, AttributeError, TypeError):
                    registered = _pytorch_formulas().get(packet)
                    if registered is None:  # a layout ours does not read (varlen attention): PyTorch's
                        raise
                    return registered(*args, **kwargs, out_val=out)

            return formula
        if _element_wise(func) or is_view(func):
            return _ZERO  # left out by its kind: no such op has a formula (tests check), so no registry is needed
        registry = _pytorch_formulas()
        if packet in registry:
            # PyTorch's registered formulas take shapes behind a wrapper that maps every argument with
            # pytree (a fifth of a small model's trace time); the same shapes, mapped directly.
            registered = registry[packet]
            on_shapes = getattr(registered, "__wrapped__", None)
            if on_shapes is None:
                return lambda args, kwargs, out: registered(*args, **kwargs, out_val=out)
            return lambda args, kwargs, out: on_shapes(*_shapes(args), **_shapes(kwargs), out_shape=_shapes(out))
        if _outside_convention(func):
            return _ZERO
        return _UNCOUNTED

    def begin_backward(self) -> None:
        """From now on count into a fresh table: the backward pass of a training step."""
        self.forward_by_key, self.forward_total = self.by_key, self.total
        self.by_key, self.total = {}, 0
        self._phase = "backward"

    def end_backward(self) -> None:
        """Keep the backward table aside; the forward's is the main one again."""
        self.backward_by_key, self.backward_total = self.by_key, self.total
        self.by_key, self.total = self.forward_by_key, self.forward_total
        self._phase = "forward"

    def uncounted_ops(self) -> Dict[str, int]:
        return dict(sorted(self.uncounted.items(), key=lambda kv: (-kv[1], kv[0])))


# --------------------------------------------------------------------------- the meta output cache

_CACHEABLE: Dict[Any, bool] = {}
_ROUTING: set = set()  # grouped-matmul overloads seen (their formula is looked up before they count)
PLAIN_VALUES = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)
PLAIN_TYPES = frozenset(PLAIN_VALUES)  # the same, for an exact-type test (no subclass)
_PLAIN = PLAIN_VALUES  # arguments an op's signature keys by value


_SELF = object()  # an in-place op's cached answer: its first argument, already checked once for this signature


def _cacheable(func):
    """True for a functional op (fresh outputs), ``_SELF`` for an op that writes its first argument's
    contents in place (relu_, add_: its output is that argument), False otherwise."""
    known = _CACHEABLE.get(func)
    if known is None:
        schema = func._schema
        if func._overloadpacket in _READS_VALUES or torch.Tag.nondeterministic_seeded in func.tags:
            known = False
        elif bool(schema.returns) and all(r.alias_info is None for r in schema.returns) and not schema.is_mutable:
            known = True
        elif writes_first_in_place(func):
            known = _SELF
        else:
            known = False
        _CACHEABLE[func] = known
    return known


def _signature(func, args, kwargs):
    """A hashable key of the op's inputs when every tensor is a plain meta tensor, else None.

    Flat over the arguments (most are tensors and plain values: no call per argument), ``_key``
    for the rest; a marker between the positional and the keyword arguments keeps it unambiguous."""
    for a in args:  # the first tensor says whether this is a meta run at all (cheap to ask)
        if isinstance(a, torch.Tensor):
            if a.device.type != "meta":
                return None
            break
    parts = [func]
    add = parts.append
    for value in args:
        kind = type(value)
        if kind is torch.Tensor or kind is torch.nn.Parameter:
            if value.device.type != "meta" or value.is_nested or value.layout is not torch.strided:
                return None
            add((value.shape, value.stride(), value.storage_offset(), value.dtype))
        elif kind in PLAIN_TYPES:
            add((kind, value))  # 1, 1.0 and True hash alike but promote differently
        elif (kind is list or kind is tuple) and PLAIN_TYPES.issuperset(map(type, value)):
            add((kind, tuple(value), tuple(map(type, value))))  # a stride, a padding: 3 items, unlike _key's
        else:
            key = _key(value)
            if key is None:
                return None
            add(key)
    if kwargs:
        add(_KWARGS)
        key = _key(kwargs)
        if key is None:
            return None
        add(key)
    return tuple(parts)


_KWARGS = "(keyword arguments follow)"  # a str: no positional argument's key is a bare str


def _key(x):
    if type(x) is torch.Tensor or type(x) is torch.nn.Parameter:
        if x.device.type != "meta" or x.is_nested or x.layout is not torch.strided:
            return None
        return (x.shape, x.stride(), x.storage_offset(), x.dtype)
    if isinstance(x, _PLAIN):
        return (type(x), x)  # 1, 1.0 and True hash alike but promote differently
    if type(x) in (list, tuple):
        keys = tuple(_key(i) for i in x)
        return None if any(k is None for k in keys) else (type(x), keys)
    if type(x) is dict:
        keys = tuple((k, _key(v)) for k, v in x.items())
        return None if any(k[1] is None for k in keys) else keys
    return None


def _describe(out):
    if type(out) is torch.Tensor:
        if out.device.type != "meta" or out.is_nested or out.layout is not torch.strided:
            return None
        return (out.shape, out.stride(), out.dtype)
    if type(out) in (tuple, list):
        parts = tuple(None if o is None else _describe(o) for o in out)
        if any(p is None and o is not None for p, o in zip(parts, out)):
            return None
        return (type(out), parts)
    return None


def _remake(made):
    if type(made[0]) is type:  # a tuple or list of outputs
        kind, parts = made
        return kind(None if p is None else _remake(p) for p in parts)
    shape, stride, dtype = made
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


def _shapes(x):
    """Tensors → their shapes, through lists, tuples and dicts (what PyTorch's formulas read)."""
    if isinstance(x, torch.Tensor):
        return x.shape
    if type(x) in (list, tuple):
        return type(x)(_shapes(i) for i in x)
    if type(x) is dict:
        return {k: _shapes(v) for k, v in x.items()}
    return x


def _has_nested(items) -> bool:
    for x in items:
        if isinstance(x, torch.Tensor):
            if x.is_nested:
                return True
        elif type(x) in (list, tuple) and _has_nested(x):
            return True
    return False


def _per_component(formula, args, kwargs, out) -> int:
    """A nested (ragged) tensor's op is the op on each of its components: the formula's sum over them."""
    def nth(i):
        return lambda x: x.unbind()[i] if isinstance(x, torch.Tensor) and x.is_nested else x

    count = next(len(t.unbind()) for t in tree_leaves((args, kwargs)) if getattr(t, "is_nested", False))
    total = 0
    for i in range(count):
        a, k, o = torch.utils._pytree.tree_map(nth(i), (args, kwargs, out))
        total += int(formula(a, k, o))
    return total


def _compute_dtype(args, out) -> str:
    """The dtype an op computes in: its first floating output's, else its first input's."""
    for leaves in (tree_leaves(out), tree_leaves(args)):
        tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
        for t in tensors:
            if t.is_floating_point():
                return str(t.dtype).removeprefix("torch.")
        if tensors:
            return str(tensors[0].dtype).removeprefix("torch.")
    return "none"


_READS_VALUES = {aten._local_scalar_dense, aten.nonzero, aten.is_nonzero, aten.equal, aten.masked_select,
                 aten._unique2, aten.unique_consecutive, aten.unique_dim}

_ZERO = object()
_UNCOUNTED = object()
