"""Repeated blocks cost one block: a block's run is recorded once and replayed for its twins.

A Llama-2-70B-shaped model runs the same decoder layer 80 times, a ViT the same encoder block 12
times, on inputs of the same shapes. On the meta device nothing a block computes depends on
anything but what it is (its class, the configuration its repr shows, its other attributes, its
parameters' and buffers' shapes and dtypes, its submodules', its training flags) and what it is given (the shapes, strides
and dtypes of its tensors, its other arguments). So a block call is keyed by those, and:

- the first call with a key runs and is recorded: every module call inside it (relative call
  path, input and output shapes), the FLOPs charged to each path inside it, the uncounted ops,
  and its output's metadata;
- the second runs too, and its recording must equal the first's exactly, else the key is refused
  for the rest of the run (a block whose work depends on something the key misses: a layer index
  that picks a different path, a global);
- from the third on, the recording is replayed (so only blocks with at least three twins in the
  model are watched at all; a module called in a loop is run each time): the recorder and the counter receive what a run
  would have given them, under the new block's call path, and the block returns fresh meta
  tensors of the recorded metadata (or the very input object, where the block returned one).

A key is refused for good when its block reads a tensor's value (data-dependent control flow),
changes its own state during a call (an attribute rebound, a list or dict that grows, a buffer
replaced), is called with anything but tensors and plain values, returns anything else, or has
hooks of the user's. Where the run follows the values of the input archscope made (known_values.py),
a block is run, never replayed, when a known value flows into it, and refused when it reads one or
returns one. Memoisation is only used where the run records nothing else per op: a meta forward
counting FLOPs, no training step, receptive fields, dataflow or listeners (``run.forward`` decides).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from archscope.analysis.counter import PLAIN_TYPES, PLAIN_VALUES
from archscope.models import tree
from archscope.models.build import MODULE_TABLES

_OWN_TABLES = frozenset(MODULE_TABLES)  # what every module holds: keyed through its tensors and submodules
_TABLES = _OWN_TABLES | {"forward"}  # not state a call changes (forward: the wrapper put there during it)
_REFUSED = object()


def _has_hooks(own: dict) -> bool:
    """A hook table of a module's own non-empty (a user's hook: the block is not memoised), from its
    ``__dict__``, spelt out: this runs once per module."""
    get = own.get
    return bool(get("_forward_hooks") or get("_forward_pre_hooks") or get("_backward_hooks")
                or get("_backward_pre_hooks") or get("_forward_hooks_with_kwargs"))


_PYTHON_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.Python) | \
    torch._C.DispatchKeySet(torch._C.DispatchKey.PythonTLSSnapshot)


def _no_modes():
    """Beneath every dispatch mode, for tensors of archscope's own: a guard on the Python dispatch keys
    (2 us; popping and pushing back each mode costs 14)."""
    return torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEYS)


@dataclass
class _Recording:
    """One block call, relative to the block's own call path."""

    events: List[Tuple[str, Any, Any]]  # (relative path, input shape, output shape) per inner call, in order
    flops: Dict[str, int]  # relative path ("" the block's own ops) → FLOPs
    total: int
    uncounted: Counter
    routed: bool
    output: Any  # the output's description (see _describe)
    verified: bool = False

    def same(self, other: "_Recording") -> bool:
        return (self.events, self.flops, self.total, self.uncounted, self.routed, self.output) == \
            (other.events, other.flops, other.total, other.uncounted, other.routed, other.output)


@dataclass
class BlockMemo:
    """Installed on a model's (stand-in's) non-leaf modules for one meta forward; ``remove()`` restores
    every module's ``forward`` exactly. ``replayed``: block calls that were replayed."""

    root: nn.Module
    counter: Any
    recorder: Any = None
    replayed: int = 0
    entered: bool = False  # a watched block was called (a failure before it owes nothing to memoisation)
    _recording: int = 0  # blocks being recorded now
    _entries: Dict[Any, Any] = field(default_factory=dict)
    _structure: Dict[int, Any] = field(default_factory=dict)
    _trees: Dict[int, Dict[str, nn.Module]] = field(default_factory=dict)
    _interned: Dict[tuple, int] = field(default_factory=dict)  # a structure's full key → its number
    _wrapped: List[Tuple[nn.Module, Any]] = field(default_factory=list)

    def install(self, walked: Optional[tree.Walk] = None) -> "BlockMemo":
        """``walked``: ``tree.named_modules(root)``, when the caller has it already."""
        if _global_hooks():
            return self  # a user's global module hook sees every call: nothing may be skipped
        modules = tree.modules(self.root) if walked is None else [m for _, m in walked]
        candidates = [m for m in modules if m is not self.root and m._modules
                      and not isinstance(m, torch.jit.ScriptModule)]
        keys = [self._key_of(m) for m in candidates]
        twins = Counter(k for k in keys if k is not None)
        for module, key in zip(candidates, keys):
            # Two calls are recorded before a third is replayed: a block with fewer twins would only cost.
            if key is not None and twins[key] >= 3:
                self._wrap(module, key)
        return self

    def inside(self, walked: tree.Walk) -> set:
        """Ids of the modules reached only through watched blocks: a replay calls none of them, so their
        hooks can wait until their block runs for real (``Recorder(deferred=...)``)."""
        if not self._wrapped:
            return set()
        watched = {id(m) for m, _ in self._wrapped}
        reached, pending = set(), [self.root]
        while pending:  # the model's tree, without going into a watched block
            module = pending.pop()
            if id(module) in reached:
                continue
            reached.add(id(module))
            if id(module) not in watched:
                pending.extend(c for c in module._modules.values() if c is not None)
        return {id(m) for _, m in walked if id(m) not in reached}

    def remove(self) -> None:
        for module, own in reversed(self._wrapped):
            if own is None:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = own
        self._wrapped.clear()

    # ----------------------------------------------------------------------- what decides a block

    def _key_of(self, module: nn.Module) -> Optional[int]:
        known = self._structure.get(id(module), _REFUSED)
        if known is not _REFUSED:
            return known
        # While its key is made, a module that holds it outside the children (a back-reference to a
        # parent) keys it by identity: no endless recursion.
        self._structure[id(module)] = None
        key = None
        own = module.__dict__
        if not _has_hooks(own):
            kids = []
            for name, child in module._modules.items():
                child_key = None if child is None else self._key_of(child)
                if child is not None and child_key is None:
                    break
                kids.append((name, child_key))
            else:
                try:
                    slots = tree.slot_names(type(module))
                    extra = "" if not slots else (module.extra_repr(), _slots_key(module, slots))
                except Exception:  # noqa: BLE001 - a repr that fails: not keyed
                    extra = None
                if extra is not None:
                    full = (type(module), extra, module.training, _tensors_key(module._parameters),
                            _tensors_key(module._buffers), _attributes_key(module, self._key_of), tuple(kids))
                    # Interned as a small number, so that a parent's key holds its children's numbers,
                    # not their whole keys: hashing a decoder layer's key would otherwise walk its tree.
                    key = self._interned.setdefault(full, len(self._interned))
        self._structure[id(module)] = key
        return key

    # ----------------------------------------------------------------------- one call

    def _wrap(self, module: nn.Module, structure: tuple) -> None:
        own = module.__dict__.get("forward")  # an instance attribute of the user's (an accelerate hook), or None
        bound = own if own is not None else type(module).forward.__get__(module)

        def forward(*args, **kwargs):
            return self._call(module, bound, structure, args, kwargs)

        forward.__wrapped__ = bound  # what functools.wraps would add that matters: inspect.signature follows it

        module.__dict__["forward"] = forward  # not Module.__setattr__: a function is no submodule or tensor
        self._wrapped.append((module, own))

    def _call(self, module, bound, structure, args, kwargs):
        rec = self.recorder
        self.entered = True
        if rec is None:
            return bound(*args, **kwargs)
        if not rec.stack or rec.stack[-1][1] is not module or self._recording:
            # forward() called directly, not through the module's hooks; or a block inside one being
            # recorded, whose calls are the recording's (recording it too would only cost: its replays
            # come with the outer block's)
            rec.hook_below(module)
            return bound(*args, **kwargs)
        leaves: List[torch.Tensor] = []
        inputs = _inputs_key((args, kwargs), leaves)
        if inputs is None or _knows_any(rec.known, leaves):
            rec.hook_below(module)
            return bound(*args, **kwargs)  # a value known on meta flows in: the block's run may depend on it
        key = (structure, inputs)
        entry = self._entries.get(key)
        path = rec.stack[-1][0]
        if entry is not None and entry is not _REFUSED and entry.verified:
            return self._replay(entry, module, path, leaves)
        rec.hook_below(module)  # every run for real is recorded inside, as without the memo
        if entry is _REFUSED:
            return bound(*args, **kwargs)
        out, recording = self._record(module, bound, path, args, kwargs, leaves)
        if recording is None:
            self._entries[key] = _REFUSED
        elif entry is None:
            self._entries[key] = recording
        elif entry.same(recording):
            entry.verified = True
        else:
            self._entries[key] = _REFUSED
        return out

    def _record(self, module, bound, path: str, args, kwargs, leaves: List[torch.Tensor]):
        rec, counter = self.recorder, self.counter
        outer_flops, outer_journal = counter.by_key, rec.journal
        total, uncounted, read, routed = counter.total, Counter(counter.uncounted), counter.data_dependent, counter.routed
        counter.by_key, rec.journal, counter.data_dependent = {}, [], False
        before, answered = _state(module), rec.known.answered if rec.known is not None else 0
        self._recording += 1
        try:
            out = bound(*args, **kwargs)
        finally:
            self._recording -= 1
            flops, journal, value_read = counter.by_key, rec.journal, counter.data_dependent
            for k, v in flops.items():
                outer_flops[k] = outer_flops.get(k, 0) + v
            counter.by_key, rec.journal, counter.data_dependent = outer_flops, outer_journal, read or value_read
            if outer_journal is not None:
                outer_journal.extend(journal)
        if value_read or _state(module) != before:
            return out, None
        if rec.known is not None and (rec.known.answered != answered or _knows_any(rec.known, _leaves(out))):
            return out, None  # it read a known value, or made one that later code may read
        prefix = f"{path}." if path else ""
        inner = self._inner(module)
        events = []
        for p, shape_in, shape_out in journal:
            if not p.startswith(prefix) or p[len(prefix):] not in inner:
                return out, None  # a call outside the block's own tree (a module it does not hold)
            events.append((p[len(prefix):], shape_in, shape_out))
        relative = {}
        for k, v in flops.items():
            if k == path:
                relative[""] = v
            elif isinstance(k, str) and k.startswith(prefix):
                relative[k[len(prefix):]] = v
            else:
                return out, None
        described = _describe(out, leaves)
        if described is None:
            return out, None
        return out, _Recording(events, relative, counter.total - total, Counter(counter.uncounted) - uncounted,
                               counter.routed and not routed, described)

    def _inner(self, module: nn.Module) -> Dict[str, nn.Module]:
        """A block's modules by relative path, every name of a shared one (a replayed block has the
        structure its key was verified for; it cannot change before it is called again)."""
        inner = self._trees.get(id(module))
        if inner is None:
            inner = self._trees[id(module)] = dict(tree.named_modules(module, remove_duplicate=False))
        return inner

    def _below(self, module: nn.Module, rel: str) -> nn.Module:
        """The module at a relative path below a block: through the tables, as the path was made (a
        replayed block is walked no more: each is replayed once, and its walk cost more than its replay)."""
        found = module
        for name in rel.split("."):
            found = found._modules.get(name)
            if found is None:
                return self._inner(module)[rel]  # a class that names its modules its own way
        return found

    def _replay(self, entry: _Recording, module, path: str, leaves: List[torch.Tensor]):
        rec, counter = self.recorder, self.counter
        prefix = f"{path}." if path else ""
        rec.replay([(prefix + rel, self._below(module, rel), shape_in, shape_out)
                    for rel, shape_in, shape_out in entry.events])
        for rel, v in entry.flops.items():
            k = prefix + rel if rel else path
            counter.by_key[k] = counter.by_key.get(k, 0) + v
        counter.total += entry.total
        if entry.uncounted:
            counter.uncounted.update(entry.uncounted)
        if entry.routed:
            counter.routed = True
        self.replayed += 1
        # Beneath the modes: in the recorded run the block's own ops made its output and were counted
        # there; the empty tensors made here are archscope's, no op of the model's.
        with _no_modes():
            return _remake(entry.output, leaves)


def without_kv_cache(model: nn.Module, kwargs: dict) -> dict:
    """A decoder (transformers) fills a key/value cache by default: an object every layer appends to,
    state that changes between calls, so no layer could be replayed. A count runs one forward and
    generates nothing after it, and filling an empty cache is no op (it keeps the tensors the layers
    made), so a memoised count runs with ``use_cache=False``: the same ops, rows and outputs' shapes."""
    if "use_cache" in kwargs or not getattr(getattr(model, "config", None), "use_cache", False):
        return kwargs
    try:
        import inspect

        takes = "use_cache" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return kwargs
    return {**kwargs, "use_cache": False} if takes else kwargs


# --------------------------------------------------------------------------- keys and descriptions

def _global_hooks() -> bool:
    from torch.nn.modules import module as base

    return any(getattr(base, name, None) for name in ("_global_forward_hooks", "_global_forward_pre_hooks",
                                                       "_global_backward_hooks", "_global_forward_hooks_always_called"))


def _attributes_key(module: nn.Module, key_of=None) -> tuple:
    """Every other attribute: a plain value by value (a flag, a size, an index: a block whose forward
    branches on one differs from its twins), anything else by identity (one config object shared by
    all layers keys alike; a layer's own object does not). One exception: transformers' own modules
    keep their index in the model in ``layer_idx``, which its code reads to address the key/value
    cache (absent from a memoised count) and, at construction, to choose the layer's kind, which
    the layer then holds in attributes that are keyed (``attention_type``, ``is_sliding``...).

    A module held outside ``_modules`` (a dict of them: the ``_kernel_funcs`` that the ``kernels``
    package's ``use_kernelized_func`` gives every attention layer of transformers 5.25, one new
    stateless module each) is keyed by its structure, as a child is (``key_of``), not by identity."""
    kind = type(module)
    from_transformers = _FROM_TRANSFORMERS.get(kind)
    if from_transformers is None:
        from_transformers = _FROM_TRANSFORMERS[kind] = kind.__module__.startswith("transformers.")
    parts = []
    for k, v in module.__dict__.items():  # a forward of the instance's own (a user's patch) by identity
        if k in _OWN_TABLES or (from_transformers and k == "layer_idx"):
            continue
        kind = type(v)
        if kind in _AS_THEY_ARE:  # most attributes (a flag, a size, a name): what _by_value would give
            parts.append((k, kind, v))
        elif (kind is tuple or kind is list) and len(v) <= 64 and all(type(i) in _AS_THEY_ARE for i in v):
            parts.append((k, kind, tuple(v)))  # a kernel size, a padding: as _by_value freezes them
        elif _plain_value(v):
            parts.append((k, kind, _by_value(v)))
        else:
            hidden = _hidden_modules_key(v, key_of) if key_of is not None else None
            parts.append((k, kind, id(v) if hidden is None else hidden))
    return tuple(parts)


def _held_items(v) -> list:
    """A plain attribute's items as ``(name, value)``: a dict's, a list's or tuple's by index; a module is
    its own one item (``None`` as name); anything else none."""
    if isinstance(v, nn.Module):
        return [(None, v)]
    if type(v) is dict:
        return list(v.items())
    if type(v) in (list, tuple):
        return list(enumerate(v))
    return []


def _hidden_modules_key(v, key_of) -> Optional[tuple]:
    """The structural keys of a module, or of a dict, list or tuple of modules, held as a plain attribute;
    None for anything else, or a module that is not keyed (it is then keyed by identity)."""
    items = _held_items(v)
    if not items:
        return None
    keys = []
    for name, m in items:
        if not isinstance(m, nn.Module) or not _plain_value(name):
            return None
        key = key_of(m)
        if key is None:
            return None
        keys.append((name, key))
    return ("module", keys[0][1]) if isinstance(v, nn.Module) else ("modules", tuple(keys))


def _slots_key(module: nn.Module, names: tuple) -> tuple:
    """Slot values as ``_attributes_key`` keys attributes (an unset slot as the class of the error)."""
    parts = []
    for name in names:
        try:
            v = object.__getattribute__(module, name)
        except AttributeError:
            parts.append((name, AttributeError))
            continue
        parts.append((name, type(v), _by_value(v) if _plain_value(v) else id(v)))
    return tuple(parts)


# A module's repr is made of what its key already holds (its class, its attributes, tensors and
# submodules, objects by identity, which is stricter than their repr), except for state kept in
# ``__slots__``: only such a class has its repr and its slots keyed (the reprs of an 80-layer Llama's
# 1,045 modules cost 2.3 ms).


_AS_THEY_ARE = frozenset({int, bool, str, type(None)})  # plain values _by_value returns unchanged


def _by_value(v):
    """A plain value as a hashable key equal only for equal values: lists and sets frozen, a float by
    its repr (-0.0 is not 0.0, and a NaN equals itself), the rest as it is (a dtype, a string)."""
    kind = type(v)
    if kind is float:
        return repr(v)
    if kind in (list, tuple, torch.Size):
        return tuple(_by_value(i) for i in v)
    if kind in (set, frozenset):
        return frozenset(_by_value(i) for i in v)
    return v


_FROM_TRANSFORMERS: Dict[type, bool] = {}


def _plain_value(v) -> bool:
    """A plain value, or a list, tuple or set of them (a conv's padding, a shape): keyed by value."""
    kind = type(v)  # the type, never v.__class__ (a config object's __getattribute__ costs a call)
    if kind in PLAIN_TYPES or issubclass(kind, PLAIN_VALUES):
        return True
    return kind in (list, tuple, set, frozenset, torch.Size) and len(v) <= 64 and all(_plain_value(i) for i in v)


def _tensors_key(table) -> tuple:
    if not table:
        return ()
    return tuple([(name, None) if t is None else (name, t.shape, t.dtype, t.requires_grad) for name, t in table.items()])


def _inputs_key(x, leaves: List[torch.Tensor]):
    """The metadata that decides a meta block's work, or None when an argument is not a tensor or a
    plain value (a cache object, a custom class: state the key cannot see). Its tensors are appended
    to ``leaves`` in ``_leaves``' order (complete only where a key is returned)."""
    kind = type(x)
    if kind in PLAIN_TYPES:  # most arguments (None, a flag): by the exact type first
        return (kind, x)
    if kind is torch.Tensor or kind is nn.Parameter:
        if not x.is_meta or x.layout is not torch.strided or x.is_nested:
            return None
        leaves.append(x)
        return ("t", tuple(x.shape), x.stride(), x.storage_offset(), x.dtype, x.requires_grad)
    if isinstance(x, PLAIN_VALUES):
        return (kind, x)
    if kind is list or kind is tuple:
        keys = []
        for i in x:
            key = _inputs_key(i, leaves)
            if key is None:
                return None
            keys.append(key)
        return (kind, tuple(keys))
    if kind is dict:
        keys = []
        for k, v in x.items():
            key = _inputs_key(v, leaves) if type(k) is str else None
            if key is None:
                return None
            keys.append((k, key))
        return (dict, tuple(keys))
    return None


def _knows_any(known, tensors) -> bool:
    return known is not None and len(known.values) > 0 and any(t in known.values for t in tensors)


def _leaves(x) -> List[torch.Tensor]:
    found = []
    if isinstance(x, torch.Tensor):
        found.append(x)
    elif type(x) in (list, tuple):
        for i in x:
            found.extend(_leaves(i))
    elif type(x) is dict:
        for v in x.values():
            found.extend(_leaves(v))
    return found


def _describe(out, inputs: List[torch.Tensor]):
    """The output's structure and each tensor's metadata; a tensor that is one of the inputs is kept
    as that input's position (a block that returns what it was given returns the new block's)."""
    if type(out) is torch.Tensor:
        for i, t in enumerate(inputs):
            if t is out:
                return ("input", i)
        if out.device.type != "meta" or out.layout is not torch.strided or out.is_nested or out.requires_grad:
            return None
        return ("tensor", tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, PLAIN_VALUES):
        return ("plain", out)
    if type(out) in (list, tuple):
        parts = [_describe(o, inputs) for o in out]
        return None if any(p is None for p in parts) else (type(out), tuple(parts))
    if type(out) is dict:
        parts = [(k, _describe(v, inputs)) for k, v in out.items()]
        return None if any(p is None for _, p in parts) else (dict, tuple(parts))
    return None


def _remake(made, inputs: List[torch.Tensor]):
    kind = made[0]
    if kind == "input":
        return inputs[made[1]]
    if kind == "tensor":
        _, shape, stride, dtype = made
        return torch.empty_strided(shape, stride, dtype=dtype, device="meta")
    if kind == "plain":
        return made[1]
    if kind is dict:
        return {k: _remake(v, inputs) for k, v in made[1]}
    return kind(_remake(p, inputs) for p in made[1])


def _state(module: nn.Module, seen: Optional[set] = None) -> tuple:
    """What a call could change in a block without returning it: each module's own attributes (plain
    values by value, others by identity, lists, dicts and sets also by length) and which tensors and
    submodules it holds; and the same of each module held outside the children (keyed by structure,
    ``_hidden_modules_key``), so that a call that changes one is not replayed."""
    state = []
    modules = tree.modules(module)
    seen = set() if seen is None else seen
    seen.update(id(m) for m in modules)  # a hidden module that is a parent, or one met already: not again
    for m in modules:
        for v in m.__dict__.values():
            for _, h in _held_items(v):
                if isinstance(h, nn.Module) and id(h) not in seen:
                    state.append(_state(h, seen))
        own = []
        for k, v in m.__dict__.items():
            if k in _TABLES:
                continue
            kind = type(v)
            if kind in _AS_THEY_ARE:
                own.append((k, kind, v))  # as it is: equal only to an equal value (no NaN among them)
            elif issubclass(kind, PLAIN_VALUES):
                own.append((k, kind, repr(v)))  # by repr: a NaN attribute equals itself
            elif issubclass(kind, (list, dict, set)):
                own.append((k, id(v), len(v)))
            else:
                own.append((k, id(v)))
        state.append((tuple(own), tuple(id(t) for t in m._parameters.values()),
                      tuple(id(t) for t in m._buffers.values()), tuple(id(c) for c in m._modules.values())))
    return tuple(state)
