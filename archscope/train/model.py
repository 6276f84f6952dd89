"""The model a run trains: built on the device, its input side checked before any data loads."""
from __future__ import annotations

import torch
from torch import nn

from archscope.analysis.diagnose.solver import probe, smallest_running_side
from archscope.errors import UsageError
from archscope.inputs import first_in_channels
from archscope.models import load_model


def build_model(cfg, device: torch.device):
    """``(module on device, input side, input channels)``, the weights seeded by ``cfg.seed``."""
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    loaded = load_model(cfg.model, device=str(device), **cfg.model_kwargs)
    side = cfg.resize or loaded.default_side
    if side is None:
        raise UsageError(f"{cfg.model} has no default input size: pass --resize SIDE")
    return loaded.module, side, first_in_channels(loaded.module) or 1


def meta_model(model: str, model_kwargs) -> nn.Module:
    """The model built on meta (no memory): what the side check probes."""
    return load_model(model, device="meta", **model_kwargs).module


def check_side(model_name: str, side: int, module, channels: int) -> None:
    """``--resize`` a model cannot take is a usage error, said before any data is loaded."""
    shape = (1, channels, side, side)
    if probe(module, shape, side).ok:
        return
    lo, hi = smallest_running_side(module, shape)
    if lo is None:
        accepts = "no square side up to 8192"
    elif hi is None:
        accepts = f"sides from {lo} up"
    else:
        accepts = f"side {lo}" if lo == hi else f"sides {lo}..{hi}"
    raise UsageError(f"--resize {side}: {model_name} does not run at {side}×{side}; it accepts {accepts}")
