"""torchvision's models (``tv:NAME``), built without weights.

torchvision is imported only here, and only when such a name is used, so the start-up of every
other command does not pay for it. Each model's default input is the one torchvision documents:
the crop size of its weights' ``transforms()`` (224, 299 for inception_v3), 16 frames for video
models, a list of one image for detection models, two images for optical flow.
"""
from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Dict, List, Optional

import torch

from archscope.inputs import Inputs
from archscope.models.build import guarded

PREFIX = "tv"


def _models():
    import torchvision.models

    return torchvision.models


def names(pattern: str = "*") -> List[str]:
    return sorted(n for n in _models().list_models() if fnmatch.fnmatch(n, pattern))


def task(name: str) -> str:
    """classification | detection | segmentation | video | optical_flow | quantization."""
    models = _models()
    for kind in ("detection", "segmentation", "video", "optical_flow", "quantization"):
        if name in models.list_models(module=getattr(models, kind)):
            return kind
    return "classification"


def weights(name: str):
    """The DEFAULT weights enum member (its metadata only; nothing is downloaded), or None."""
    try:
        return _models().get_model_weights(name).DEFAULT
    except (ValueError, AttributeError, KeyError):
        return None


# Models whose published figures describe another build than the default one archscope builds.
PUBLISHED_BUILD = {
    "googlenet": "torchvision's figures are of the build without the two auxiliary heads (aux_logits=False)",
    "quantized_googlenet": "torchvision's figures are of the build without the two auxiliary heads (aux_logits=False)",
}


def published(name: str) -> Dict[str, Any]:
    """torchvision's published figures for the default weights: ``num_params``, ``_ops`` (GMACs),
    and a note when they describe another build than the default one."""
    meta = getattr(weights(name), "meta", {}) or {}
    return {"params": meta.get("num_params"), "gmacs": meta.get("_ops"), "note": PUBLISHED_BUILD.get(name)}


def default_input(name: str):
    """A full input shape, or ``Inputs`` for models whose forward takes a list or two images."""
    kind = task(name)
    keywords = getattr(getattr(weights(name), "transforms", None), "keywords", {}) or {}
    crop = keywords.get("crop_size") or keywords.get("resize_size")
    if isinstance(crop, (list, tuple)):
        h, w = (crop[0], crop[-1])
    else:
        h = w = int(crop) if crop else 224
    if kind == "video":
        return (1, 3, 16, h, w)
    if kind == "segmentation":
        return (1, 3, 520, 520)
    if kind == "detection":
        side = 800  # the detectors resize to min_size=800 themselves
        return Inputs(data=(([torch.zeros(3, side, side)],), {}))
    if kind == "optical_flow":
        return Inputs(shapes=[(1, 3, 224, 224), (1, 3, 224, 224)], dtypes=[torch.float32] * 2)
    return (1, 3, h, w)


def builder(name: str, kwargs: Dict[str, Any]):
    models = _models()
    options = dict(kwargs)
    if "weights_backbone" in inspect.signature(models.get_model_builder(name)).parameters:
        options.setdefault("weights_backbone", None)  # detection/segmentation would download a backbone
    return guarded(f"{PREFIX}:{name}", kwargs, lambda: models.get_model(name, weights=None, **options))


def describe(name: str) -> str:
    return f"torchvision {task(name)}"


def has(name: str) -> Optional[bool]:
    """Whether torchvision has a model of this name (None when torchvision cannot be imported)."""
    try:
        return name in _models().list_models()
    except ImportError:
        return None
