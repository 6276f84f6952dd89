"""The base of archscope's dispatch modes (the FLOP counter, the dtype check, the memory tracker...).

PyTorch wraps every ``TorchDispatchMode`` subclass's ``__torch_dispatch__`` in ``torch._dynamo.disable``
so that torch.compile does not trace into it. The wrapper imports ``torch._dynamo`` on its first call:
1.5 s of the CLI's 2.4 s start-up past ``import torch`` (half of ``archscope shapes alexnet``), and a
little more per op afterwards. archscope's modes run eager analysis, never under torch.compile (a
compiled module is unwrapped first), so they opt out, as PyTorch's ``_should_skip_dynamo`` allows.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class DispatchMode(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False


_WRITES_FIRST: Dict[Any, bool] = {}
_RESIZES = ("set_", "resize_", "resize_as_", "_resize_output_")


def writes_first_in_place(func) -> bool:
    """Whether an op writes only its first argument's contents, in place, and returns it (relu_, add_,
    uniform_): never one that changes its shape or storage (squeeze_, resize_: PyTorch's inplace_view
    tag, or a resize by name)."""
    known = _WRITES_FIRST.get(func)
    if known is None:
        schema = func._schema
        first = schema.arguments[0].alias_info if schema.arguments else None
        writes = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
        known = _WRITES_FIRST[func] = (
            first is not None and first.is_write and len(writes) == 1 and len(schema.returns) == 1
            and schema.returns[0].alias_info is not None and torch.Tag.inplace_view not in func.tags
            and func._overloadpacket.__name__ not in _RESIZES
        )
    return known
