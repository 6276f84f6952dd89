"""Meta runs that do not import ``torch._dynamo``.

PyTorch's Python reference kernels (what many ops run on the meta device: ``mul`` inside the
``addmm`` decomposition, ``relu``, ``where``...) are wrapped by ``torch._disable_dynamo``, which
imports ``torch._dynamo`` on a wrapped function's first call, to find ``torch._dynamo.disable``:
1.1–1.5 s here, more than the rest of a command. Its only job is to stop dynamo from tracing into
the reference when dynamo itself is tracing, and nothing traces during archscope's meta run.

PyTorch's wrapper looks for the disabled function it made on a first call in the wrapped
function's ``__dynamo_disable`` attribute. While a meta run lasts, each wrapped reference that has
none yet gets itself there, so the wrapper calls the reference directly; when the run ends those
attributes are removed again, so the first call after it (a later ``torch.compile``, an eager meta
op) imports dynamo and makes the real one exactly as it would have. Nothing in dynamo is replaced.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Dict, List

_WRAPPED: List[Any] = []  # the reference functions PyTorch's _disable_dynamo wrapped, found once


def _wrapper_code():
    from torch._compile import _disable_dynamo

    return _disable_dynamo(lambda: None).__code__


def _find() -> List[Any]:
    """Every function ``torch._disable_dynamo`` wrapped among the references and decompositions the
    meta device runs (reached through their ``__wrapped__`` chains and closures)."""
    import torch._decomp
    import torch._decomp.decompositions
    import torch._refs
    import torch._refs.nn.functional
    import torch._refs.special

    code = _wrapper_code()
    found: Dict[int, Any] = {}
    seen = set()
    pending = [v for m in (torch._refs, torch._refs.nn.functional, torch._refs.special, torch._decomp.decompositions)
               for v in vars(m).values() if callable(v)]
    pending += list(torch._decomp.decomposition_table.values()) + list(torch._decomp.meta_table.values())
    while pending:
        f = pending.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        if getattr(f, "__code__", None) is code:
            cells = dict(zip(f.__code__.co_freevars, f.__closure__ or ()))
            if "fn" in cells:
                found[id(cells["fn"].cell_contents)] = cells["fn"].cell_contents
        for cell in getattr(f, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if callable(value) and hasattr(value, "__code__"):
                pending.append(value)
        wrapped = getattr(f, "__wrapped__", None)
        if wrapped is not None:
            pending.append(wrapped)
    return list(found.values())


@contextlib.contextmanager
def without_dynamo_import():
    """While it lasts, PyTorch's references run without importing ``torch._dynamo`` (see above).
    Once dynamo is imported (by the user, or by an op this does not reach) it does nothing."""
    if "torch._dynamo" in sys.modules:
        yield
        return
    if not _WRAPPED:
        _WRAPPED.extend(_find())
    given = []
    for fn in _WRAPPED:
        if "__dynamo_disable" not in getattr(fn, "__dict__", {}):
            try:
                fn.__dynamo_disable = fn
            except (AttributeError, TypeError):
                continue
            given.append(fn)
    try:
        yield
    finally:
        for fn in given:
            if fn.__dict__.get("__dynamo_disable") is fn:
                del fn.__dynamo_disable


# SymPy (0.65 s of a fresh process) is imported by PyTorch's own element-wise type promotion
# (``torch._prims_common.elementwise_dtypes`` imports it to test ``isinstance(x, sympy.Basic)``) and by
# every ``torch._check``: only running no Python meta kernel at all would avoid it.
