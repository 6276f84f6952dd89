"""Resolve what the user named as MODEL into an ``nn.Module``: one table, prefix → source.

MODEL may be a zoo name (``vgg``), ``tv:NAME`` (torchvision), ``timm:NAME``, a file and
factory (``path/to/net.py:build``), an importable ``package.module:attr``, or (from Python) an
``nn.Module``. Prefixed library sources are parsed here, above the registry, as timm parses
``hf-hub:`` above its own; "did you mean" is worked out here too, for every source.
"""
from __future__ import annotations

import ast
import difflib
import os
from types import ModuleType
from typing import Any, Dict, List, Optional

from torch import nn

from archscope.errors import UsageError
from archscope.models import files, hf, registry, timm, torchvision
from archscope.models.build import Loaded, build_on, guarded, stand_in
from archscope.models.user import import_user, load_factory, module_candidates

# Library sources by prefix: each module gives names(pattern), default_input(name),
# builder(name, kwargs), describe(name) and published(name), or load(name, device, kwargs) when
# the name is not one of a list (hf: a model type, a path or a Hub id). A new source is one more line.
SOURCES: Dict[str, ModuleType] = {torchvision.PREFIX: torchvision, timm.PREFIX: timm, hf.PREFIX: hf}


def load_model(spec: Any, device: str = "meta", **kwargs) -> Loaded:
    if isinstance(spec, nn.Module):
        if kwargs:
            raise UsageError("model options (--arg) apply only when archscope builds the model")
        wrapper, notes = None, []
        while True:
            if isinstance(spec, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
                wrapper, spec = type(spec).__name__, spec.module  # the model inside; the wrapper only scatters
                notes.append(f"the {wrapper} wrapper was unwrapped: these are the rows of its .module")
            elif type(spec).__name__ == "OptimizedModule" and isinstance(getattr(spec, "_orig_mod", None), nn.Module):
                spec = spec._orig_mod  # torch.compile's wrapper: one row; the module it compiles has them all
                notes.append("the torch.compile wrapper was unwrapped: these are the original module's rows, run "
                             "eagerly (the compiled graph's fusions move fewer bytes, not fewer FLOPs)")
            else:
                break
        note = "; ".join(notes) or None
        # archscope runs and changes a stand-in, never the user's object (build.stand_in says what it shares)
        return Loaded(stand_in(spec), type(spec).__name__, getattr(spec, "input_size", None), None, note, passed_in=True)
    if not isinstance(spec, str):
        raise UsageError(f"MODEL must be a zoo name, file.py:factory, module:attr or an nn.Module, not {type(spec).__name__}")
    prefix, sep, name = spec.partition(":")
    if sep and prefix in SOURCES:
        return _load_library(prefix, name, device, kwargs)
    if files.is_model_file(spec):  # model.onnx, model.pt2, a TorchScript file, weights beside a config.json
        return files.load_file(spec, device, kwargs)
    if ":" in spec and not _looks_like_drive(spec):
        return load_factory(spec, device, kwargs)
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise UsageError(f"file not found: {spec}")
        found = module_candidates(import_user(spec))
        pick = "build" if "build" in found or not found else found[0]
        raise UsageError(f"'{spec}' is a file: add the function or class in it that builds the model, "
                         f"as {spec}:{pick} (candidates: {', '.join(found) or 'none found'})")
    return _load_zoo(spec, device, kwargs)


_TYPED = object()  # the model was typed by the user: only the options a file gave are checked


def check_named_by_file(where: str, typed: str, spec: Any = _TYPED, kwargs: Optional[Dict[str, Any]] = None) -> None:
    """A model spec a file names (a checkpoint's saved config, a resumed run) must not choose code to run:
    it may name only the zoo, ``tv:``, ``timm:`` or ``hf:``, and its options (``kwargs``, from the file)
    never remote code. A file or module spec (``x.py:f``, ``pkg.mod:attr``) runs only when the user
    types it; ``typed`` says how to (``{spec}`` is filled in). Nothing is imported to decide."""
    if (kwargs or {}).get("trust_remote_code"):
        raise UsageError(f"{where} asks for trust_remote_code=True, which would run code the model's files "
                         f"carry: archscope takes that only when you type it (--arg trust_remote_code=True)")
    if spec is _TYPED:
        return
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"{where} names no model archscope can build (it holds a {type(spec).__name__}): "
                         f"pass the model yourself")
    prefix, _ = split_source(spec)
    if prefix is None and spec not in registry.list_models():
        raise UsageError(f"{where} names the model '{spec}', which is code to import: archscope runs a file or "
                         f"module only when you type it; if you trust it, run: {typed.format(spec=spec)}")


def split_source(spec: str):
    """``"tv:res*"`` → ``("tv", "res*")``; ``(None, spec)`` when there is no library prefix."""
    prefix, sep, rest = spec.partition(":")
    return (prefix, rest) if sep and prefix in SOURCES else (None, spec)


def library_names(prefix: str, pattern: str = "*") -> List[str]:
    return SOURCES[prefix].names(pattern)


def parse_args(pairs: List[str]) -> Dict[str, Any]:
    """``["ratio=8", "fc_layers=1"]`` → ``{"ratio": 8, "fc_layers": 1}`` (Python literals, else strings)."""
    kwargs: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"malformed --arg '{pair}': expected key=value, e.g. --arg fc_layers=1")
        try:
            kwargs[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value
    return kwargs


def zoo_entry(name: str) -> registry.ModelEntry:
    """The zoo's entry; an unknown name says what the user probably meant, in any source."""
    if name in registry.list_models():
        return registry.get_entry(name)
    # An exact torchvision name beats a fuzzy zoo match (torchvision is imported only on this error path).
    hint = f"did you mean tv:{name}? " if torchvision.has(name) else registry.did_you_mean(name)
    raise UsageError(f"unknown model '{name}': {hint}known models: {', '.join(registry.list_models())}")


def _looks_like_drive(spec: str) -> bool:
    return len(spec) > 1 and spec[1] == ":" and spec[0].isalpha() and os.name == "nt"


def _load_zoo(name: str, device: str, kwargs: Dict[str, Any]) -> Loaded:
    entry = zoo_entry(name)
    build = guarded(name, kwargs, lambda: registry.get_model(name, **kwargs))
    module, note = build_on(device, build, name)
    return Loaded(module, name, entry.default_side, build, note)


def _load_library(prefix: str, name: str, device: str, kwargs: Dict[str, Any]) -> Loaded:
    source = SOURCES[prefix]
    if hasattr(source, "load"):
        return source.load(name, device, kwargs)
    is_name = getattr(source, "is_name", None)
    if not (is_name(name) if is_name is not None else name in source.names()):
        known = source.names()
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'{prefix}:{c}' for c in close)}?" if close else ""
        raise UsageError(f"unknown model '{prefix}:{name}'{hint} (list them with: archscope list '{prefix}:*')")
    label = f"{prefix}:{name}"
    build = source.builder(name, kwargs)
    module, note = build_on(device, build, label)
    default = source.default_input(name)
    fixed = getattr(module, "image_size", None)  # e.g. torchvision's ViT: built for one side only
    if isinstance(fixed, int) and isinstance(default, tuple) and len(default) == 4 and default[2:] != (fixed, fixed):
        default = default[:2] + (fixed, fixed)
    return Loaded(module, label, default, build, note)


__all__ = ["Loaded", "SOURCES", "check_named_by_file", "load_model", "library_names", "parse_args", "split_source", "zoo_entry"]
