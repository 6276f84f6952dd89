"""Models from torchvision (``tv:NAME``) and timm (``timm:NAME``), built without weights.

torchvision and timm are imported only here, and only when such a name is used, so the
start-up of every other command does not pay for them. Each model's default input is the
one its library documents: torchvision's ``weights.transforms()`` crop size (224, 299 for
inception_v3, 16 frames for video models; detection models take a list of images,
optical-flow models two images), timm's ``pretrained_cfg["input_size"]``.
"""
from __future__ import annotations

import fnmatch
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from archscope.errors import UsageError, first_line

SOURCES = ("tv", "timm")


# --------------------------------------------------------------------------- torchvision

def _tv():
    import torchvision.models

    return torchvision.models


def tv_names(pattern: str = "*") -> List[str]:
    return sorted(n for n in _tv().list_models() if fnmatch.fnmatch(n, pattern))


def tv_task(name: str) -> str:
    """classification | detection | segmentation | video | optical_flow | quantization."""
    models = _tv()
    for task in ("detection", "segmentation", "video", "optical_flow", "quantization"):
        if name in models.list_models(module=getattr(models, task)):
            return task
    return "classification"


def tv_weights(name: str):
    """The DEFAULT weights enum member (its metadata only; nothing is downloaded), or None."""
    try:
        return _tv().get_model_weights(name).DEFAULT
    except (ValueError, AttributeError, KeyError):
        return None


def tv_default_input(name: str):
    """A full input shape, or ``Inputs`` for models whose forward takes a list or two images."""
    from archscope.trace.inputs import Inputs

    task = tv_task(name)
    weights = tv_weights(name)
    keywords = getattr(getattr(weights, "transforms", None), "keywords", {}) or {}
    crop = keywords.get("crop_size") or keywords.get("resize_size")
    if isinstance(crop, (list, tuple)):
        h, w = (crop[0], crop[-1])
    else:
        h = w = int(crop) if crop else 224
    if task == "video":
        return (1, 3, 16, h, w)
    if task == "segmentation":
        return (1, 3, 520, 520)
    if task == "detection":
        side = 800  # the detectors resize to min_size=800 themselves
        return Inputs(data=(([torch.zeros(3, side, side)],), {}))
    if task == "optical_flow":
        return Inputs(shapes=[(1, 3, 224, 224), (1, 3, 224, 224)], dtypes=[torch.float32] * 2)
    return (1, 3, h, w)


def _build_tv(name: str, kwargs: Dict[str, Any]):
    import inspect

    models = _tv()
    options = dict(kwargs)
    if "weights_backbone" in inspect.signature(models.get_model_builder(name)).parameters:
        options.setdefault("weights_backbone", None)  # detection/segmentation would download a backbone

    return _builder(f"tv:{name}", kwargs, lambda: models.get_model(name, weights=None, **options))


def _builder(label: str, kwargs: Dict[str, Any], make):
    """``build(device)``: ``make()`` under ``torch.device(device)``; a bad option is one usage line."""
    def build(device: str) -> nn.Module:
        with torch.device(device):
            try:
                return make()
            except (TypeError, ValueError) as error:
                raise UsageError(f"cannot build {label} with {_fmt(kwargs)}: {first_line(error)}") from error
    return build


# --------------------------------------------------------------------------- timm

def _timm():
    try:
        import timm
    except ImportError:
        raise UsageError("timm is not installed: pip install 'archscope[timm]' (or pip install timm)") from None
    return timm


def timm_names(pattern: str = "*") -> List[str]:
    return sorted(_timm().list_models(pattern))


def timm_default_input(name: str) -> Tuple[int, ...]:
    cfg = _timm().get_pretrained_cfg(name)
    size = tuple(getattr(cfg, "input_size", None) or (3, 224, 224))
    return (1,) + size


def _build_timm(name: str, kwargs: Dict[str, Any]):
    return _builder(f"timm:{name}", kwargs, lambda: _timm().create_model(name, pretrained=False, **kwargs))


# --------------------------------------------------------------------------- shared

def names(source: str, pattern: str = "*") -> List[str]:
    return tv_names(pattern) if source == "tv" else timm_names(pattern)


def default_input(source: str, name: str):
    return tv_default_input(name) if source == "tv" else timm_default_input(name)


def load(source: str, name: str, device: str, kwargs: Dict[str, Any]):
    from archscope.loader import Loaded, build_on

    known = names(source)
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'{source}:{c}' for c in close)}?" if close else ""
        raise UsageError(f"unknown model '{source}:{name}'{hint} (list them with: archscope list '{source}:*')")
    build = _build_tv(name, kwargs) if source == "tv" else _build_timm(name, kwargs)
    module, note = build_on(device, build, f"{source}:{name}")
    default = default_input(source, name)
    fixed = getattr(module, "image_size", None)  # e.g. torchvision's ViT: built for one side only
    if isinstance(fixed, int) and isinstance(default, tuple) and len(default) == 4 and default[2:] != (fixed, fixed):
        default = default[:2] + (fixed, fixed)
    return Loaded(module, f"{source}:{name}", default, build, note)


def suggest(name: str) -> Optional[str]:
    """``"tv:resnet50"`` when a bare unknown name is a torchvision model."""
    try:
        return f"tv:{name}" if name in _tv().list_models() else None
    except ImportError:
        return None


def _fmt(kwargs: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"
