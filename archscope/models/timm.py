"""timm's models (``timm:NAME``), built without weights; timm is an optional extra.

Imported only when such a name is used. The default input is timm's
``pretrained_cfg["input_size"]``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from archscope.errors import UsageError
from archscope.models.build import guarded

PREFIX = "timm"


def _timm():
    try:
        import timm
    except ImportError:
        raise UsageError("timm is not installed: pip install 'archscope[timm]' (or pip install timm)") from None
    return timm


def names(pattern: str = "*") -> List[str]:
    return sorted(_timm().list_models(pattern))


def is_name(name: str) -> bool:
    """Whether ``names()`` holds ``name``, without listing them all (4 ms a call: timm's 1,400 names
    matched against a pattern). A tagged name (``resnet50.a1_in1k``) is not one of them."""
    return "." not in name and _timm().is_model(name)


def default_input(name: str) -> Tuple[int, ...]:
    cfg = _timm().get_pretrained_cfg(name)
    size = tuple(getattr(cfg, "input_size", None) or (3, 224, 224))
    return (1,) + size


def builder(name: str, kwargs: Dict[str, Any]):
    return guarded(f"{PREFIX}:{name}", kwargs, lambda: _timm().create_model(name, pretrained=False, **kwargs))


def describe(name: str) -> str:
    return "timm"


def published(name: str) -> Dict[str, Any]:
    return {"params": None, "gmacs": None, "note": None}
