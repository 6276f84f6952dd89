"""``weights``: what a weights file holds, read without loading it, and whether it fits its model.

A ``.safetensors`` file is read by its header alone (names, dtypes, shapes, offsets); a
``state_dict`` saved by ``torch.save`` is opened with ``weights_only=True`` and ``mmap=True`` (no
pickle runs code, no tensor is read); a sharded checkpoint's ``*.index.json`` reads each shard so.
The tensors are grouped by module prefix, with their share of the parameters. Tensors stored once
under two names (a ``state_dict`` of a model with tied embeddings) are found by their storage.

With the ``config.json`` beside the file, the model it builds (on meta) is checked against the
file as ``load_state_dict`` would: missing, unexpected and mismatched names, before anyone loads
the weights; a name the file lacks because the model ties it to one it has (GPT-2's ``lm_head``
to its token embedding) is tied, not missing.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import torch

from archscope.analysis.records import Result
from archscope.errors import UsageError
from archscope.models.files import WEIGHTS, file_kind

SAFETENSORS_DTYPES = {"F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
                      "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
                      "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
                      "F8_E4M3": (getattr(torch, "float8_e4m3fn", None), 1), "F8_E5M2": (getattr(torch, "float8_e5m2", None), 1)}


@dataclass
class Tensor:
    name: str
    shape: List[int]
    dtype: str
    bytes: int
    file: str
    key: Any = field(default=None, repr=False)  # a state_dict entry's storage: what two names of one tensor share

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Group:
    prefix: str
    tensors: int
    params: int
    bytes: int
    share: float


@dataclass
class Match:
    """The file against the model its config builds, as ``load_state_dict(strict=True)`` sees it."""

    model: str
    missing: List[str]
    unexpected: List[str]
    mismatched: List[Dict[str, Any]]  # name, file shape, model shape
    tied: List[List[str]]  # [name the model ties, the stored name it shares]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


@dataclass(repr=False)
class WeightsReport(Result):
    path: str
    kind: str
    tensors: List[Tensor]
    groups: List[Group]
    depth: int
    duplicates: List[List[str]]  # names stored once (or with equal bytes) under several names
    params: int  # elements of the stored tensors, each once, as transformers' num_parameters() counts them
    bytes: int
    match: Optional[Match] = None

    def summary(self) -> str:
        return f"{self.path}: {len(self.tensors)} tensors, {self.params:,} parameters"

    def to_dict(self) -> Dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "params": self.params, "bytes": self.bytes, "depth": self.depth,
                "tensors": [{k: v for k, v in asdict(t).items() if k != "key"} for t in self.tensors],
                "groups": [asdict(g) for g in self.groups], "duplicates": self.duplicates,
                "match": None if self.match is None else {**asdict(self.match), "ok": self.match.ok}}


def weights(path: str, depth: int = 2, config: bool = True) -> WeightsReport:
    """The tensors of a weights file, grouped by the first ``depth`` parts of their names; with
    ``config`` and a ``config.json`` beside the file, checked against the model it builds."""
    if not os.path.isfile(path):
        raise UsageError(f"file not found: {path}")
    if depth < 1:
        raise UsageError(f"bad --depth {depth}: it must be >= 1")
    kind = file_kind(path)
    if kind not in WEIGHTS:
        raise UsageError(f"{path} is {'a ' + kind + ' file' if kind else 'not a weights file'}: 'weights' reads "
                         "safetensors, a state_dict .pt/.bin or a sharded *.index.json (for a model file, use "
                         "shapes/params/graph)")
    tensors = _read(path, kind)
    duplicates = _duplicates(tensors)
    counted = _once(tensors, duplicates)
    params = sum(t.numel for t in counted)
    nbytes = sum(t.bytes for t in counted)
    groups: Dict[str, Group] = {}
    for t in counted:
        prefix = ".".join(t.name.split(".")[:depth]) if t.name.count(".") >= depth else t.name.rpartition(".")[0] or t.name
        g = groups.setdefault(prefix, Group(prefix, 0, 0, 0, 0.0))
        g.tensors += 1
        g.params += t.numel
        g.bytes += t.bytes
    for g in groups.values():
        g.share = g.params / params if params else 0.0
    report = WeightsReport(path, kind, tensors, list(groups.values()), depth, duplicates, params, nbytes)
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    if config and os.path.isfile(beside):
        report.match = _match(tensors, os.path.dirname(path) or ".")
    return report


def _read(path: str, kind: str) -> List[Tensor]:
    if kind == "safetensors":
        return _safetensors(path)
    if kind == "state_dict":
        return _state_dict(path)
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    folder = os.path.dirname(os.path.abspath(path))
    tensors: List[Tensor] = []
    for shard in dict.fromkeys(index["weight_map"].values()):
        shard_path = os.path.join(folder, shard)
        if not os.path.isfile(shard_path):
            raise UsageError(f"{path} names the shard {shard}, which is not beside it")
        tensors += _read(shard_path, file_kind(shard_path) or "state_dict")
    named = set(index["weight_map"])
    stored = {t.name for t in tensors}
    if named - stored:
        missing = sorted(named - stored)
        raise UsageError(f"{path} maps {len(missing)} tensor(s) to shards that do not hold them: {', '.join(missing[:5])}")
    return tensors


def _safetensors(path: str) -> List[Tensor]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, size = SAFETENSORS_DTYPES.get(entry["dtype"], (None, 0))
        begin, end = entry["data_offsets"]
        tensors.append(Tensor(name, list(entry["shape"]), str(dtype).removeprefix("torch.") if dtype else entry["dtype"],
                              end - begin, os.path.basename(path)))
    return tensors


def _state_dict(path: str) -> List[Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - a legacy (not zipped) file cannot be memory-mapped
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001
            raise UsageError(f"{path} could not be read as weights (weights_only=True: no code in it runs): "
                             f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint holding the model's state_dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path} is not a state_dict (a dict of tensors)")
    tensors = []
    for name, t in state.items():
        storage = t.untyped_storage()
        tensors.append(Tensor(name, list(t.shape), str(t.dtype).removeprefix("torch."), t.numel() * t.element_size(),
                              os.path.basename(path), key=(storage.data_ptr(), t.storage_offset(), tuple(t.shape))))
    return tensors


def _duplicates(tensors: List[Tensor]) -> List[List[str]]:
    """Names that are one tensor: a state_dict's entries with the same storage, offset and shape (a
    model with tied embeddings saved by torch.save). A safetensors file cannot hold one tensor twice
    (its writers refuse shared tensors): a tie there shows only against the model (``Match.tied``).
    Equal bytes are not a tie: a fresh model's biases are all zeros."""
    by_storage: Dict[Any, List[str]] = {}
    for t in tensors:
        if t.key is not None:
            by_storage.setdefault(t.key, []).append(t.name)
    return [names for names in by_storage.values() if len(names) > 1]


def _once(tensors: List[Tensor], duplicates: List[List[str]]) -> List[Tensor]:
    again = {name for names in duplicates for name in names[1:]}
    return [t for t in tensors if t.name not in again]


def _match(tensors: List[Tensor], folder: str) -> Match:
    from archscope.models import load_model

    loaded = load_model(f"hf:{folder}")
    module = loaded.module
    model: Dict[str, List[int]] = {}
    same: Dict[int, List[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        model[name] = list(p.shape)
        same.setdefault(id(p), []).append(name)
    persistent = {name for name, _ in module.state_dict(keep_vars=True).items()}
    for name, b in module.named_buffers(remove_duplicate=False):
        if name in persistent:
            model[name] = list(b.shape)
    stored = {t.name: t for t in tensors}
    prefix = getattr(module, "base_model_prefix", "")
    if prefix and not set(stored) & set(model):  # a base model's weights for a model with a head, or the other way
        if all(n.startswith(prefix + ".") for n in stored):
            stored = {n[len(prefix) + 1:]: t for n, t in stored.items()}
        else:
            stored = {f"{prefix}.{n}": t for n, t in stored.items()}
    tied, missing = [], []
    for name in model:
        if name in stored:
            continue
        partner = next((n for n in same.get(id(module.get_parameter(name)) if _is_param(module, name) else -1, [])
                        if n != name and n in stored), None)
        if partner is not None:
            tied.append([name, partner])
        else:
            missing.append(name)
    unexpected = [n for n in stored if n not in model]
    mismatched = [{"name": n, "file": stored[n].shape, "model": model[n]} for n in stored
                  if n in model and list(stored[n].shape) != model[n]]
    return Match(loaded.label, missing, unexpected, mismatched, tied)


def _is_param(module, name: str) -> bool:
    try:
        module.get_parameter(name)
        return True
    except AttributeError:
        return False
