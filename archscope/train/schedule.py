"""The learning rate as a function of the step, and the optimizer."""
from __future__ import annotations

import math

import torch


def get_lr(step: int, cfg, total_steps: int) -> float:
    """The learning rate of global step ``step``: a pure function, so a resumed or extended run
    needs no saved scheduler state. One-cycle: cosine warm-up from lr/25 to lr over the first
    20% of the steps, then cosine down to lr/250,000 (PyTorch's OneCycleLR shape)."""
    if cfg.schedule == "none":
        return cfg.lr
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    start, end = cfg.lr / 25, cfg.lr / 25 / 1e4
    warm = max(1, round(0.2 * total_steps) - 1)
    if step <= warm:
        return _cos(start, cfg.lr, step / warm)
    return _cos(cfg.lr, end, min(1.0, (step - warm) / max(1, total_steps - 1 - warm)))


def _cos(a: float, b: float, pct: float) -> float:
    return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)


def make_optimizer(cfg, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
