"""A model file as MODEL: what kind it is (by its content, not only its name), and how it is read.

- ``.onnx``: the graph run as PyTorch calls (``onnx_file.py``; needs ``archscope[onnx]``);
- ``.pt2`` (``torch.export.save``): the exported program's module;
- a TorchScript file (``torch.jit.save``): loaded as TorchScript is, and a TorchScript file is code:
  loading it runs what it holds, so archscope loads it only when the user names it;
- weights only: ``.safetensors``, a ``state_dict`` saved by ``torch.save`` (read with
  ``weights_only=True``: no pickle ever runs code), a sharded checkpoint's ``*.index.json``. With
  a ``config.json`` beside it, the ``hf:`` model that config builds; ``weights`` lists the tensors.

Nothing here executes code from a pickle.
"""
from __future__ import annotations

import json
import os
import struct
import warnings
import zipfile
from typing import Any, Dict, Optional

import torch

from archscope.errors import UsageError
from archscope.models.build import Loaded

KINDS = ("onnx", "pt2", "torchscript", "safetensors", "state_dict", "index")
WEIGHTS = ("safetensors", "state_dict", "index")
READS = "ONNX, .pt2 (torch.export), TorchScript, safetensors, a state_dict .pt/.bin, a sharded *.index.json"


def file_kind(path: str) -> Optional[str]:
    """The kind of model file at ``path`` (one of ``KINDS``), from its first bytes and, for a zip,
    the names inside it; None when it is none of them."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    if head[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            return None
        if any(n == "archive_format" or n.endswith("/archive_format") or n.endswith("serialized_exported_program.json")
               for n in names):
            return "pt2"
        if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "state_dict"
        return None
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n < size and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"{":
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (ValueError, UnicodeDecodeError):
            return None
        return "index" if isinstance(data, dict) and isinstance(data.get("weight_map"), dict) else None
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80":  # a legacy (not zipped) torch.save pickle
        return "state_dict"
    if head[:1] == b"\x08" or path.lower().endswith(".onnx"):  # an ONNX ModelProto opens with its ir_version
        return "onnx"
    return None


def is_model_file(spec: Any) -> bool:
    """A path to a file (with an extension or a folder in it: a bare ``alexnet`` stays the zoo's)."""
    return (isinstance(spec, str) and not spec.endswith(".py") and (os.sep in spec or "." in os.path.basename(spec))
            and os.path.isfile(spec))


def load_file(path: str, device: str, kwargs: Dict[str, Any]) -> Loaded:
    kind = file_kind(path)
    if kind is None:
        raise UsageError(f"{path} is not a model file archscope reads ({READS})")
    if kind in WEIGHTS:
        config = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
        if not os.path.isfile(config):
            raise UsageError(f"{path} holds weights only, no architecture: 'archscope weights {path}' lists its "
                             "tensors; with the config.json it was saved with beside it, archscope builds the model")
        from archscope.models import hf

        loaded = hf.load(os.path.dirname(os.path.abspath(path)), device, kwargs)
        loaded.note = "; ".join(n for n in (f"the architecture from the config.json beside {os.path.basename(path)} "
                                            f"(check its weights with 'archscope weights {path}')", loaded.note) if n)
        return loaded
    if kwargs:
        raise UsageError(f"model options (--arg) do not apply to a {kind} file: it is built already")
    if kind == "onnx":
        from archscope.models.onnx_file import load_onnx

        return load_onnx(path, device)
    if kind == "pt2":
        return _load_exported(path)
    return _load_torchscript(path)


def _load_exported(path: str) -> Loaded:
    try:
        program = torch.export.load(path)
    except Exception as error:  # noqa: BLE001 - a file torch.export cannot read, in one line
        raise UsageError(f"{path} could not be read by torch.export.load: {type(error).__name__}: {error}") from None
    module = torch.export.unflatten(program)  # the original module tree, each submodule called as it was
    shapes = []
    for spec in program.graph_signature.input_specs:
        if spec.kind.name == "USER_INPUT":
            value = next((n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"
                          and n.name == spec.arg.name), None)
            if isinstance(value, torch.Tensor):
                shapes.append((tuple(int(d) for d in value.shape), value.dtype))
    from archscope.inputs import Inputs

    default = Inputs(shapes=[s for s, _ in shapes], dtypes=[d for _, d in shapes]) if shapes else None
    _name_classes(module, program)
    note = ("a torch.export program: the module tree torch.export.unflatten rebuilds from it, each module "
            "named by the class the exporter recorded; it runs the exported (ATen) ops")
    return Loaded(module.to("meta"), os.path.basename(path), default,
                  lambda device: torch.export.unflatten(torch.export.load(path)).to(device), note)


_RENAMED: Dict[tuple, type] = {}


def _name_classes(module: torch.nn.Module, program) -> None:
    """Unflattened submodules are all ``InterpreterModule``: give each the name of the class it was
    exported from (``nn_module_stack``), so its rows read ``Conv2d``, ``Bottleneck``."""
    classes: Dict[str, str] = {}
    for node in program.graph.nodes:
        for path, kind in (node.meta.get("nn_module_stack") or {}).values():
            name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
            classes.setdefault(path, name.rsplit(".", 1)[-1])
    for path, sub in module.named_modules():
        name = classes.get(path)
        if name and path and name.isidentifier():
            key = (type(sub), name)
            if key not in _RENAMED:
                _RENAMED[key] = type(name, (type(sub),), {})
            sub.__class__ = _RENAMED[key]


def _load_torchscript(path: str) -> Loaded:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # PyTorch's deprecation of TorchScript, not the user's
            module = torch.jit.load(path, map_location="cpu")
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"{path} could not be loaded as TorchScript: {type(error).__name__}: {error}") from None
    note = ("a TorchScript file: TorchScript is code, and loading it ran the code it holds (archscope loads one "
            "only when you name it)")
    return Loaded(module, os.path.basename(path), None, None, note)
