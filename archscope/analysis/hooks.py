"""Forward hooks that record every module call: call paths, shapes, the stack of running modules."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Set, Tuple

import torch
from torch import nn

from archscope.analysis.counter import FlopCounter
from archscope.analysis.receptive import field_of
from archscope.inputs import shape_of
from archscope.models import tree


class PathListener(Protocol):
    """Whatever wants to know whose work runs now (the FLOP counter, the stopwatch, the memory
    trackers): told each time the current call path changes (None: outside any module)."""

    def path_changed(self, path: Optional[str]) -> None: ...


class Recorder:
    """Forward hooks on every module: per call path, the number of calls and the last
    input/output shapes; the stack of modules entered but not left (so a failure can be
    pinned to a layer); and ``current``, the call path whose work runs now, which it tells
    its listeners (the counter first) each time it changes, in the forward and the backward.

    A module's call path is its caller's path plus the name the caller knows it by, so a
    block shared by two stages is ``stage1.block`` when stage1 calls it and
    ``stage2.block`` when stage2 does; a module called by something that does not hold it
    keeps its first structural name."""

    def __init__(self, model: nn.Module, counter: Optional[FlopCounter] = None, tag_autograd: bool = False,
                 fields: bool = False, listeners: Tuple[PathListener, ...] = (), walked: Optional[tree.Walk] = None,
                 deferred: Optional[Set[int]] = None, rows_depth: Optional[int] = None):
        """``deferred``: ids of modules hooked only when ``hook_below`` is called for a module above them
        (those inside the blocks a memo may replay, which a replay never calls: 936 of an 80-layer
        Llama's 1,045). Any call of one still waiting sets ``missed``: its call went unrecorded, and the
        caller runs the forward again with every module hooked.

        ``rows_depth``: only rows down to this depth will be made from this record. A module at that
        depth or below whose forward looks at its tree's hooks (``reads_its_hooks``: a
        TransformerEncoderLayer takes its fused kernel only when no module of its tree has a hook)
        is then watched by global hooks, which it does not see, and its descendants (no row) not at
        all: it runs as it runs without archscope. Its work is charged to it, so every row down to
        that depth is the same. A descendant called from outside it sets ``missed``, and so does a
        record the rows would read differently (``rows_may_differ``)."""
        self.root = model
        self.current: Optional[str] = None  # the call path whose work runs now (None: outside any module)
        self.listeners: List[PathListener] = ([counter] if counter is not None else []) + list(listeners)
        self.fields: Optional[Dict[str, Any]] = {} if fields else None  # path → receptive field of its output
        self.receptive = None  # the ReceptiveFields mode of this forward, when fields are followed
        self.flow = None  # the Flow of this forward (tensors from producer to consumer), when asked for
        self.known = None  # the KnownValues of a meta forward (the values of the input archscope made)
        self.journal: Optional[List[Tuple[str, Any, Any]]] = None  # while a block is recorded (memo.py): its calls
        self.replayed = 0  # block calls replayed rather than run (memo.py)
        self.counter = counter
        self.tag_autograd = tag_autograd
        self.node_path: Dict[Any, str] = {}  # autograd node → the call path whose forward created it
        self._frontier: Dict[Any, tuple] = {}  # autograd node → the input nodes of the call that claimed it
        if walked is None:
            walked = tree.named_modules(model)
        self.names = {id(m): n for n, m in walked}
        self.calls: Dict[str, int] = {}
        self.inputs: Dict[str, Any] = {}
        self.modules: Dict[str, nn.Module] = {}  # call path → the module called by it
        self.outputs: Dict[str, Any] = {}  # path → its last call's output shape
        self.call_outputs: Dict[str, List[Any]] = {}  # path → every call's output shape, in order
        self.first_seen: Dict[str, int] = {}  # path → index of its first call
        self.last_seen: Dict[str, int] = {}
        self.stack: List[Tuple[str, nn.Module, Any]] = []
        self._relative: Dict[Tuple[int, int], Optional[str]] = {}
        self._descendants: Dict[int, Dict[int, str]] = {}  # parent → {descendant: its name in parent}
        self._finished = 0  # calls completed so far, to order them
        self._handles = []
        self._ids: List[Tuple[nn.Module, int, int]] = []  # hooks put in a module's tables directly
        self.missed = False  # a deferred module was called before it was hooked
        self._waiting: Dict[int, nn.Module] = {}  # deferred modules not hooked yet
        self._opened: Set[int] = set()  # modules whose tree hook_below has hooked
        self._guard = None
        self._global_post = None
        self.rows_depth = rows_depth
        # id → name of each module watched by the global hooks; id of each descendant of one → that module
        self._observed, self._silent = _self_watching(walked, self.names, rows_depth) if rows_depth is not None else ({}, {})
        silent = self._silent
        for _, module in walked:
            if deferred and id(module) in deferred:
                self._waiting[id(module)] = module
            elif id(module) not in self._observed and id(module) not in silent:
                self._hook(module)
        if self._waiting or self._observed:
            # Global, so it sees the call of any module, hooked or not; it only looks the module up.
            self._guard = torch.nn.modules.module.register_module_forward_pre_hook(self._unhooked_call)
        if self._observed:
            self._global_post = torch.nn.modules.module.register_module_forward_hook(self._observed_post,
                                                                                     with_kwargs=True)

    def _hook(self, module: nn.Module) -> None:
        if isinstance(module, torch.jit.ScriptModule):
            return  # TorchScript takes no Python hooks: its work is charged to the nearest Python caller
        if _PLAIN_REGISTRATION and type(module).register_forward_pre_hook is _REGISTER_PRE and \
                type(module).register_forward_hook is _REGISTER_POST:
            self._ids.append(_register(module, self._pre, self._post))
        else:
            self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._post))

    def hook_below(self, module: nn.Module) -> None:
        """Hook every deferred module in ``module``'s tree, before it runs for real."""
        if not self._waiting or id(module) in self._opened:
            return
        self._opened.add(id(module))
        waiting = self._waiting
        for m in tree.modules(module):
            if id(m) in waiting:
                self._hook(waiting.pop(id(m)))

    def _unhooked_call(self, module, args) -> None:
        key = id(module)
        if key in self._waiting:
            self.missed = True
        elif key in self._observed:
            self._pre(module, args, {})  # a global pre-hook is not given the keyword arguments: _observed_post is
        elif key in self._silent and not (self.stack and self.stack[-1][1] is self._silent[key]):
            self.missed = True  # called from outside the module watching it: its work would be charged elsewhere

    def _observed_post(self, module, args, kwargs, output) -> None:
        if id(module) in self._observed:
            if not args and kwargs:
                self.inputs[self.stack[-1][0]] = shape_of(kwargs)
            self._post(module, args, output)

    @property
    def watching(self) -> bool:
        """Some module is left to its own path, watched by the global hooks only."""
        return bool(self._observed)

    def rows_may_differ(self) -> bool:
        """A row at ``rows_depth`` that is an uncalled container (a ModuleList) takes its shapes from
        its called children, or else from every call below it: below a watched module that was not
        called through a called child, the calls its descendants would have made are missing."""
        depth = self.rows_depth
        for name in self._observed.values():
            parts = name.split(".")
            if len(parts) > depth + 1 and ".".join(parts[:depth + 1]) not in self.calls:
                return True
        return False

    def _path(self, module: nn.Module) -> str:
        if not self.stack:
            return "" if module is self.root else self.names.get(id(module), "")
        parent_path, parent, _ = self.stack[-1]
        key = (id(parent), id(module))
        if key not in self._relative:
            self._relative[key] = self._relative_name(parent, module)
        rel = self._relative[key]
        if rel is None:
            return self.names.get(id(module), "")
        return f"{parent_path}.{rel}" if parent_path else rel

    def _pre(self, module, args, kwargs):
        path = self._path(module)
        self.stack.append((path, module, (args, kwargs)))
        self.modules.setdefault(path, module)
        self.inputs[path] = shape_of(args) if args or not kwargs else shape_of(kwargs)
        self.charge(path)
        if self.flow is not None:
            self.flow.enter(path, module, args, kwargs)

    def _post(self, module, args, output):
        path, _, inputs = self.stack.pop()
        if self.flow is not None:
            self.flow.leave(path, module, output)
        if self.tag_autograd:
            self._tag(path, output, inputs)
        self._finished_call(path, self.inputs[path], shape_of(output))
        if self.fields is not None:
            self.fields[path] = field_of(output)
        self.charge(self.stack[-1][0] if self.stack else None)

    def _finished_call(self, path: str, inputs, outputs) -> None:
        self._finished += 1
        self.first_seen.setdefault(path, self._finished)
        self.last_seen[path] = self._finished
        self.calls[path] = self.calls.get(path, 0) + 1
        self.outputs[path] = outputs
        self.call_outputs.setdefault(path, []).append(outputs)
        if self.journal is not None:
            self.journal.append((path, inputs, outputs))

    def replay(self, calls) -> None:
        """Record module calls that were not run, as their hooks would have: ``(path, module, input
        shape, output shape)`` in the order they finished (a memoised block's, memo.py)."""
        modules, seen_inputs, first, last, counts, last_out, every = (
            self.modules, self.inputs, self.first_seen, self.last_seen, self.calls, self.outputs, self.call_outputs)
        journal, finished = self.journal, self._finished
        for path, module, inputs, outputs in calls:  # _finished_call's bookkeeping, in one loop
            finished += 1
            modules.setdefault(path, module)
            seen_inputs[path] = inputs
            first.setdefault(path, finished)
            last[path] = finished
            counts[path] = counts.get(path, 0) + 1
            last_out[path] = outputs
            every.setdefault(path, []).append(outputs)
            if journal is not None:
                journal.append((path, inputs, outputs))
        self._finished = finished

    def _tag(self, path: str, output, inputs) -> None:
        """Give this call's path to the autograd nodes its forward created: walk back from the
        outputs, stopping at the inputs' nodes and at nodes an inner call already claimed."""
        def nodes(obj):
            return [t.grad_fn for t in torch.utils._pytree.tree_leaves(obj)
                    if isinstance(t, torch.Tensor) and t.grad_fn is not None]

        stop = set(nodes(inputs))
        frontier = tuple(stop)
        pending, seen = nodes(output), set()
        while pending:
            node = pending.pop()
            if node is None or node in seen or node in stop:
                continue
            seen.add(node)
            if node in self.node_path:
                # An inner call's node: its region is its own; this call's work (a parent's matmuls
                # before its out-projection) lies upstream, from where that inner call began.
                pending.extend(self._frontier.get(node, ()))
                continue
            self.node_path[node] = path
            self._frontier[node] = frontier
            pending.extend(n for n, _ in node.next_functions)

    def hook_backward(self, loss: torch.Tensor) -> None:
        """Before each autograd node runs, tell the counter whose it is (None: outside any module)."""
        seen, pending = set(), [loss.grad_fn]
        while pending:
            node = pending.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            path = self.node_path.get(node)
            node.register_prehook(lambda grads, path=path: self.charge(path))
            pending.extend(n for n, _ in node.next_functions)

    def charge(self, path: Optional[str]) -> None:
        """From now on the work is ``path``'s: every listener is told."""
        self.current = path
        for listener in self.listeners:
            listener.path_changed(path)

    def first_and_last_below(self, path: str) -> Tuple[Optional[str], Optional[str]]:
        """The called paths under ``path`` that ran first and last (for a container's shapes)."""
        prefix = f"{path}." if path else ""
        below = [p for p in self.calls if p.startswith(prefix) and p != path]
        children = [p for p in below if "." not in p[len(prefix):]]
        below = children or below
        if not below:
            return None, None
        return min(below, key=self.first_seen.__getitem__), max(below, key=self.last_seen.__getitem__)

    def remove(self):
        for handle in (self._guard, self._global_post):
            if handle is not None:
                handle.remove()
        self._guard = self._global_post = None
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for module, pre, post in self._ids:
            module._forward_pre_hooks.pop(pre, None)
            module._forward_pre_hooks_with_kwargs.pop(pre, None)
            module._forward_hooks.pop(post, None)
        self._ids.clear()


    def _relative_name(self, parent: nn.Module, child: nn.Module) -> Optional[str]:
        for name, module in parent._modules.items():  # the common case: a direct child
            if module is child:
                return name
        # A descendant called by an ancestor (a decoder layer in a ModuleList, called by the model):
        # the ancestor's names of all its descendants, made once (80 layers: one walk, not 80).
        below = self.names if parent is self.root else self._descendants.get(id(parent))  # the root's: walked
        if below is None:
            below = self._descendants[id(parent)] = {}
            for name, module in tree.named_modules(parent):
                if name:
                    below.setdefault(id(module), name)
        return below.get(id(child))


def reads_its_hooks(kind: type) -> bool:
    """Whether a module class's forward looks at hook tables (``_forward_hooks``,
    ``_forward_pre_hooks``), by name or as a string, in its code or code nested in it: asked once
    per class. nn.TransformerEncoderLayer does: it takes its fused kernel only when no module of its
    tree has a hook."""
    known = _READS_HOOKS.get(kind)
    if known is None:
        code = getattr(getattr(kind, "forward", None), "__code__", None)
        known = _READS_HOOKS[kind] = code is not None and _mentions(code, _HOOK_TABLES)
    return known


_HOOK_TABLES = frozenset({"_forward_hooks", "_forward_pre_hooks"})
_READS_HOOKS: Dict[type, bool] = {}


def _mentions(code, names) -> bool:
    if names.intersection(code.co_names):
        return True
    return any((type(c) is str and c in names) or (hasattr(c, "co_names") and _mentions(c, names))
               for c in code.co_consts)


def _self_watching(walked: tree.Walk, names: Dict[int, str],
                   rows_depth: int) -> Tuple[Dict[int, str], Dict[int, nn.Module]]:
    """The outermost modules at ``rows_depth`` or below that read their hooks, each with its whole tree
    its own (no descendant named elsewhere first: one held outside it too would keep its hooks, and
    a hook anywhere in its tree changes its path anyway); and each of their descendants."""
    observed: Dict[int, str] = {}
    silent: Dict[int, nn.Module] = {}
    for name, module in walked:
        if not name or name.count(".") + 1 < rows_depth or id(module) in silent or \
                not reads_its_hooks(type(module)):
            continue
        below = tree.modules(module)[1:]
        prefix = name + "."
        if all(names.get(id(m), "").startswith(prefix) for m in below):
            observed[id(module)] = name
            for m in below:
                silent[id(m)] = module
    return observed, silent


# Registering a hook through nn.Module's methods makes a RemovableHandle with weak references to the
# tables: 4 us a hook, 2,000 hooks for an 80-layer Llama. The same entries are put in the tables here,
# under ids drawn from the same counter (so no id is ever shared with a handle PyTorch makes), and taken
# out again by ``Recorder.remove``. A module whose class registers hooks its own way gets the methods.
_REGISTER_PRE = nn.Module.register_forward_pre_hook
_REGISTER_POST = nn.Module.register_forward_hook
_PLAIN_REGISTRATION = isinstance(getattr(torch.utils.hooks.RemovableHandle, "next_id", None), int)


def _register(module: nn.Module, pre, post) -> Tuple[nn.Module, int, int]:
    """``module.register_forward_pre_hook(pre, with_kwargs=True)`` and ``register_forward_hook(post)``."""
    handles = torch.utils.hooks.RemovableHandle
    first = handles.next_id
    handles.next_id = first + 2
    module._forward_pre_hooks[first] = pre
    module._forward_pre_hooks_with_kwargs[first] = True
    module._forward_hooks[first + 1] = post
    return module, first, first + 1
