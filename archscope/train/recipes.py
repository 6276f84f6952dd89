"""Per-model defaults that train well out of the box (one-cycle Adam).

Every value can be overridden by a flag; D2L's own settings are ``--optimizer adam
--schedule none --lr 0.001`` (0.002 for NiN). Only LeNet's recipe has been checked on the
full data here (3 epochs on CPU); the others were chosen from short CPU runs (see the notes).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    lr: float
    batch_size: int
    optimizer: str = "adam"
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0


RECIPES = {
    "lenet": Recipe(lr=0.02, batch_size=256),
    "alexnet": Recipe(lr=0.0001, batch_size=128),  # Adam at 1e-3 spikes on AlexNet (no BatchNorm),
    "vgg": Recipe(lr=0.001, batch_size=128),
    "nin": Recipe(lr=0.002, batch_size=128),
    "googlenet": Recipe(lr=0.002, batch_size=128),
}
DEFAULT = Recipe(lr=0.001, batch_size=128)


def recipe_for(model: str) -> Recipe:
    return RECIPES.get(model, DEFAULT)
