"""The dtype check a real kernel makes and a meta kernel skips.

A half-precision model fed a float32 input runs on meta and would be counted at the wrong bytes; on
CPU or CUDA a matrix product or convolution whose floating operands differ in dtype raises. On meta
the op at the bottom of the mode stack (the FLOP counter, or the fast kernels where none counts)
calls this first, so the run raises as the real kernel would. It is a call, not a mode of its own:
one more Python dispatch mode costs every op of every meta run a round trip through the dispatcher.
"""
from __future__ import annotations

import torch

CHECKED = frozenset({"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "convolution", "_convolution"})
_CHECKS: dict = {}  # op overload → whether it is one of CHECKED (in place or not)


def refuse_mixed_dtypes(func, args) -> None:
    checks = _CHECKS.get(func)
    if checks is None:
        name = func._overloadpacket.__name__
        checks = _CHECKS[func] = name.rstrip("_") in CHECKED
    if not checks:
        return
    dtypes = _floating_dtypes(args, set())
    if len(dtypes) > 1:
        found = sorted(str(d).removeprefix("torch.") for d in dtypes)
        raise RuntimeError(f"{func._overloadpacket.__name__} was given operands of different dtypes "
                           f"({' and '.join(found)}), which a CPU or CUDA kernel refuses: cast the input to the "
                           "model's dtype, or the model to the input's")


def _floating_dtypes(values, found: set) -> set:
    """The dtypes of the floating tensors among ``values`` and the lists, tuples and dicts in them (what
    pytree's leaves would hold for an op's arguments, in one loop: pytree cost a convolution 30 µs)."""
    for v in values:
        if isinstance(v, torch.Tensor):
            if v.is_floating_point():
                found.add(v.dtype)
        elif isinstance(v, (list, tuple)):
            _floating_dtypes(v, found)
        elif isinstance(v, dict):
            _floating_dtypes(v.values(), found)
    return found
