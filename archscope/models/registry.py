"""A timm-style model registry: ``register_model``, ``get_model``, ``list_models``.

An entry keeps everything archscope needs to know about a model in one place: its
builder, default input side, one-line description and training recipe, so a model a user
registers gets a default input and a recipe too.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from torch import nn

from archscope.errors import UsageError


@dataclass(frozen=True)
class Recipe:
    """Training defaults that work out of the box (one-cycle Adam unless said otherwise)."""

    lr: float = 0.001
    batch_size: int = 128
    optimizer: str = "adam"
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0


DEFAULT_RECIPE = Recipe()


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    default_side: int  # the default square input side
    description: str
    recipe: Recipe = DEFAULT_RECIPE

    def kwargs(self) -> List[str]:
        """The named keyword arguments the builder accepts (``**kwargs`` is not listed)."""
        params = inspect.signature(self.builder).parameters.values()
        return [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def accepts_any_keyword(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.builder).parameters.values())


_REGISTRY: Dict[str, ModelEntry] = {}


def register_model(default_side: Optional[int] = None, description: str = "", name: Optional[str] = None,
                   recipe: Recipe = DEFAULT_RECIPE, replace: bool = False, input_size: Optional[int] = None):
    """Register a builder under ``name`` (default: its function name) with its default square
    input side and training recipe. A name already taken is refused unless ``replace=True``.
    ``input_size`` is the older name of ``default_side``, still accepted."""
    default_side = default_side if default_side is not None else input_size
    if not isinstance(default_side, int) or default_side < 1:
        raise UsageError(f"register_model needs default_side, a positive int (the default square input side), "
                         f"not {default_side!r}")

    def wrap(builder: Callable[..., nn.Module]):
        key = name or builder.__name__
        if key in _REGISTRY and not replace:
            raise UsageError(f"a model named '{key}' is already registered: pass replace=True to replace it")
        _REGISTRY[key] = ModelEntry(key, builder, default_side, description or (builder.__doc__ or "").strip().split("\n")[0],
                                    recipe)
        return builder

    return wrap


def unregister_model(name: str) -> None:
    _REGISTRY.pop(name, None)


def list_models(pattern: str = "*") -> List[str]:
    """Registered names matching a shell-style pattern, e.g. ``list_models("vgg*")``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown model '{name}': {did_you_mean(name)}known models: {', '.join(list_models())}") from None


def did_you_mean(name: str) -> str:
    """``"did you mean 'vgg'? "`` for a near miss among the registered names, else ``""``."""
    close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'? " if close else ""


def recipe_for(model: str) -> Recipe:
    """The registered model's training recipe; the default for anything else (a file, tv:NAME)."""
    return _REGISTRY[model].recipe if model in _REGISTRY else DEFAULT_RECIPE


def get_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. Unknown keyword arguments are a ``UsageError``."""
    entry = get_entry(name)
    if not entry.accepts_any_keyword():
        accepted = entry.kwargs()
        unknown = [k for k in kwargs if k not in accepted]
        if unknown:
            raise UsageError(
                f"{name} has no option '{unknown[0]}'; it accepts: {', '.join(accepted)}"
            )
    return entry.builder(**kwargs)
