"""Rows that partition a model at a depth: params and FLOPs add up exactly to the totals.

The tracer gives FLOPs per *call path* (the structural name under which a module was called,
e.g. ``stage2.block`` for a block shared with ``stage1``): each op is charged to the innermost
module running. A row's FLOPs are the sum over its own path and every path below it, so rows
can never be negative and every depth sums to the total. Parameters are structural: a tensor
reachable from several rows is counted once, in the first row that reaches it.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from archscope.analysis.records import LayerRow
from archscope.models import tree

OUTSIDE = "(outside any module)"


def _depth(name: str) -> int:
    return 0 if name == "" else name.count(".") + 1


def _inclusive(by_path: Dict) -> Dict[str, int]:
    """A path's FLOPs plus those of every path below it."""
    inclusive: Dict[str, int] = {}
    for path, flops in by_path.items():
        if path is None:
            continue
        while True:  # the path, then each prefix up to the root ("")
            inclusive[path] = inclusive.get(path, 0) + flops
            if not path:
                break
            path = path.rpartition(".")[0]
    return inclusive


def _call_shapes(rec, path: str):
    """Every call's output shape, when they differ (a module called on tensors of different sizes)."""
    shapes = rec.call_outputs.get(path) or []
    return list(shapes) if any(s != shapes[0] for s in shapes[1:]) else None


def build_rows(model: nn.Module, rec, flops_by_path: Dict, depth: int, root_label: str,
               backward_by_path: Optional[Dict] = None, also: Sequence[Dict] = ()) -> List[LayerRow]:
    """``backward_by_path`` (a training-step trace) adds ``train_flops`` = forward + backward to each row.
    ``also``: other per-path measures (bytes, seconds); a parent's ``(self)`` row and the outside row
    exist when any measure is non-zero there, so ``per_row`` of each partitions its total too."""

    def elsewhere(path) -> bool:
        return any(measure.get(path) for measure in also)

    # Every structural path down to the depth, shared modules included under each of their names.
    modules: Dict[str, nn.Module] = dict(tree.named_modules(model, remove_duplicate=False, depth=depth))
    # Packed weights are looked for row by row only where some module may hold them (one test per module).
    packs = any(_may_pack(m) for m in tree.modules(model))
    kids: Dict[str, List[str]] = {name: [] for name in modules}
    for name in modules:
        if name:
            parent = name.rpartition(".")[0]
            kids[parent].append(name)

    inclusive = _inclusive(flops_by_path)
    backward = None if backward_by_path is None else _inclusive(backward_by_path)

    def field(path):
        if rec.fields is None:
            return None
        f = rec.fields.get(path)
        return f.to_dict() if f is not None else {}

    def train(name: str, own: bool = False) -> Optional[int]:
        if backward is None:
            return None
        if own:
            return flops_by_path.get(name, 0) + backward_by_path.get(name, 0)
        return inclusive.get(name, 0) + backward.get(name, 0)

    seen_params: set = set()

    alive: list = []  # unpacked weights are new objects: kept alive so that no id is reused

    def count(params) -> Tuple[int, int]:
        params = list(params)
        alive.extend(params)
        total = trainable = 0
        for p in params:
            if id(p) in seen_params:
                continue  # a shared parameter is counted once, where it first appears
            seen_params.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return total, trainable

    rows: List[LayerRow] = []

    def visit(name: str):
        module = modules[name]
        is_row = _depth(name) == depth or (not kids[name] and (name != "" or not rows))
        if is_row:
            params, trainable = count(list(tree.parameters(module)) + (packed_weights(module) if packs else []))
            calls = rec.calls.get(name, 0)
            kind, inp, out = "module", rec.inputs.get(name), rec.outputs.get(name)
            last = None
            if calls == 0:
                first, last = rec.first_and_last_below(name)
                if first is not None:  # a ModuleList/ModuleDict: its children were called
                    kind, inp, out = "container", rec.inputs.get(first), rec.outputs.get(last)
            rows.append(LayerRow(
                name=name or root_label, type=type(module).__name__, depth=_depth(name),
                output_shape=out, input_shape=inp, params=params, trainable_params=trainable,
                flops=inclusive.get(name, 0), calls=calls, kind=kind, train_flops=train(name),
                rf=field(last if kind == "container" else name), paths=((name, True),),
                call_shapes=_call_shapes(rec, name) if kind == "module" else None,
            ))
            return
        for child in kids[name]:
            visit(child)
        # What this parent did outside its children: its own forward's ops, its own parameters.
        own_flops = flops_by_path.get(name, 0)
        own_train = train(name, own=True)
        params, trainable = count(list(module.parameters(recurse=False)) +
                                  (packed_weights(module, recurse=False) if packs else []))
        if own_flops or params or own_train or elsewhere(name):
            rows.append(LayerRow(
                name=f"{name or root_label} (self)", type=type(module).__name__, depth=_depth(name),
                output_shape=rec.outputs.get(name), input_shape=rec.inputs.get(name),
                params=params, trainable_params=trainable, flops=own_flops,
                calls=rec.calls.get(name, 0), kind="self", train_flops=own_train, paths=((name, False),),
            ))

    visit("")
    outside = flops_by_path.get(None, 0)
    outside_train = None if backward is None else outside + backward_by_path.get(None, 0)
    if outside or outside_train or elsewhere(None):
        rows.append(LayerRow(OUTSIDE, "-", 0, None, None, 0, 0, outside, 0, kind="other", train_flops=outside_train,
                             paths=((None, False),)))
    return rows


def packed_weights(module: nn.Module, recurse: bool = True) -> List:
    """The weights ``parameters()`` does not list: a dynamically quantized layer keeps its int8
    weight and its bias packed (``quantize_dynamic``); they are the model's parameters all the same."""
    found = []
    for m in (tree.modules(module) if recurse else [module]):
        if not _may_pack(m):
            continue
        packed = getattr(m, "_packed_params", None)
        unpack = getattr(packed, "_weight_bias", None)
        if callable(unpack):
            try:
                weight, bias = unpack()
            except Exception:  # noqa: BLE001 - a packing this does not know: left out, as PyTorch does
                continue
            found += [t for t in (weight, bias) if isinstance(t, torch.Tensor)]
    return found


def _may_pack(m: nn.Module) -> bool:
    """Whether ``m._packed_params`` can exist, without the failing attribute lookup (nn.Module's
    ``__getattr__`` raising) that asking every module of a 1,000-module model would cost."""
    kind = type(m)
    known = _PACKING_CLASSES.get(kind)
    if known is None:
        known = _PACKING_CLASSES[kind] = hasattr(kind, "_packed_params")
    return known or "_packed_params" in m.__dict__ or "_packed_params" in m._modules


_PACKING_CLASSES: Dict[type, bool] = {}  # class → whether the class itself has a _packed_params


def per_row(rows: List[LayerRow], by_path: Dict) -> List[float]:
    """Any per-call-path measure (bytes, seconds...) summed per row, exactly as FLOPs are: so the
    rows partition its total too."""
    inclusive = _inclusive(by_path)
    return [sum(inclusive.get(path, 0) if below else by_path.get(path, 0) for path, below in r.paths) for r in rows]


def collapse_rows(rows: List[LayerRow], model: nn.Module) -> List[LayerRow]:
    """Consecutive identical sibling rows as one row ``first … last`` of type ``T ×N`` (the rule of
    ``graph``'s collapse: same parent, same class and configuration, same input and output shapes).
    Params and FLOPs add up, so the rows still partition the totals."""
    modules = dict(tree.named_modules(model))

    def key(r: LayerRow):
        if r.kind != "module" or r.name not in modules:
            return None
        return (r.name.rpartition(".")[0], r.type, repr(modules[r.name]), str(r.input_shape), str(r.output_shape),
                r.calls)

    out: List[LayerRow] = []
    run_key, count = None, 0
    for r in rows:
        k = key(r)
        if k is not None and k == run_key:
            head = out[-1]
            count += 1
            first = head.name.split(" … ")[0]
            head.name = f"{first} … {r.name.rpartition('.')[2]}"
            head.type = f"{r.type} ×{count}"
            head.params += r.params
            head.trainable_params += r.trainable_params
            head.flops += r.flops
            if head.train_flops is not None and r.train_flops is not None:
                head.train_flops += r.train_flops
            head.rf = r.rf
            head.paths = head.paths + r.paths
            continue
        out.append(LayerRow(**{f: getattr(r, f) for f in r.__dataclass_fields__}))
        run_key, count = k, 1
    return out
