"""A timm-style model registry: ``register_model``, ``get_model``, ``list_models``."""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List

from torch import nn

from archscope.errors import UsageError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_size: int  # default square input side
    description: str

    def kwargs(self) -> List[str]:
        """The keyword arguments the builder accepts."""
        return [p for p in inspect.signature(self.builder).parameters]


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(input_size: int, description: str):
    """Register a builder under its function name, with its default input side."""

    def wrap(builder: Callable[..., nn.Module]):
        _REGISTRY[builder.__name__] = ModelEntry(builder.__name__, builder, input_size, description)
        return builder

    return wrap


def list_models(pattern: str = "*") -> List[str]:
    """Registered names matching a shell-style pattern, e.g. ``list_models("vgg*")``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        from archscope.zoo.external import suggest  # imports torchvision: only on this error path

        elsewhere = suggest(name)  # an exact torchvision name beats a fuzzy zoo match
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=1, cutoff=0.5)
        hint = f"did you mean {elsewhere}? " if elsewhere else f"did you mean '{close[0]}'? " if close else ""
        raise UsageError(
            f"unknown model '{name}': {hint}known models: {', '.join(list_models())}"
        ) from None


def get_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. Unknown keyword arguments are a ``UsageError``."""
    entry = get_entry(name)
    accepted = entry.kwargs()
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise UsageError(
            f"{name} has no option '{unknown[0]}'; it accepts: {', '.join(accepted)}"
        )
    return entry.builder(**kwargs)
