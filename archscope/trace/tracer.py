"""Run a model once on a dummy input and record, per layer, what it did.

One real forward call of the whole model, with forward hooks on every module:
rows are read from the hooks, FLOPs from PyTorch's ``FlopCounterMode`` (dispatch
level, so functional ops inside ``forward`` are seen). By default the model lives on
the ``meta`` device: shapes, counts and FLOPs need no weights, so even a 10-billion-
parameter model traces in milliseconds and a few hundred MB.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from archscope.errors import ModelFailure, UsageError, first_line
from archscope.loader import load_model
from archscope.trace.inputs import InputSize, Shape, resolve_shape

FLOPS_CONVENTION = (
    "FLOPs = 2 x MACs of conv/linear/matmul, counted by torch.utils.flop_counter at dispatch level; "
    "activations, pooling, normalisation and elementwise ops are not counted"
)


# --------------------------------------------------------------------------- results

@dataclass
class LayerRow:
    """One row of a trace: a module at the requested depth, or the work a parent did itself."""

    name: str
    type: str
    depth: int
    output_shape: Any  # [1, 96, 54, 54]; a list of shapes for several outputs; None if it never ran
    input_shape: Any
    params: int
    trainable_params: int
    flops: int
    calls: int
    kind: str = "module"  # "module" | "self" (a parent's own forward/parameters) | "other"

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["macs"] = self.macs
        return d


@dataclass
class Totals:
    params: int
    trainable_params: int
    flops: int

    @property
    def macs(self) -> int:
        return self.flops // 2

    def to_dict(self) -> Dict[str, int]:
        return {"params": self.params, "trainable_params": self.trainable_params,
                "flops": self.flops, "macs": self.macs}


@dataclass
class Trace:
    """What one forward pass did, layer by layer. Renders itself in Jupyter."""

    model: str
    input_shape: List[int]
    output_shape: Any
    device: str
    depth: int
    rows: List[LayerRow]
    totals: Totals
    options: Dict[str, Any] = field(default_factory=dict)
    note: Optional[str] = None  # e.g. "fell back to CPU"
    flops_convention: str = FLOPS_CONVENTION

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "options": self.options,
            "input_shape": self.input_shape,
            "output_shape": self.output_shape,
            "device": self.device,
            "depth": self.depth,
            "flops_convention": self.flops_convention,
            "note": self.note,
            "layers": [r.to_dict() for r in self.rows],
            "totals": self.totals.to_dict(),
        }

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def __rich__(self):
        from archscope.report.tables import summary_table
        return summary_table(self)

    def _repr_html_(self) -> str:
        from archscope.report.tables import to_html
        return to_html(self)


# --------------------------------------------------------------------------- recording

def shape_of(obj: Any) -> Any:
    """Shapes of the tensors in a module's input or output (nested lists for several)."""
    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        shapes = [shape_of(o) for o in obj]
        shapes = [s for s in shapes if s is not None]
        if not shapes:
            return None
        return shapes[0] if len(shapes) == 1 else shapes
    return None


class Recorder:
    """Forward hooks on every module: call counts, shapes, FLOPs spent inside, and the
    stack of modules entered but not left (so a failure can be pinned to a layer)."""

    def __init__(self, model: nn.Module, flop_counter=None):
        self.flop_counter = flop_counter
        self.names = {id(m): n for n, m in model.named_modules()}
        self.calls: Dict[str, int] = {}
        self.flops: Dict[str, int] = {}
        self.inputs: Dict[str, Any] = {}
        self.outputs: Dict[str, Any] = {}
        self.stack: List[Tuple[str, nn.Module, Any]] = []
        self._entered_at: List[int] = []
        self._handles = []
        for module in dict.fromkeys(m for _, m in model.named_modules()):
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))

    def _total_flops(self) -> int:
        return self.flop_counter.get_total_flops() if self.flop_counter is not None else 0

    def _pre(self, module, args):
        name = self.names[id(module)]
        self.stack.append((name, module, args))
        self._entered_at.append(self._total_flops())
        self.inputs[name] = shape_of(args)

    def _post(self, module, args, output):
        name, _, _ = self.stack.pop()
        start = self._entered_at.pop()
        self.calls[name] = self.calls.get(name, 0) + 1
        self.flops[name] = self.flops.get(name, 0) + self._total_flops() - start
        self.outputs[name] = shape_of(output)

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles.clear()


def is_meta_limitation(error: BaseException) -> bool:
    """True when an error comes from the meta device itself (data-dependent code),
    not from the model being wrong for the input."""
    if isinstance(error, NotImplementedError):
        return True
    text = str(error).lower()
    return "meta" in text or "data-dependent" in text or "data dependent" in text


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run in eval mode (no dropout, BatchNorm without batch statistics), then restore
    every module's own training flag exactly."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def forward(model: nn.Module, x: torch.Tensor, device: str, flop_counter=None) -> Tuple[Any, Recorder]:
    """One forward call with hooks. On ``meta`` a user's real model runs through
    ``functional_call`` with meta stand-ins for its tensors, so nothing of it changes."""
    recorder = Recorder(model, flop_counter)
    try:
        with eval_mode(model), torch.no_grad(), (flop_counter or contextlib.nullcontext()):
            if device == "meta" and any(t.device.type != "meta" for t in _tensors(model)):
                stand_ins = {n: torch.empty_like(t, device="meta") for n, t in _named_tensors(model)}
                out = torch.func.functional_call(model, stand_ins, (x,), tie_weights=True, strict=False)
            else:
                out = model(x)
        return out, recorder
    except BaseException as error:
        error.__archscope_recorder__ = recorder  # the diagnosis reads the stack from it
        raise
    finally:
        recorder.remove()


def _named_tensors(model: nn.Module):
    # Tied tensors appear once; functional_call(tie_weights=True) maps them to every use.
    yield from model.named_parameters()
    yield from model.named_buffers()


def _tensors(model: nn.Module):
    return [t for _, t in _named_tensors(model)]


# --------------------------------------------------------------------------- rows

def _depth(name: str) -> int:
    return 0 if name == "" else name.count(".") + 1


def _children(model: nn.Module) -> Dict[str, List[str]]:
    kids: Dict[str, List[str]] = {}
    for name, module in model.named_modules():
        kids[name] = [f"{name}.{c}" if name else c for c, _ in module.named_children()]
    return kids


def build_rows(model: nn.Module, rec: Recorder, depth: int, total_flops: int, root_label: str) -> List[LayerRow]:
    """Rows that partition the model at ``depth``: params and FLOPs add up to the totals."""
    modules = dict(model.named_modules())
    kids = _children(model)
    seen_params: set = set()

    def count(params) -> Tuple[int, int]:
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
        module = modules.get(name)
        if module is None:
            return  # a module registered twice: it is reported where it first appears
        is_row = _depth(name) == depth or (not kids[name] and (name != "" or not rows))
        if is_row:
            params, trainable = count(module.parameters())
            rows.append(LayerRow(
                name=name or root_label, type=type(module).__name__, depth=_depth(name),
                output_shape=rec.outputs.get(name), input_shape=rec.inputs.get(name),
                params=params, trainable_params=trainable, flops=rec.flops.get(name, 0),
                calls=rec.calls.get(name, 0),
            ))
            return
        for child in kids[name]:
            visit(child)
        # What this parent did outside its children: its own forward's ops, its own parameters.
        own_flops = rec.flops.get(name, 0) - sum(rec.flops.get(c, 0) for c in kids[name])
        params, trainable = count(module.parameters(recurse=False))
        if own_flops or params:
            rows.append(LayerRow(
                name=f"{name or root_label} (self)", type=type(module).__name__, depth=_depth(name),
                output_shape=rec.outputs.get(name), input_shape=rec.inputs.get(name),
                params=params, trainable_params=trainable, flops=own_flops,
                calls=rec.calls.get(name, 0), kind="self",
            ))

    visit("")
    rest = total_flops - sum(r.flops for r in rows)
    if rest:
        rows.append(LayerRow("(outside any module)", "-", 0, None, None, 0, 0, rest, 0, kind="other"))
    return rows


# --------------------------------------------------------------------------- entry point

def trace(
    model: Any,
    input_size: InputSize = None,
    depth: int = 1,
    device: str = "meta",
    batch: Optional[int] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    **kwargs,
) -> Trace:
    """Trace a zoo model by name, a ``file.py:factory`` / ``module:attr`` spec, or an
    ``nn.Module``. A module passed in is left exactly as it was.

    >>> t = trace("vgg", ratio=8)
    >>> t.row("vgg_block_5").output_shape
    [1, 64, 7, 7]

    Builder options go in ``**kwargs`` or, when one is named like an argument of
    ``trace`` itself, in ``model_kwargs``.
    """
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    from torch.utils.flop_counter import FlopCounterMode

    if depth < 1:
        raise UsageError(f"bad --depth {depth}: it must be >= 1")
    device = check_device(device)
    loaded = load_model(model, device=device, **model_kwargs)
    shape = resolve_shape(input_size, loaded.module, loaded.input_size, batch)
    run = attempt(loaded, shape, device, FlopCounterMode(display=False))
    if run.error is not None:
        raise failure(run, shape, loaded)
    module, rec, counter = run.module, run.recorder, run.flop_counter

    total_flops = counter.get_total_flops()
    rows = build_rows(module, rec, depth, total_flops, root_label=type(module).__name__)
    params, trainable = _unique_params(module)
    return Trace(
        model=loaded.label,
        input_shape=list(shape),
        output_shape=shape_of(run.output),
        device=run.device,
        depth=depth,
        rows=rows,
        totals=Totals(params, trainable, total_flops),
        options=dict(model_kwargs),
        note=run.note,
    )


@dataclass
class Attempt:
    """One forward of a loaded model: its output and hooks' record, or the error it raised."""

    module: nn.Module
    device: str
    recorder: Optional[Recorder]
    output: Any = None
    error: Optional[BaseException] = None
    note: Optional[str] = None
    flop_counter: Any = None


def attempt(loaded, shape: Shape, device: str, flop_counter=None) -> Attempt:
    """Run once on ``device``; if the meta device itself is the obstacle (data-dependent
    code), run again on CPU with real weights and say so in ``note``."""
    module = loaded.module
    if device == "meta" and loaded.rebuild is None and _has_lazy_parameters(module):
        # Uninitialised lazy parameters have no shape to stand in for on meta, and running the
        # user's own object would materialise them: run a copy on CPU instead.
        module = copy.deepcopy(module)
        out, rec = forward(module, torch.zeros(shape), "cpu", flop_counter)
        note = "the model has uninitialised lazy parameters; a copy of it was traced on CPU"
        return Attempt(module, "cpu", rec, out, note=note, flop_counter=flop_counter)
    try:
        out, rec = forward(module, torch.zeros(shape, device=device), device, flop_counter)
        return Attempt(module, device, rec, out, flop_counter=flop_counter)
    except Exception as error:  # noqa: BLE001 - reported to the caller
        if not (device == "meta" and is_meta_limitation(error)):
            return Attempt(module, device, error.__archscope_recorder__, error=error, flop_counter=flop_counter)
        note = f"this model cannot run on the meta device ({first_line(error)}); traced on CPU with real weights"
    if loaded.rebuild is not None:
        module = loaded.rebuild("cpu")
    if flop_counter is not None:
        flop_counter = type(flop_counter)(display=False)
    try:
        out, rec = forward(module, torch.zeros(shape, device="cpu"), "cpu", flop_counter)
        return Attempt(module, "cpu", rec, out, note=note, flop_counter=flop_counter)
    except Exception as error:  # noqa: BLE001
        return Attempt(module, "cpu", error.__archscope_recorder__, error=error, note=note, flop_counter=flop_counter)


def _has_lazy_parameters(model: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())


def failure(run: Attempt, shape: Shape, loaded) -> ModelFailure:
    from archscope.trace.diagnose import diagnose

    diagnosis = diagnose(run.module, shape, run.error, loaded)
    return ModelFailure(diagnosis.one_line(), diagnosis)


def _unique_params(model: nn.Module) -> Tuple[int, int]:
    params = list(model.parameters())  # parameters() already yields a shared tensor once
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def check_device(device: str) -> str:
    device = str(device).lower()
    if device not in ("meta", "cpu") and not device.startswith("cuda"):
        raise UsageError(f"unknown --device '{device}': use meta, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available: use --device meta or cpu")
    return device
