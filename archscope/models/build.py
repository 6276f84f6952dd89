"""What every model source returns (``Loaded``), and the one way a builder is run.

A builder is called inside ``torch.device(device)`` so its parameters land on the requested
device (``meta``: no memory). A builder that cannot run on meta (``.tolist()`` on a tensor
while building) is built again on CPU, with a note saying so.
"""
from __future__ import annotations

import copy
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Type

import torch
from torch import nn
from torch.utils._device import DeviceContext, _device_constructors

from archscope.dispatch import writes_first_in_place
from archscope.errors import UsageError, first_line, is_meta_limitation
from archscope.models import tree
from archscope.quiet import library_warnings_silenced


@dataclass
class Loaded:
    module: nn.Module
    label: str
    # The model's default input: a square side (int), a full shape (tuple), or ready-made
    # ``archscope.inputs.Inputs`` (e.g. a detection model's list of images); None if unknown.
    default_input: Any
    rebuild: Optional[Callable[[str], nn.Module]]  # build again on another device
    note: Optional[str] = None  # e.g. "built on CPU: the builder cannot run on meta"
    passed_in: bool = False  # the user's own nn.Module object, not one archscope built

    @property
    def default_side(self) -> Optional[int]:
        """The default square side, when the default input is one."""
        return self.default_input if isinstance(self.default_input, int) else None


def guarded(label: str, kwargs: Dict[str, Any], make: Callable[[], nn.Module],
            catch: Tuple[Type[BaseException], ...] = (TypeError, ValueError, RuntimeError)):
    """``build(device)``: ``make()`` under ``torch.device(device)``; an exception of ``catch``
    (a bad option, a shape the builder refuses) becomes one usage line naming the options."""

    def build(device: str) -> nn.Module:
        with MetaBuild() if device == "meta" else torch.device(device):
            try:
                return make()
            except catch as error:
                raise UsageError(f"cannot build {label} with {options_text(kwargs)}: {first_line(error)}") from error

    return build


class MetaBuild(DeviceContext):
    """``torch.device("meta")`` for a builder, which also skips what only writes values a meta tensor
    does not have. One function mode does it all (each Python mode layer costs every call of a
    build: 80 Llama-2-70B layers make 1,046 modules and 1,680 Linears):

    - ``torch.nn.init``'s initialisers return the tensor as it is (a Linear's ``kaiming_uniform_``
      and bias ``uniform_``: 0.2 s of a 0.26 s build when they ran);
    - a tensor method that writes only its own contents in place (``uniform_``, ``erfinv_``, ``mul_``,
      ``clamp_``: timm's ``trunc_normal_``, 0.35 of ConvNeXt-T's 0.41 s build through PyTorch's
      Python reference kernels) returns its meta tensor; never one that changes a shape or storage
      (``squeeze_``, ``resize_``, ``set_``: ``dispatch.writes_first_in_place`` decides, from the
      schema of every overload);
    - ``ones``/``zeros`` (and ``_like``) on meta are ``empty``: the same shape, dtype and flags, and
      no values either way (PyTorch's meta ``ones`` is a Python kernel: a fifth of a Llama build's
      RMSNorms).

    Being the device context itself (the subclass PyTorch puts at the bottom of the mode stack),
    ``torch.get_default_device()`` says meta inside it, as under ``torch.device("meta")``."""

    def __init__(self) -> None:
        super().__init__("meta")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _INITIALISERS:
            tensor = args[0] if args else kwargs.get("tensor")  # each takes the tensor first, as ``tensor``
            if isinstance(tensor, torch.Tensor) and tensor.device.type == "meta":
                return tensor
            return func(*args, **kwargs)
        writes = _WRITES_ITSELF.get(func)
        if writes is None:
            writes = _WRITES_ITSELF[func] = _writes_only_itself(func)
        if writes:
            if args and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta":
                return args[0]
            return func(*args, **kwargs)
        if func in _DEVICE_CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = self.device
        empty = _AS_EMPTY.get(func)
        if empty is not None and "out" not in kwargs:
            if empty is torch.empty and torch.device(kwargs["device"]).type == "meta":
                return torch.empty(*args, **kwargs)
            if empty is torch.empty_like and args and isinstance(args[0], torch.Tensor) \
                    and args[0].device.type == "meta" and kwargs.get("device") in (None, "meta"):
                return torch.empty_like(*args, **kwargs)
        return func(*args, **kwargs)


# Every public in-place initialiser of torch.nn.init (uniform_, kaiming_uniform_, orthogonal_...).
_INITIALISERS = frozenset(getattr(nn.init, name) for name in dir(nn.init)
                          if name.endswith("_") and not name.startswith("_") and callable(getattr(nn.init, name)))
_DEVICE_CONSTRUCTORS = _device_constructors()
# Same arguments, same result but for values (their schemas differ only in the fill).
_AS_EMPTY = {torch.ones: torch.empty, torch.zeros: torch.empty,
             torch.ones_like: torch.empty_like, torch.zeros_like: torch.empty_like}
_WRITES_ITSELF: Dict[Any, bool] = {}


def _writes_only_itself(func) -> bool:
    """A ``torch.Tensor`` method every overload of which writes only its tensor's contents in place."""
    name = getattr(func, "__name__", "")
    if not name.endswith("_") or name.startswith("_") or getattr(func, "__objclass__", None) is not torch._C.TensorBase:
        return False
    if name in _FLAGS_OR_SHAPE or "resize" in name:
        return False
    packet = getattr(torch.ops.aten, name, None)
    overloads = [getattr(packet, o) for o in packet.overloads()] if packet is not None else []
    on_tensors = [op for op in overloads  # add_.t (a list's add_) is another op of the same name
                  if op._schema.arguments and isinstance(op._schema.arguments[0].type, torch.TensorType)]
    return bool(on_tensors) and all(writes_first_in_place(op) for op in on_tensors)


# In place on the tensor, yet not its values: never skipped.
_FLAGS_OR_SHAPE = frozenset({"requires_grad_", "share_memory_", "detach_", "set_", "squeeze_", "unsqueeze_", "t_",
                             "transpose_", "swapaxes_", "swapdims_", "as_strided_"})


def build_on(device: str, build: Callable[[str], nn.Module], label: str) -> Tuple[nn.Module, Optional[str]]:
    """Build on ``device``; if the builder itself cannot run on meta, build on CPU instead.
    Returns ``(module, note)``."""
    try:
        with library_warnings_silenced():
            return build(device), None
    except Exception as error:  # noqa: BLE001 - only a meta limitation is retried; the rest is re-raised
        cause = error.__cause__ if isinstance(error, UsageError) and error.__cause__ is not None else error
        if device != "meta" or not is_meta_limitation(cause):
            raise
        note = f"{label}'s builder cannot run on the meta device ({first_line(cause)}), so it was built on CPU"
        with library_warnings_silenced():
            return build("cpu"), note


def options_text(kwargs: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"


def stand_in(module: nn.Module) -> nn.Module:
    """A copy of a user's model that archscope runs and changes instead of the user's own object.

    Everything a forward or an analysis could change is the copy's own: its attributes
    (``__dict__``: a call counter, a cached tensor, a list it appends to), its buffers (cloned:
    BatchNorm's running statistics), its hooks' tables (archscope's hooks go on the copy), its
    training flags and devices. The parameters are the user's own tensors, shared, not copied: a
    10-billion-parameter model costs nothing more, and no analysis writes to a parameter (meta
    runs use stand-ins; a training step on a real device runs on a full copy).

    ``copy.deepcopy`` first (it also rebinds hook handles and bound-method hooks, which a lazy layer
    needs); a model that refuses it (an attribute that cannot be copied: a lock, a file) gets a
    structural copy: every module object new, with its own ``__dict__``, tables and cloned buffers."""
    if isinstance(module, torch.jit.ScriptModule):
        return module  # TorchScript holds its state in C++; it takes no Python hooks either
    modules = tree.modules(module)  # one walk, shared by everything below
    lazy = fresh_lazy_tensors(module, modules=modules)
    # Shared, except a lazy layer's uninitialised tensors: its first forward materialises them in place. Read
    # from the tables the copy goes through (what parameters() would list, without another walk).
    params = {id(p): p for m in modules for p in m._parameters.values() if p is not None and id(p) not in lazy}
    try:
        copied = _deep_copy_of_modules(module, modules, {**params, **lazy}) if _plain_modules(modules) else None
        if copied is None:
            memo = {**params, **lazy}
            copied = copy.deepcopy(module, memo)
            _copy_slots(modules, memo)
        return copied
    except Exception:  # noqa: BLE001 - any refusal to be deep-copied: a structural copy instead
        copied = _structural_copy(module, {})
        _copy_slots(modules, {id(m): c for m, c in zip(modules, dict.fromkeys(copied.modules()))})
        return copied


def _copy_slots(modules, copies: Dict[int, Any]) -> None:
    """A module's ``__slots__`` into its copy's: nn.Module's ``__getstate__`` is its ``__dict__`` alone,
    so ``copy.deepcopy`` of a model drops them, and its forward would fail where the model's own runs."""
    for m in modules:
        twin = copies.get(id(m))
        for name in (tree.slot_names(type(m)) if twin is not None else ()):
            try:
                value = object.__getattribute__(m, name)
            except AttributeError:
                continue
            object.__setattr__(twin, name, copy.deepcopy(value, copies))


def _plain_modules(modules) -> bool:
    """Every module in it is copied by ``copy.deepcopy`` through its state (no ``__deepcopy__``,
    ``__reduce_ex__`` or ``__slots__`` of its own; a ``__getstate__``/``__setstate__`` of its own is
    followed, as deepcopy does: an LSTM's): ``_deep_copy_of_modules`` may stand in for it."""
    for kind in {type(m) for m in modules}:
        if getattr(kind, "__deepcopy__", None) is not None or kind.__reduce_ex__ is not object.__reduce_ex__ \
                or kind.__reduce__ is not object.__reduce__ or getattr(kind, "__slots__", None):
            return False
    return True


# What ``copy.deepcopy`` returns unchanged (its atomic types; a tuple of them is returned as itself too,
# and neither is put in the memo): such attributes (a conv's kernel_size, a flag, a name) are taken as
# they are, without deepcopy's dispatch per value.
_ATOMIC = frozenset({type(None), int, float, bool, complex, bytes, str, type, range, types.FunctionType,
                     types.BuiltinFunctionType, type(Ellipsis), type(NotImplemented), property})


def _deep_copy_of_modules(module: nn.Module, modules, memo: Dict[int, Any]) -> Optional[nn.Module]:
    """What ``copy.deepcopy(module, memo)`` makes, in a fraction of the time (ResNet-50: 17 ms → 4): the
    module objects and their tables are built directly, and only the rest of each module's
    state (``__getstate__``: nn.Module's is its ``__dict__`` but for a compiled forward) goes through
    ``deepcopy`` (with the same memo: a parameter in it stays shared, a hook that is a module's own
    method and a hook handle are rebound to the copy, as deepcopy does), but for values deepcopy
    returns as they are. Then, descendants first as deepcopy's recursion has them, a class's own
    ``__setstate__`` (or nn.Module's, after a ``__getstate__`` of its own) takes the copied state;
    else it becomes the copy's ``__dict__``, which is all nn.Module's ``__setstate__`` would do with a
    whole state. None when a state is not a dict (deepcopy is then left to it)."""
    for m in modules:
        memo[id(m)] = object.__new__(type(m))
    # Tables first, so that a RemovableHandle deep-copied with the attributes finds its table's copy.
    states = []
    deepcopy, clone, tables, atomic = copy.deepcopy, torch.Tensor.clone, _TABLES, _ATOMIC
    for m in modules:
        state = m.__getstate__()
        if type(state) is not dict:
            return None
        if state is m.__dict__:
            state = dict(state)
        for key in tables.intersection(state):
            table = state[key]
            if table is None:
                continue
            if not table:
                new = type(table)()
            elif key == "_parameters":
                new = type(table)((k, memo.get(id(p), p)) for k, p in table.items())
            elif key == "_buffers":
                new = type(table)()
                for k, b in table.items():
                    if b is not None and id(b) not in memo:
                        memo[id(b)] = clone(b)
                    new[k] = None if b is None else memo[id(b)]
            elif key == "_modules":
                new = type(table)((k, None if c is None else memo[id(c)]) for k, c in table.items())
            else:  # hooks (a function, or a module's own method: rebound by the memo), the non-persistent set
                new = deepcopy(table, memo)
            memo[id(table)] = new
            state[key] = new
        states.append((m, state))
    for m, state in reversed(states):
        for key, value in state.items():
            kind = type(value)
            if kind in atomic or key in tables or (kind is tuple and all(type(v) in atomic for v in value)):
                continue
            state[key] = deepcopy(value, memo)
        kind = type(m)
        if kind.__setstate__ is not _SETSTATE or kind.__getstate__ is not _GETSTATE:
            memo[id(m)].__setstate__(state)
        else:
            memo[id(m)].__dict__.update(state)
    return memo[id(module)]


def fresh_lazy_tensors(module: nn.Module, device: Optional[str] = None, modules=None) -> Dict[int, torch.Tensor]:
    """A deepcopy memo: each uninitialised parameter or buffer of a lazy layer → a new one of its kind
    (on ``device``, else its own), since PyTorch refuses to deep-copy an uninitialised buffer and a
    lazy tensor moved by ``.to()`` stops being lazy."""
    fresh: Dict[int, torch.Tensor] = {}
    for m in module.modules() if modules is None else modules:
        for t in list(m._parameters.values()) + list(m._buffers.values()):
            if type(t) in _PLAIN_TENSORS:
                continue  # by the exact type first: isinstance against Parameter classes is a Python call
            if isinstance(t, nn.parameter.UninitializedParameter):
                fresh[id(t)] = nn.parameter.UninitializedParameter(t.requires_grad, device or t.device, t.dtype)
            elif isinstance(t, nn.parameter.UninitializedBuffer):
                fresh[id(t)] = nn.parameter.UninitializedBuffer(t.requires_grad, device or t.device, t.dtype)
    return fresh


_PLAIN_TENSORS = frozenset({torch.Tensor, nn.Parameter, type(None)})


# The tables every nn.Module keeps in its __dict__ (its tensors, children and hooks), not attributes of its own.
MODULE_TABLES = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "_forward_hooks",
           "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
           "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
           "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
_TABLES = frozenset(MODULE_TABLES)
_GETSTATE, _SETSTATE = nn.Module.__getstate__, nn.Module.__setstate__


def _structural_copy(module: nn.Module, memo: Dict[int, nn.Module]) -> nn.Module:
    if id(module) in memo:  # a module held twice stays one module in the copy
        return memo[id(module)]
    new = object.__new__(type(module))
    memo[id(module)] = new
    state = dict(module.__dict__)
    for key in MODULE_TABLES:
        if key in state:
            state[key] = copy.copy(state[key])
            if "hooks" in key:  # a hook that is the module's own method (a lazy layer's) works on the copy
                table = state[key]
                for k, hook in list(table.items()):
                    if getattr(hook, "__self__", None) is module:
                        table[k] = types.MethodType(hook.__func__, new)
    lazy = fresh_lazy_tensors(module)
    state["_parameters"] = {k: lazy.get(id(p), p) for k, p in state.get("_parameters", {}).items()}
    state["_buffers"] = {k: lazy.get(id(b)) or (None if b is None else b.clone())
                         for k, b in state.get("_buffers", {}).items()}
    state["_modules"] = {k: (None if m is None else _structural_copy(m, memo))
                         for k, m in state.get("_modules", {}).items()}
    for key, value in list(state.items()):
        if key in MODULE_TABLES or key.startswith("__"):
            continue
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            state[key] = value.detach().clone()  # a cached tensor a forward writes into
        elif isinstance(value, (list, dict, set)):
            state[key] = copy.copy(value)  # a history a forward appends to stays the user's
    new.__dict__.update(state)
    return new
