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
    found = sorted({str(t.dtype).removeprefix("torch.") for t in torch.utils._pytree.tree_leaves(args)
                    if isinstance(t, torch.Tensor) and t.is_floating_point()})
    if len(found) > 1:
        raise RuntimeError(f"{func._overloadpacket.__name__} was given operands of different dtypes "
                           f"({' and '.join(found)}), which a CPU or CUDA kernel refuses: cast the input to the "
                           "model's dtype, or the model to the input's")
