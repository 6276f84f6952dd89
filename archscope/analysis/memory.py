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

import re
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from archscope.analysis.records import Result
from archscope.analysis.run import running_mode
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
                "fit_budget": self.fit_budget, "fit_batch": self.fit_batch, "note": self.note}

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


class _Live(TorchDispatchMode):
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


class _OpOrder(TorchDispatchMode):
    """Numbers the ops of a forward; remembers when each parameter is first used and which
    storages feed convolutions and matrix products (what autocast would cast)."""

    def __init__(self, weights: Dict[int, int]):
        super().__init__()
        self.weights = weights  # parameter storage → bytes
        self.index = 0
        self.first_use: Dict[int, int] = {}
        self.autocast_inputs: set = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.index += 1
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


def _training_activations(model, args, kwargs, amp: bool):
    """(bytes saved for backward, peak of saved activations + gradients during backward).

    Backward runs the forward in reverse: when it reaches op t, the activations saved before t
    are still held and the gradients of the parameters first used at or after t exist. The
    peak over t is what a real step holds at most, beside parameters and optimizer state."""
    stand_ins = _stand_ins(model)
    weights = {t.untyped_storage()._cdata: t.untyped_storage().nbytes()
               for t in stand_ins.values() if t.requires_grad}
    frozen = {t.untyped_storage()._cdata for t in stand_ins.values()}
    order = _OpOrder(weights)
    saved: Dict[int, tuple] = {}  # storage → (index of the op that saved it, bytes)

    sizes: Dict[int, int] = {}  # storage → element size

    def pack(t):
        key = t.untyped_storage()._cdata
        if key not in frozen and key not in saved:
            saved[key] = (order.index, t.untyped_storage().nbytes())
            sizes[key] = t.element_size()
        return t

    with running_mode(model, True), torch.enable_grad(), order, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.func.functional_call(model, stand_ins, args, kwargs, tie_weights=True, strict=False)
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
    peak = held
    for index in sorted({i for i, _ in events}, reverse=True):
        for i, nbytes in events:
            if i == index:
                if nbytes >= 0:
                    held -= nbytes
                else:
                    grads -= nbytes
        peak = max(peak, held + grads)
    return total, peak


def _inference_peak(model, args, kwargs) -> int:
    stand_ins = _stand_ins(model)
    live = _Live({t.untyped_storage()._cdata for t in stand_ins.values()})
    for t in tree_leaves((args, kwargs)):
        if isinstance(t, torch.Tensor):
            live.track(t)
    with running_mode(model, False), torch.no_grad(), live:
        out = torch.func.functional_call(model, stand_ins, args, kwargs, tie_weights=True, strict=False)
    del out
    return live.peak


def memory(model: Any, batch: Optional[int] = None, optimizer: str = "adam", amp: bool = False, input_size=None,
           fit: Optional[str] = None, model_kwargs: Optional[Dict[str, Any]] = None, **kwargs) -> MemoryReport:
    """Memory of inference and of one training step at ``batch``, on the meta device. Without
    ``batch``, the batch of ``input_size`` when it gives a full shape (``8x1x28x28``), else 1.

    >>> memory("alexnet", batch=8).params_bytes
    187058984
    """
    if optimizer not in OPTIMIZER_STATES:
        raise UsageError(f"unknown --optimizer '{optimizer}': use one of {', '.join(OPTIMIZER_STATES)}")
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
            return inputs, _training_activations(module, args, kw, amp), _inference_peak(module, args, kw)
        except Exception as error:  # noqa: BLE001 - the model's own failure, in one line
            raise UsageError(f"{loaded.label} cannot run a training forward on meta at batch {b}: "
                             f"{first_line(error)}") from error

    if batch is None:  # the input's own batch (8x1x28x28 → 8); a side or the default → 1
        given = resolve_inputs(input_size, module, loaded.default_input)
        batch = given.shapes[0][0] if input_size is not None and given.shapes and not isinstance(input_size, int) else 1
    inputs, (saved, backward_peak), peak = measure(batch)
    report = MemoryReport(loaded.label, inputs.describe(), batch, optimizer, amp, params_bytes, trainable,
                          OPTIMIZER_STATES[optimizer] * trainable, saved, peak, backward_peak, loaded.note)
    if fit is not None:
        budget = parse_bytes(fit)
        fixed = report.params_bytes + report.optimizer_bytes
        report.fit_budget = budget
        report.fit_batch = _largest_batch(lambda b: fixed + measure(b)[1][1] <= budget)
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
