"""A model's modules and parameters, walked as PyTorch walks them, without its recursive generators.

``Module.named_modules`` is a generator that calls itself for every child, so each module it
yields passes up through one generator frame per level above it: an 80-layer Llama (1,046 modules,
five levels deep) costs about 3 ms a walk, and one trace walks the model a dozen times (hooks,
modes, memoisation, rows, parameter counts). These walks visit the same modules in the same
order with the same names and the same de-duplication, from one loop; ``parameters()``,
``named_parameters()``, ``buffers()`` and ``named_buffers()`` on top of them. Where a module's class has its own ``named_modules`` (or
the root its own parameter walk), PyTorch's is called instead, so an override still decides.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import torch
from torch import nn

_NAMED_MODULES = nn.Module.named_modules
_NAMED_PARAMETERS = nn.Module.named_parameters
_NAMED_MEMBERS = nn.Module._named_members
_PARAMETERS = nn.Module.parameters
_NAMED_BUFFERS = nn.Module.named_buffers
_BUFFERS = nn.Module.buffers


class _Overridden(Exception):
    """A module with a walk of its own: PyTorch's walk is used."""


def named_modules(model: nn.Module, remove_duplicate: bool = True,
                  depth: Optional[int] = None) -> List[Tuple[str, nn.Module]]:
    """``list(model.named_modules(remove_duplicate=...))``: preorder, a shared module once (by
    identity) under its first name unless ``remove_duplicate`` is False; with ``depth`` (and every name
    of a shared module: a module's first name may lie deeper), only the names at most that many levels
    below ``model`` (the rows of a depth need no deeper names)."""
    if depth is not None and remove_duplicate:
        raise ValueError("named_modules(depth=...) lists every name of a shared module: remove_duplicate=False")
    try:
        return _walk(model, remove_duplicate, depth)
    except _Overridden:
        found = list(model.named_modules(remove_duplicate=remove_duplicate))
        return found if depth is None else [(n, m) for n, m in found if (n.count(".") + 1 if n else 0) <= depth]


def modules(model: nn.Module) -> List[nn.Module]:
    """``list(model.modules())``: the walk of ``named_modules`` without making the names."""
    found: List[nn.Module] = []
    seen = set()
    pending = [model]
    try:
        while pending:
            module = pending.pop()
            if type(module).named_modules is not _NAMED_MODULES:
                raise _Overridden
            if id(module) in seen:
                continue
            seen.add(id(module))
            found.append(module)
            children = module._modules
            if children:
                pending.extend(child for child in reversed(children.values()) if child is not None)
    except _Overridden:
        return list(model.modules())
    return found


Walk = List[Tuple[str, nn.Module]]  # what ``named_modules`` returns; one walk may serve several questions


def named_parameters(model: nn.Module, walked: Optional[Walk] = None) -> List[Tuple[str, nn.Parameter]]:
    """``list(model.named_parameters())``: each parameter once, under its first name. ``walked``:
    ``named_modules(model)``, when the caller has it already."""
    if type(model).named_parameters is not _NAMED_PARAMETERS or type(model)._named_members is not _NAMED_MEMBERS:
        return list(model.named_parameters())
    return _named_tensors(model, "_parameters", walked)


def named_buffers(model: nn.Module, walked: Optional[Walk] = None) -> List[Tuple[str, torch.Tensor]]:
    """``list(model.named_buffers())``: each buffer once, under its first name."""
    if type(model).named_buffers is not _NAMED_BUFFERS or type(model)._named_members is not _NAMED_MEMBERS:
        return list(model.named_buffers())
    return _named_tensors(model, "_buffers", walked)


def _named_tensors(model: nn.Module, table: str, walked: Optional[Walk]) -> List[Tuple[str, torch.Tensor]]:
    """Each module's ``table`` (``_parameters`` or ``_buffers``) in walk order, a tensor once (by identity)."""
    found, seen = [], set()
    for prefix, module in (named_modules(model) if walked is None else walked):
        for name, t in getattr(module, table).items():  # a property on TorchScript modules, not in __dict__
            if t is None or id(t) in seen:
                continue
            seen.add(id(t))
            found.append((f"{prefix}.{name}" if prefix else name, t))
    return found


def _tensors(model: nn.Module, table: str, walked: Optional[Walk] = None) -> List[torch.Tensor]:
    """``_named_tensors`` without the names (a name is a string made per tensor)."""
    found, seen = [], set()
    for module in (modules(model) if walked is None else [m for _, m in walked]):
        for t in getattr(module, table).values():
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                found.append(t)
    return found


def buffers(model: nn.Module, walked: Optional[Walk] = None) -> List[torch.Tensor]:
    """``list(model.buffers())``. ``walked``: ``named_modules(model)``, when the caller has it already."""
    if type(model).buffers is not _BUFFERS or type(model).named_buffers is not _NAMED_BUFFERS or \
            type(model)._named_members is not _NAMED_MEMBERS:
        return list(model.buffers())
    return _tensors(model, "_buffers", walked)


def parameters(model: nn.Module, walked: Optional[Walk] = None) -> Iterator[nn.Parameter]:
    """``model.parameters()``."""
    if type(model).parameters is not _PARAMETERS or type(model).named_parameters is not _NAMED_PARAMETERS or \
            type(model)._named_members is not _NAMED_MEMBERS:
        return iter(model.parameters())
    return iter(_tensors(model, "_parameters", walked))


def _walk(model: nn.Module, remove_duplicate: bool, depth: Optional[int] = None) -> List[Tuple[str, nn.Module]]:
    found: List[Tuple[str, nn.Module]] = []
    seen = set()
    pending = [("", model, 0)]
    while pending:
        prefix, module, level = pending.pop()
        if type(module).named_modules is not _NAMED_MODULES:
            raise _Overridden
        if remove_duplicate:
            if id(module) in seen:
                continue
            seen.add(id(module))
        found.append((prefix, module))
        children = module._modules
        if children and (depth is None or level < depth):
            dot, below = (f"{prefix}." if prefix else ""), level + 1
            pending.extend((dot + name, child, below) for name, child in reversed(children.items())
                           if child is not None)
    return found


def slot_names(kind: type) -> tuple:
    """The ``__slots__`` of a class and its bases: state an instance keeps outside its ``__dict__``."""
    known = _SLOTS.get(kind)
    if known is None:
        names = []
        for c in kind.__mro__:
            declared = vars(c).get("__slots__", ())
            names.extend((declared,) if isinstance(declared, str) else declared)
        known = _SLOTS[kind] = tuple(n for n in names if n not in ("__dict__", "__weakref__"))
    return known


_SLOTS: dict = {}
