"""Where a run computes: the device, bf16 autocast, and a clock that suits it."""
from __future__ import annotations

import contextlib
import time

import torch

from archscope.errors import TrainingError, UsageError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but no CUDA GPU is available: use --device cpu (or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown --device '{name}': use auto, cpu or cuda")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on the device's type (CUDA or CPU), or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class Timer:
    """Wall time; on CUDA, CUDA events (the GPU's own clock, synchronised once at the end)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.t0 = time.perf_counter()
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
            self.start.record()

    def seconds(self) -> float:
        if not self.cuda:
            return time.perf_counter() - self.t0
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1000
