"""Checkpoints: written atomically, read with ``weights_only=True`` (no code runs on load)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch

from archscope.errors import TrainingError


def save(state: Dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise TrainingError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged or foreign file
        raise TrainingError(f"cannot read checkpoint {path}: {str(error).splitlines()[0]}") from error


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_weights(model: torch.nn.Module, weights: Dict[str, torch.Tensor], path: str, name: str) -> None:
    """Load a state dict; a mismatch says which checkpoint and model, in one line."""
    # torch.compile wraps the model: its keys carry an '_orig_mod.' prefix.
    weights = {k.replace("_orig_mod.", "", 1): v for k, v in weights.items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise TrainingError(
            f"checkpoint {path} does not match model {name} (built with other options?): {detail[:300]}"
        ) from error
