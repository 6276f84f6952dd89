"""The base of archscope's dispatch modes (the FLOP counter, the dtype check, the memory tracker...).

PyTorch wraps every ``TorchDispatchMode`` subclass's ``__torch_dispatch__`` in ``torch._dynamo.disable``
so that torch.compile does not trace into it. The wrapper imports ``torch._dynamo`` on its first call:
1.5 s of the CLI's 2.4 s start-up past ``import torch`` (half of ``archscope shapes alexnet``), and a
little more per op afterwards. archscope's modes run eager analysis, never under torch.compile (a
compiled module is unwrapped first), so they opt out, as PyTorch's ``_should_skip_dynamo`` allows.
"""
from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode


class DispatchMode(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False
