"""Will it fit? Memory of inference and of one training step, measured on the meta device.

- parameters, gradients (one per trainable parameter), optimizer state (Adam: two tensors per
  trainable parameter, SGD with momentum: one, plain SGD: none);
- activations saved for backward: every tensor autograd saves during a train-mode forward,
  seen through ``torch.autograd.graph.saved_tensors_hooks``; tensors that share storage (views,
  in-place results) are counted once, and the parameters themselves are not activations;
- the training peak: backward walks the forward in reverse, releasing saved activations as it
  creates gradients, so the step holds at most max over ops t of (activations saved before t +
  gradients of parameters first used at or after t), beside parameters and optimizer state;
- the inference peak: the most activation memory alive at once during a no-grad forward,
  followed storage by storage as ops create tensors and Python drops them.

Nothing is allocated: on meta a tensor has a size but no data. With ``amp``, the inputs that
autocast would cast to bfloat16 (those of convolutions and matrix products) are saved at 2 bytes
an element instead of 4. An optimizer's own temporaries during ``step()`` are not included.
"""
from __future__ import annotations

import math
import re
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from archscope.analysis.counter import FlopCounter
from archscope.analysis.hooks import Recorder
from archscope.analysis.known_values import KnownValues
from archscope.analysis.modes import mode_stack
from archscope.analysis.records import Result
from archscope.analysis.rows import build_rows, per_row
from archscope.analysis.run import follow_made_values
from archscope.dispatch import DispatchMode
from archscope.errors import UsageError, first_line
from archscope.inputs import resolve_inputs
from archscope.models import load_model

OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 0, "sgd-momentum": 1}
_AUTOCAST_OPS = {"convolution", "mm", "addmm", "bmm", "baddbmm", "matmul", "linear"}
UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
         "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_bytes(text: str) -> int:
    """``"16GiB"`` → 17179869184, ``"500MB"`` → 500000000."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in UNITS:
        raise UsageError(f"malformed size '{text}': expected e.g. 16GiB, 500MB or 2e9")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


@dataclass(repr=False)
class MemoryReport(Result):
    model: str
    input_shape: Any
    batch: int
    optimizer: str
    amp: bool
    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int  # saved for backward by one training forward
    inference_peak_bytes: int  # most activation memory alive at once in a no-grad forward
    backward_peak_bytes: int  # most saved activations + gradients held at once during backward
    note: Optional[str] = None
    fit_budget: Optional[int] = None
    fit_batch: Optional[int] = None  # the largest batch whose training step fits fit_budget
    depth: Optional[int] = None
    rows: Optional[List["MemoryRow"]] = None  # per row at ``depth``
    checkpointed: Optional["Checkpointing"] = None
    sharding: Optional["Sharding"] = None

    @property
    def training_bytes(self) -> int:
        """The peak of a training step: parameters, optimizer state, and the most activations +
        gradients held at once (at most all of both: backward frees one as it makes the other)."""
        return self.params_bytes + self.optimizer_bytes + self.backward_peak_bytes

    @property
    def inference_bytes(self) -> int:
        return self.params_bytes + self.inference_peak_bytes

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "input_shape": self.input_shape, "batch": self.batch,
                "optimizer": self.optimizer, "amp": self.amp, "params_bytes": self.params_bytes,
                "grads_bytes": self.grads_bytes, "optimizer_bytes": self.optimizer_bytes,
                "activations_bytes": self.activations_bytes, "backward_peak_bytes": self.backward_peak_bytes,
                "inference_peak_bytes": self.inference_peak_bytes,
                "inference_bytes": self.inference_bytes, "training_bytes": self.training_bytes,
                "fit_budget": self.fit_budget, "fit_batch": self.fit_batch, "note": self.note,
                "depth": self.depth, "layers": None if self.rows is None else [r.to_dict() for r in self.rows],
                "checkpointing": None if self.checkpointed is None else asdict(self.checkpointed),
                "sharding": None if self.sharding is None else self.sharding.to_dict()}

    def summary(self) -> str:
        return (f"{self.model} at batch {self.batch}: training step {self.training_bytes:,} B, "
                f"inference {self.inference_bytes:,} B ({self.optimizer})")

    def lines(self) -> List[tuple]:
        return [
            ("parameters", self.params_bytes), ("gradients", self.grads_bytes),
            (f"optimizer state ({self.optimizer})", self.optimizer_bytes),
            ("activations saved for backward" + (" (bf16 autocast)" if self.amp else ""), self.activations_bytes),
            ("training step peak", self.training_bytes),
            ("inference activations peak", self.inference_peak_bytes),
            ("inference total", self.inference_bytes),
        ]


class _Live(DispatchMode):
    """Follows activation storages: each op's new storage counts from its creation until the
    last Python tensor viewing it is gone; remembers the most alive at once."""

    def __init__(self, ignore: set):
        super().__init__()
        self.ignore = ignore  # storages of parameters and buffers
        self.refs: Dict[int, int] = {}
        self.sizes: Dict[int, int] = {}
        self.live = self.peak = 0

    def track(self, t: torch.Tensor) -> None:
        key = t.untyped_storage()._cdata
        if key in self.ignore:
            return
        if key not in self.refs:
            self.refs[key] = 0
            self.sizes[key] = t.untyped_storage().nbytes()
            self.live += self.sizes[key]
            self.peak = max(self.peak, self.live)
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.live -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


class _OpOrder(DispatchMode):
    """Numbers the ops of a forward; remembers when each parameter is first used, which
    storages feed convolutions and matrix products (what autocast would cast), and whose call
    path each op ran in (the recorder's ``current``)."""

    def __init__(self, weights: Dict[int, int], recorder=None):
        super().__init__()
        self.weights = weights  # parameter storage → bytes
        self.recorder = recorder
        self.index = 0
        self.paths: List[Optional[str]] = [None]  # op index → call path
        self.first_use: Dict[int, int] = {}
        self.autocast_inputs: set = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.index += 1
        self.paths.append(self.recorder.current if self.recorder is not None else None)
        matmul = func._overloadpacket.__name__ in _AUTOCAST_OPS
        for t in tree_leaves(args):
            if isinstance(t, torch.Tensor):
                key = t.untyped_storage()._cdata
                if key in self.weights:
                    self.first_use.setdefault(key, self.index)
                elif matmul and t.is_floating_point():
                    self.autocast_inputs.add(key)
        return func(*args, **(kwargs or {}))


def _stand_ins(model: nn.Module) -> Dict[str, torch.Tensor]:
    named = list(model.named_parameters()) + list(model.named_buffers())
    return {n: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad) for n, t in named}


@dataclass
class _Saved:
    """What one training forward saved for backward, and where the backward peaks."""

    total: int
    peak: int
    by_path: Dict[Optional[str], int]  # bytes saved while each call path ran
    peak_path: Optional[str]  # the call path of the op at which the backward holds the most
    recorder: Any
    flops_by_path: Dict[Optional[str], int]


def _training_activations(model, args, kwargs, amp: bool, known=None) -> _Saved:
    """Bytes saved for backward (per call path), and the peak of saved activations + gradients
    during backward.

    Backward runs the forward in reverse: when it reaches op t, the activations saved before t
    are still held and the gradients of the parameters first used at or after t exist. The
    peak over t is what a real step holds at most, beside parameters and optimizer state."""
    stand_ins = _stand_ins(model)
    weights = {t.untyped_storage()._cdata: t.untyped_storage().nbytes()
               for t in stand_ins.values() if t.requires_grad}
    frozen = {t.untyped_storage()._cdata for t in stand_ins.values()}
    counter = FlopCounter()
    recorder = Recorder(model, counter)  # owns whose call runs now; tells the counter
    order = _OpOrder(weights, recorder)
    saved: Dict[int, tuple] = {}  # storage → (index of the op that saved it, bytes)

    sizes: Dict[int, int] = {}  # storage → element size

    owners: Dict[int, Optional[str]] = {}  # storage → the call path running when it was first saved

    def pack(t):
        key = t.untyped_storage()._cdata
        if key not in frozen and key not in saved:
            saved[key] = (order.index, t.untyped_storage().nbytes())
            sizes[key] = t.element_size()
            owners[key] = recorder.current
        return t

    try:
        with mode_stack(model, train=True, meta=True, counter=counter, observers=(order,),
                        saved_tensors=(pack, lambda t: t), known=_values(known)):
            torch.func.functional_call(model, stand_ins, args, kwargs, tie_weights=True, strict=False)
    finally:
        recorder.remove()
    if amp:  # what autocast casts (the inputs of convolutions and matrix products) is kept at 2 bytes;
        # known only once the forward is over, as a tensor is often saved by the op before the conv
        saved = {key: (i, nbytes * 2 // sizes[key] if key in order.autocast_inputs and sizes[key] > 2 else nbytes)
                 for key, (i, nbytes) in saved.items()}
    total = sum(nbytes for _, nbytes in saved.values())
    events = sorted([(i, nbytes) for i, nbytes in saved.values()] +
                    [(i, -weights[key]) for key, i in order.first_use.items()])
    # Walking from the end of the forward to its start: saved activations are released, gradients appear.
    held = total
    grads = 0
    peak, peak_index = held, order.index
    for index in sorted({i for i, _ in events}, reverse=True):
        for i, nbytes in events:
            if i == index:
                if nbytes >= 0:
                    held -= nbytes
                else:
                    grads -= nbytes
        if held + grads > peak:
            peak, peak_index = held + grads, index
    by_path: Dict[Optional[str], int] = {}
    for key, (_, nbytes) in saved.items():
        by_path[owners[key]] = by_path.get(owners[key], 0) + nbytes
    peak_path = order.paths[min(peak_index, len(order.paths) - 1)]
    return _Saved(total, peak, by_path, peak_path, recorder, dict(counter.by_key))


def _values(known):
    """The innermost mode, when the input's made values are followed (it must see ops before any cache)."""
    return None if known is None else KnownValues(known)


def _inference_peak(model, args, kwargs, known=None) -> int:
    stand_ins = _stand_ins(model)
    live = _Live({t.untyped_storage()._cdata for t in stand_ins.values()})
    for t in tree_leaves((args, kwargs)):
        if isinstance(t, torch.Tensor):
            live.track(t)
    with mode_stack(model, train=False, meta=True, observers=(live,), known=_values(known)):
        out = torch.func.functional_call(model, stand_ins, args, kwargs, tie_weights=True, strict=False)
    del out
    return live.peak


def memory(model: Any, batch: Optional[int] = None, optimizer: str = "adam", amp: bool = False, input_size=None,
           fit: Optional[str] = None, model_kwargs: Optional[Dict[str, Any]] = None, depth: Optional[int] = None,
           checkpointing: bool = False, shard: Optional[int] = None, zero: Optional[int] = None,
           **kwargs) -> MemoryReport:
    """Memory of inference and of one training step at ``batch``, on the meta device. Without
    ``batch``, the batch of ``input_size`` when it gives a full shape (``8x1x28x28``), else 1.

    ``depth``: per row, the activations it saves for backward, its parameters, gradients and
    optimizer state (rows add up to the totals; the row where the backward peaks is marked).
    ``checkpointing``: what activation checkpointing of those rows would save and cost.
    ``shard``/``zero``: the model states each of ``shard`` data-parallel ranks holds under ZeRO
    stage ``zero`` (mixed precision, Rajbhandari et al. 2020), ``batch`` being the per-rank batch.

    >>> memory("alexnet", batch=8).params_bytes
    187058984
    """
    if optimizer not in OPTIMIZER_STATES:
        raise UsageError(f"unknown --optimizer '{optimizer}': use one of {', '.join(OPTIMIZER_STATES)}")
    if depth is not None and depth < 1:
        raise UsageError(f"bad --depth {depth}: it must be >= 1")
    if checkpointing and depth is None:
        depth = 1
    if shard is not None and shard < 1:
        raise UsageError(f"bad --shard {shard}: the number of ranks must be >= 1")
    if zero is not None and zero not in (0, 1, 2, 3):
        raise UsageError(f"bad --zero {zero}: use 0, 1, 2 or 3")
    if batch is not None and batch < 1:
        raise UsageError(f"bad --batch {batch}: it must be a positive integer")
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    loaded = load_model(model, device="meta", **model_kwargs)
    module = loaded.module
    params = list(module.parameters())
    params_bytes = sum(p.numel() * p.element_size() for p in params)
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)

    def measure(b: int):
        inputs = resolve_inputs(input_size, module, loaded.default_input, b)
        args, kw = inputs.make("meta")
        try:
            # The strategies trace uses on meta: a model that read a value of the input made here runs
            # once more, following those values.
            return (inputs, *follow_made_values(lambda known: (_training_activations(module, args, kw, amp, known),
                                                               _inference_peak(module, args, kw, known)),
                                                inputs, args, kw))
        except Exception as error:  # noqa: BLE001 - the model's own failure, in one line
            raise UsageError(f"{loaded.label} cannot run a training forward on meta at batch {b}: "
                             f"{first_line(error)}") from error

    if batch is None:  # the input's own batch (8x1x28x28 → 8); a side or the default → 1
        given = resolve_inputs(input_size, module, loaded.default_input)
        batch = given.shapes[0][0] if input_size is not None and given.shapes and not isinstance(input_size, int) else 1
    inputs, saved, peak = measure(batch)
    report = MemoryReport(loaded.label, inputs.describe(), batch, optimizer, amp, params_bytes, trainable,
                          OPTIMIZER_STATES[optimizer] * trainable, saved.total, peak, saved.peak, loaded.note)
    if depth is not None:
        report.depth = depth
        report.rows = _rows(module, saved, depth, OPTIMIZER_STATES[optimizer])
        if checkpointing:
            report.checkpointed = _checkpointed(report.rows, saved)
    if shard is not None or zero is not None:
        # Ψ is a count of parameters, whatever their dtype (a bf16 model's bytes / 4 would halve it);
        # DeepSpeed's stage-3 estimate also needs the largest layer's own parameters, gathered whole.
        largest = max((sum(p.numel() for p in m.parameters(recurse=False)) for m in module.modules()), default=0)
        report.sharding = sharding(sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad),
                                   shard or 1, zero or 0, optimizer, largest_layer=largest)
    if fit is not None:
        budget = parse_bytes(fit)
        report.fit_budget = budget
        if report.sharding is not None:  # per rank: its share of the states, plus its batch's activations
            fixed = report.sharding.states_bytes
            report.fit_batch = _largest_batch(lambda b: fixed + measure(b)[1].total <= budget)
        else:
            fixed = report.params_bytes + report.optimizer_bytes
            report.fit_batch = _largest_batch(lambda b: fixed + measure(b)[1].peak <= budget)
    return report


def _largest_batch(fits) -> int:
    """The largest batch for which ``fits`` holds (activations grow with the batch): 0 if none."""
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, hi * 2
        if hi > 2 ** 24:
            return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


# --------------------------------------------------------------------------- per layer


@dataclass
class MemoryRow:
    name: str
    type: str
    depth: int
    kind: str
    input_bytes: int  # what entering the row holds (what checkpointing would keep)
    activations_bytes: int  # saved for backward while this row ran
    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    forward_flops: int
    peak: bool = False  # the backward holds the most while it is in this row

    @property
    def total_bytes(self) -> int:
        return self.activations_bytes + self.params_bytes + self.grads_bytes + self.optimizer_bytes

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def _rows(module: nn.Module, saved: _Saved, depth: int, states: int) -> List[MemoryRow]:
    params: Dict[Optional[str], int] = {}
    trainable: Dict[Optional[str], int] = {}
    for name, p in module.named_parameters():  # a shared parameter once, under its first name
        owner = name.rpartition(".")[0]
        params[owner] = params.get(owner, 0) + p.numel() * p.element_size()
        if p.requires_grad:
            trainable[owner] = trainable.get(owner, 0) + p.numel() * p.element_size()
    rec = saved.recorder
    layer_rows = build_rows(module, rec, saved.flops_by_path, depth, root_label=type(module).__name__,
                            also=[saved.by_path, params])
    acts, par, grads, flops = (per_row(layer_rows, m) for m in (saved.by_path, params, trainable,
                                                                saved.flops_by_path))
    out = []
    for i, r in enumerate(layer_rows):
        path = r.paths[0][0] if r.kind == "module" and r.paths else None
        held = _bytes_of(rec.inputs.get(path)) * rec.calls.get(path, 0) if path is not None else 0
        out.append(MemoryRow(r.name, r.type, r.depth, r.kind, held, int(acts[i]), int(par[i]),
                             int(grads[i]), int(grads[i]) * states, int(flops[i]),
                             peak=any(_holds(path, below, saved.peak_path) for path, below in r.paths)))
    return out


def _holds(path, below: bool, target) -> bool:
    if path is None or target is None:
        return path is None and target is None
    return target == path or (below and (path == "" or target.startswith(path + ".")))


def _bytes_of(shape, element: int = 4) -> int:
    """Bytes of the tensor(s) of a recorded shape, at float32 (the recorder keeps shapes only)."""
    if not shape:
        return 0
    if isinstance(shape, dict):
        return sum(_bytes_of(s, element) for s in shape.values())
    if isinstance(shape[0], (list, tuple, dict)):
        return sum(_bytes_of(s, element) for s in shape)
    n = 1
    for d in shape:
        n *= int(d)
    return n * element


@dataclass
class Checkpointing:
    """Activation checkpointing of every module row: each keeps only its input, and backward
    runs its forward again (one row at a time) to get the rest back."""

    activations_bytes: int  # the rows' inputs, plus what the rows not checkpointed save
    backward_peak_bytes: int  # those, the largest row's own activations recomputed, and all gradients
    extra_flops: int  # the checkpointed rows' forward FLOPs, run again in backward
    saved_bytes: int  # activations no longer held: today's minus checkpointed


def _checkpointed(rows: List[MemoryRow], saved: _Saved) -> Checkpointing:
    chosen = [r for r in rows if r.kind == "module"]
    others = sum(r.activations_bytes for r in rows if r.kind != "module")
    kept = sum(r.input_bytes for r in chosen) + others
    largest = max((r.activations_bytes for r in chosen), default=0)
    grads = sum(r.grads_bytes for r in rows)
    return Checkpointing(kept, kept + largest + grads, sum(r.forward_flops for r in chosen), saved.total - kept)


# --------------------------------------------------------------------------- sharded over ranks (ZeRO)

# Bytes of optimizer state per parameter in mixed precision (Rajbhandari et al., 2020): the fp32
# master copy, then the optimizer's own fp32 tensors. Adam: K = 4 + 4 + 4 = 12.
MIXED_PRECISION_K = {"adam": 12, "adamw": 12, "sgd-momentum": 8, "sgd": 4}


@dataclass
class Sharding:
    """Model states one of ``ranks`` data-parallel ranks holds under ZeRO stage ``stage``:
    2 bytes of bf16/fp16 parameters and 2 of gradients per parameter, and K bytes of fp32
    master weights and optimizer state. Stage 0 (DDP) replicates all; 1 shards the optimizer
    states, 2 also the gradients, 3 (FSDP) also the parameters."""

    ranks: int
    stage: int
    optimizer: str
    params: int  # Ψ
    k: int
    params_bytes: int  # per rank
    grads_bytes: int
    optimizer_bytes: int
    # What DeepSpeed's own estimators (estimate_zero2/3_model_states_mem_needs, no offload) say a GPU
    # holds at this stage; None at stage 0. They differ from the paper's 2+2+K: stage 1/2 keeps whole
    # fp16 parameters and gradients (4Ψ) plus 16Ψ/N of fp32 states, stage 3 gathers the largest layer
    # in fp32 (4·L) beside 18Ψ/N.
    deepspeed_bytes: Optional[int] = None

    @property
    def states_bytes(self) -> int:
        return self.params_bytes + self.grads_bytes + self.optimizer_bytes

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "states_bytes": self.states_bytes}


def deepspeed_estimate(params: int, ranks: int, stage: int, largest_layer: int) -> Optional[int]:
    """GPU bytes of model states by DeepSpeed's estimators without offload (stage 1 uses stage 2's)."""
    if stage in (1, 2):
        return 4 * params + int(16 * params / ranks)
    if stage == 3:
        return 4 * largest_layer + int(18 * params / ranks)
    return None


def sharding(params: int, trainable: int, ranks: int, stage: int, optimizer: str, largest_layer: int = 0) -> Sharding:
    """Per-rank model states of ``params`` parameters (``trainable`` of them trained), by the ZeRO
    paper's convention (2 + 2 + K bytes a parameter), and DeepSpeed's own estimate beside it."""
    k = MIXED_PRECISION_K[optimizer]
    p_bytes, g_bytes, o_bytes = 2 * params, 2 * trainable, k * trainable
    if stage >= 1:
        o_bytes = math.ceil(o_bytes / ranks)
    if stage >= 2:
        g_bytes = math.ceil(g_bytes / ranks)
    if stage >= 3:
        p_bytes = math.ceil(p_bytes / ranks)
    return Sharding(ranks, stage, optimizer, params, k, p_bytes, g_bytes, o_bytes,
                    deepspeed_estimate(params, ranks, stage, largest_layer))
