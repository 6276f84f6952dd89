"""The modes a traced forward runs under, stacked in one place, in one order.

Every analysis that runs a model (trace, graph, check, time, memory) enters the same stack,
outermost first:

1. the modules' training flags (train or eval), restored exactly afterwards, last of all;
2. autograd on (a training step) or off;
3. library warnings silenced (a model's deprecation chatter is not archscope's output);
4. on meta (or where a real forward's fused RNN layers run on meta), PyTorch's reference kernels
   run without importing torch._dynamo (no_dynamo.py), which their wrapper does on a first call
   only to find dynamo is not tracing; and where no FLOP counter runs (which does it itself, under
   its cache), archscope's own kernels for the common ops
   (fast_meta.py), nearest the kernels, so every mode above sees each op; in a small real forward,
   there, the fused RNN layers and what follows from them sent to meta (heavy_on_meta.py);
5. the FLOP counter, so it counts every op the modes inside it pass on, and ``observers``
   (receptive fields, the dataflow, the memory trackers) read its running total as each op passes;
   on meta, the counter (or the fast kernels, where none counts) first makes the dtype check a real
   kernel would make (mixed_dtypes.py: meta kernels skip it);
6. the observers, in the order given;
7. saved-tensor hooks (a training step's memory), which are not dispatch modes;
8. innermost, the known values of the input archscope made: it must see a read of a value
   before any mode outside it would fail on, or cache, that op.

A dispatch mode entered later sees an op first (it hands the op on to the one entered before it).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, List, Optional

import torch
from torch import nn

from archscope.analysis.fast_meta import fast_meta
from archscope.analysis.heavy_on_meta import HeavyBeneath, HeavyOnMeta
from archscope.analysis.mixed_dtypes import refuse_mixed_dtypes
from archscope.analysis.no_dynamo import without_dynamo_import
from archscope.dispatch import DispatchMode
from archscope.models import tree
from archscope.quiet import library_warnings_silenced


class FastMeta(DispatchMode):
    """The common ops' outputs made by fast_meta.py rather than PyTorch's Python meta kernels (and the
    dtype check of mixed_dtypes.py, which a meta kernel skips)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        refuse_mixed_dtypes(func, args)
        out = fast_meta(func, args, kwargs)
        return func(*args, **kwargs) if out is None else out


@contextlib.contextmanager
def running_mode(model: nn.Module, training: bool, modules: Optional[List[nn.Module]] = None):
    """Run in train mode (dropout, BatchNorm batch statistics, auxiliary heads) or eval mode,
    then restore every module's own training flag exactly. ``modules``: ``tree.modules(model)``,
    when the caller has walked it already."""
    if modules is None:
        modules = tree.modules(model)
    modes = [(m, m.training) for m in modules]
    kinds = {type(m) for m in modules}  # asked of each class once: a model has a few dozen
    plain = all(kind.__setattr__ is _SETATTR for kind in kinds)  # training is an attribute like any other
    overriding = [kind for kind in kinds if kind.train is not _TRAIN]
    if plain and (not overriding or all(_trains_plainly(m) for m in modules if type(m) in overriding)):
        for m in modules:  # what Module.train does, without a Python call per module (1,046 in a Llama-2-70B)
            m.__dict__["training"] = training
    else:
        model.train(training)  # a class of the model's sets its own modes (BatchNorm frozen in train mode)
    try:
        yield
    finally:
        for m, flag in modes:
            if plain:
                m.__dict__["training"] = flag
            else:
                m.training = flag


_TRAIN = nn.Module.train
_SETATTR = nn.Module.__setattr__

# Libraries' overrides of train() that do exactly what Module.train does unless a condition holds:
# transformers' PreTrainedModel.train (every model of theirs) recasts its hub kernels when
# ``use_kernels`` is on. An override is known by its module, its name and every name its code reads,
# so a later version that reads any other name is not known and is called as ever (its Module.train
# walk of an 80-layer Llama: 7 ms, a fifth of archscope's own work on it).
_UNLESS_KERNELS = lambda m: not m.use_kernels  # noqa: E731 - both versions act only with hub kernels on
_PLAIN_UNLESS = {
    # transformers 5.24: recasts its kernels when the mode changes
    ("transformers.modeling_utils", "PreTrainedModel.train",
     ("training", "super", "train", "use_kernels", "set_use_kernels")): _UNLESS_KERNELS,
    # transformers 5.25: sets its kernels' mode when the kernels package is there
    ("transformers.modeling_utils", "PreTrainedModel.train",
     ("super", "train", "is_kernels_available", "use_kernels", "kernels", "Mode", "INFERENCE", "TRAINING",
      "kernels_mode")): _UNLESS_KERNELS,
}
_KNOWN: dict = {}  # a train function → its condition, or None when it is not a known one


def _trains_plainly(module: nn.Module) -> bool:
    """Whether ``module.train(flag)`` would do no more than set every training flag below it."""
    train = type(module).train
    if train not in _KNOWN:
        code = getattr(train, "__code__", None)
        _KNOWN[train] = None if code is None else _PLAIN_UNLESS.get(
            (getattr(train, "__module__", None), getattr(train, "__qualname__", None), code.co_names))
    plainly = _KNOWN[train]
    return plainly is not None and plainly(module)


def mode_stack(model: nn.Module, *, train: bool, meta: bool, counter: Optional[Any] = None,
               observers: Iterable[Any] = (), saved_tensors: Optional[Any] = None,
               known: Optional[Any] = None, heavy_on_meta: bool = False,
               modules: Optional[List[nn.Module]] = None) -> contextlib.ExitStack:
    """The stack described above, entered; ``with mode_stack(...):`` runs the forward inside it.
    ``saved_tensors``: a ``(pack, unpack)`` pair for autograd's saved-tensor hooks; ``heavy_on_meta``:
    a real forward whose fused RNN layers run on meta (heavy_on_meta.py), nearest the kernels."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(running_mode(model, train, modules))
        stack.enter_context(torch.enable_grad() if train else torch.no_grad())
        stack.enter_context(library_warnings_silenced())
        if meta or heavy_on_meta:
            stack.enter_context(without_dynamo_import())
        if heavy_on_meta:  # nearest the kernels: below the counter, or inside it when there is one
            stack.enter_context(HeavyOnMeta() if counter is None else HeavyBeneath(counter))
        if meta and counter is None:
            stack.enter_context(FastMeta())
        if counter is not None:
            counter.refuse_mixed = meta
            stack.enter_context(counter)
        for observer in observers:
            stack.enter_context(observer)
        if saved_tensors is not None:
            stack.enter_context(torch.autograd.graph.saved_tensors_hooks(*saved_tensors))
        if known is not None:
            stack.enter_context(known)
    except BaseException:
        stack.close()
        raise
    return stack
