"""Checkpoints: written atomically, read with ``weights_only=True`` (no code runs on load)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch

from archscope.errors import TrainingError, UsageError

KEYS = ("model", "config", "epoch", "step", "history", "best_test_acc", "rng")


def save(state: Dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a file,
    and a failed write (a full disk, a folder made read-only) leaves the previous one intact."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        reason = error.strerror or str(error).splitlines()[0]
        raise TrainingError(f"could not write {path} ({reason}); the previous {path.name} is intact, "
                            f"free some space or choose another --out and resume from it") from None


def load(path: str) -> Dict[str, Any]:
    """A checkpoint written by ``archscope train``; anything else is a usage error in one line."""
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise UsageError(f"cannot read checkpoint {path}: the file is empty")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged or foreign file
        # PyTorch's message goes on to suggest weights_only=False, i.e. running the file's code: not passed on.
        reason = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"cannot read checkpoint {path}: not a checkpoint written by archscope train, or damaged "
                         f"({reason[:160]})") from None
    if not isinstance(state, dict):
        raise UsageError(f"cannot read checkpoint {path}: it holds a {type(state).__name__}, not a training checkpoint")
    missing = [k for k in KEYS if k not in state]
    if missing:
        if all(isinstance(v, torch.Tensor) for v in state.values()):
            raise UsageError(f"{path} holds only weights (a state_dict), not a checkpoint of archscope train: "
                             f"load it yourself with model.load_state_dict(torch.load(...))")
        raise UsageError(f"{path} is not a checkpoint of archscope train (no {', '.join(missing)})")
    return state


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
        raise UsageError(
            f"checkpoint {path} does not match model {name} (built with other options?): {detail[:300]}"
        ) from error
