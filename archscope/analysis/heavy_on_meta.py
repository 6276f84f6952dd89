"""A small CPU model's forward with its heavy kernels skipped: their outputs made on meta.

The CPU path (run.py's ``_small_on_cpu_first``) runs a small model for real because PyTorch's
Python meta kernels cost more than its CPU kernels there. But a real LSTM still costs its
arithmetic, and a count needs only shapes: here the fused RNN layers run on meta,
and every op that takes one of their outputs runs on meta too (its CPU arguments seen as meta
tensors of the same shape, strides and dtype). What does not depend on them (the input, the
masks made from it, the weights) keeps real values.

This is only sound while no value that came from meta is read. Every way to read one fails
loudly on a meta tensor (``.item()``, ``bool()``, ``.tolist()``, ``.numpy()``, ``nonzero``;
printing shows ``...`` and decides nothing), and so does an op that would write a meta result into
a real tensor (a cache filled in place): either raises, and the caller runs the model again for
real. A failed op on a meta value is remembered, so a model that catches the failure and goes on
is run again too. The one read that does not pass through dispatch is ``.tolist()``: a model that
catches its failure itself would go on unseen.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch.utils._pytree import tree_map

from archscope.analysis.fast_meta import fast_meta
from archscope.dispatch import DispatchMode

aten = torch.ops.aten

# The kernels whose arithmetic dominates a small model's real forward while few ops follow them:
# a fused RNN layer (an LSTM's 50 steps in one kernel, a millisecond and a half; its meta kernel is
# one Python function). Not matmuls: in a transformer each is followed by a dozen element-wise ops,
# whose Python meta kernels cost more than their CPU kernels (the encoder of bench_peers.py: 5 ms
# on the CPU, 9 with its matmuls on meta).
HEAVY = {aten.mkldnn_rnn_layer.default}
RUNS_HEAVY = (torch.nn.RNNBase,)  # the modules whose forward runs them (LSTM, GRU, RNN)


def may_run_heavy(modules) -> bool:
    """Whether a model holds a module that runs a ``HEAVY`` kernel. Without one the mode would only
    add its cost to every op (a fifth of a small transformer's trace); a model that calls such a
    kernel through a function of its own runs it for real, which changes no number."""
    return any(isinstance(m, RUNS_HEAVY) for m in modules)


class RealValueNeeded(RuntimeError):
    """An op would write a value computed on meta into a real tensor: the run must be made for real."""


class HeavyOnMeta(DispatchMode):
    def __init__(self):
        super().__init__()
        self._meta_of: Dict[int, Any] = {}  # id of a real tensor → (it, its meta twin), for this run
        self.failed = False  # an op on a meta value raised: the run is not the model's, even if it caught that

    def _meta(self, t):
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return t
        known = self._meta_of.get(id(t))
        if known is not None and known[0] is t:  # the tensor itself kept alive: its id is not reused
            return known[1]
        twin = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
        self._meta_of[id(t)] = (t, twin)
        return twin

    def _all_meta(self, value):
        """``tree_map(self._meta, value)`` for what ops take (tensors, and lists and tuples of them), in one
        loop: pytree's flatten and unflatten cost more than the fused layer's meta kernel."""
        kind = type(value)
        if kind is tuple or kind is list:
            return kind(self._all_meta(v) for v in value)
        if isinstance(value, torch.Tensor):
            return self._meta(value)
        if isinstance(value, (tuple, list, dict)):  # a named tuple, a dict: as pytree takes them apart
            return tree_map(self._meta, value)
        return value

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.run(func, args, kwargs or {})

    def run(self, func, args, kwargs):
        """The op, its arguments on meta where it is heavy or takes a value from meta."""
        if func in HEAVY or _any_meta(args) or _any_meta(kwargs.values()):
            if func._schema.is_mutable and _writes_a_real_tensor(func, args, kwargs):
                raise RealValueNeeded(f"{func} would write a value computed on meta into a real tensor")
            args, kwargs = self._all_meta(args), {k: self._all_meta(v) for k, v in kwargs.items()}
            try:
                out = fast_meta(func, args, kwargs)  # the common ops without PyTorch's Python meta kernels
                return func(*args, **kwargs) if out is None else out
            except Exception:
                self.failed = True  # .item() of a meta value, a meta kernel's refusal
                raise
        return func(*args, **kwargs)

    def __exit__(self, kind, value, traceback):
        super().__exit__(kind, value, traceback)
        self.check(kind)

    def check(self, kind) -> None:
        """At the end of a run that raised nothing (``kind`` None): a failure the model caught and went on from."""
        if self.failed and kind is None:
            raise RealValueNeeded("an op on a value computed on meta failed, and the model went on without it")


class HeavyBeneath:
    """``HeavyOnMeta``'s work done inside the FLOP counter's own dispatch (``counter.beneath``) rather
    than as a mode below it: each op then passes through one Python mode fewer (about 10 µs an op, a
    tenth of a small LSTM's trace). Nothing sits between the two modes, so every op is seen as before."""

    def __init__(self, counter):
        self.counter, self.heavy = counter, HeavyOnMeta()

    def __enter__(self):
        self.counter.beneath = self.heavy
        return self

    def __exit__(self, kind, value, traceback):
        self.counter.beneath = None
        self.heavy.check(kind)


def _any_meta(values) -> bool:
    for v in values:
        if isinstance(v, torch.Tensor):
            if v.device.type == "meta":
                return True
        elif isinstance(v, (list, tuple)) and _any_meta(v):
            return True
    return False


def _writes_a_real_tensor(func, args, kwargs) -> bool:
    for i, argument in enumerate(func._schema.arguments):
        if argument.alias_info is None or not argument.alias_info.is_write:
            continue
        value = args[i] if i < len(args) else kwargs.get(argument.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, torch.Tensor) and v.device.type != "meta" for v in values):
            return True
    return False
