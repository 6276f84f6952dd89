"""Run a model once on a dummy input and record, per layer, what it did.

One real forward call of the whole model, with forward hooks on every module and
archscope's dispatch-level FLOP counter around it. The hooks keep a stack of the modules
running; the counter charges every op to the innermost one, under the name it was called
by (its *call path*). By default the model lives on the ``meta`` device: shapes, counts
and FLOPs need no weights, so even a 10-billion-parameter model traces in milliseconds.

Read top to bottom: ``trace`` (the entry point) → ``attempt`` (meta, then CPU if meta
cannot run it) → ``forward`` (one hooked call) → ``Recorder`` (the hooks).
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from archscope.errors import ModelFailure, UsageError, first_line, is_meta_limitation
from archscope.loader import load_model
from archscope.trace.counter import FlopCounter
from archscope.trace.inputs import InputSize, Inputs, resolve_inputs
from archscope.trace.records import FLOPS_CONVENTION, LayerRow, Totals, Trace, shape_of
from archscope.trace.rows import build_rows

__all__ = ["FLOPS_CONVENTION", "LayerRow", "Totals", "Trace", "trace", "attempt", "forward", "check_device"]


# --------------------------------------------------------------------------- entry point

def trace(
    model: Any,
    input_size: InputSize = None,
    depth: int = 1,
    device: str = "meta",
    batch: Optional[int] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    dtypes: Optional[List[Any]] = None,
    input_data: Any = None,
    train: bool = False,
    rf: bool = False,
    **kwargs,
) -> Trace:
    """Trace a zoo name, ``tv:NAME``, ``timm:NAME``, a ``file.py:factory`` / ``module:attr``
    spec, or an ``nn.Module``. A module passed in is left exactly as it was.

    >>> t = trace("vgg", ratio=8)
    >>> t.row("vgg_block_5").output_shape
    [1, 64, 7, 7]

    ``input_size`` is one shape or a list (one per positional input of ``forward``),
    ``dtypes`` one dtype per input, ``input_data`` real tensors (a tensor, tuple or dict),
    as in torchinfo. ``train=True`` also counts one training step: the forward in train
    mode and a real backward pass (of the sum of the outputs) on the same device, per row
    in ``train_flops``. ``rf=True`` adds each row's receptive field (``rf``: size, jump,
    start per spatial axis). Builder options go in ``**kwargs`` or, when one is named like an
    argument of ``trace`` itself, in ``model_kwargs``.
    """
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    if depth < 1:
        raise UsageError(f"bad --depth {depth}: it must be >= 1")
    device = check_device(device)
    loaded = load_model(model, device=device, **model_kwargs)
    inputs = resolve_inputs(input_size, loaded.module, loaded.default_input, batch, dtypes, input_data)
    run = attempt(loaded, inputs, device, FlopCounter(), train=train, rf=rf)
    if run.error is not None:
        raise failure(run, inputs, loaded)
    module, counter = run.module, run.counter

    rows = build_rows(module, run.recorder, counter.by_key, depth, root_label=type(module).__name__,
                      backward_by_path=counter.backward_by_key)
    params, trainable = _unique_params(module)
    return Trace(
        model=loaded.label,
        input_shape=inputs.describe(),
        input_dtypes=inputs.dtype_names(),
        output_shape=shape_of(run.output),
        device=run.device,
        depth=depth,
        rows=rows,
        totals=Totals(params, trainable, counter.total,
                      None if counter.backward_total is None else counter.total + counter.backward_total),
        options=dict(model_kwargs),
        note="; ".join(n for n in (loaded.note, run.note) if n) or None,
        uncounted_ops=counter.uncounted_ops(),
    )


def check_device(device: str) -> str:
    device = str(device).lower()
    if device not in ("meta", "cpu") and not device.startswith("cuda"):
        raise UsageError(f"unknown --device '{device}': use meta, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available: use --device meta or cpu")
    return device


def failure(run: "Attempt", inputs: Inputs, loaded) -> ModelFailure:
    from archscope.trace.diagnose import diagnose

    diagnosis = diagnose(run.module, inputs.shape, run.error, loaded)
    message = diagnosis.one_line()
    if run.note:
        message += f" ({run.note})"
    return ModelFailure(message, diagnosis)


def _unique_params(model: nn.Module) -> Tuple[int, int]:
    params = list(model.parameters())  # parameters() already yields a shared tensor once
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


# --------------------------------------------------------------------------- one attempt, with fallback

@dataclass
class Attempt:
    """One forward of a loaded model: its output and hooks' record, or the error it raised."""

    module: nn.Module
    device: str
    recorder: Optional["Recorder"]
    output: Any = None
    error: Optional[BaseException] = None
    note: Optional[str] = None
    counter: Optional[FlopCounter] = None


def attempt(loaded, inputs: Inputs, device: str, counter: Optional[FlopCounter] = None, train: bool = False,
            rf: bool = False) -> Attempt:
    """Run once on ``device``; if the meta device itself is the obstacle (data-dependent
    code), run again on CPU with real weights, on a copy, and say so in ``note``.

    A user's own object is never run on a real device: a copy is (buffers a forward
    updates, hooks' side effects and modes stay as they were on the original)."""
    module = loaded.module
    values = "the input was real data (--input-data)" if inputs.real else \
        "the input was all zeros, so data-dependent branches followed zeros (give real inputs with --input-data)"
    if device == "meta" and loaded.rebuild is None and _has_lazy_parameters(module):
        # Uninitialised lazy parameters have no shape to stand in for on meta: a copy runs on CPU.
        note = f"the model has uninitialised lazy parameters; a copy of it was traced on CPU; {values}"
        return _run(lambda: _copy(module, "cpu"), inputs, "cpu", counter, note, train, rf)
    if device != "meta":
        note = None if loaded.rebuild is not None else f"a copy of the model ran on {device}"
        note = f"{note}; {values}" if note else values
        return _run(lambda: module if loaded.rebuild is not None else _copy(module, device), inputs, device, counter,
                    note, train, rf)

    run = _run(lambda: module, inputs, "meta", counter, None, train, rf)
    if run.error is None or not is_meta_limitation(run.error):
        return run
    why = first_line(run.error)
    if loaded.rebuild is not None:
        note = f"this model cannot run on the meta device ({why}); rebuilt and traced on CPU with random weights; {values}"
        return _run(lambda: loaded.rebuild("cpu"), inputs, "cpu", FlopCounter() if counter else None, note, train, rf)
    note = f"this model cannot run on the meta device ({why}); a copy was traced on CPU with its weights; {values}"
    return _run(lambda: _copy(module, "cpu"), inputs, "cpu", FlopCounter() if counter else None, note, train, rf)


def _run(get_module, inputs: Inputs, device: str, counter, note, train: bool = False, rf: bool = False) -> Attempt:
    try:
        module = get_module()
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - building or copying the model failed
        raise UsageError(f"could not prepare the model for {device}: {type(error).__name__}: {first_line(error)}") from error
    try:
        args, kwargs = inputs.make(device)
    except RuntimeError as error:  # e.g. an input too large to allocate
        raise UsageError(f"could not allocate the input on {device}: {first_line(error)}") from error
    try:
        out, rec = forward(module, args, kwargs, device, counter, train=train, rf=rf)
        return Attempt(module, device, rec, out, note=note, counter=counter)
    except Exception as error:  # noqa: BLE001 - reported to the caller
        return Attempt(module, device, getattr(error, "__archscope_recorder__", None), error=error,
                       note=note, counter=counter)


def _copy(module: nn.Module, device: str) -> nn.Module:
    try:
        return copy.deepcopy(module).to(device)
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"the model could not be copied to run it on {device} "
                         f"({type(error).__name__}: {first_line(error)}): trace it on --device meta") from error


def _has_lazy_parameters(model: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())


# --------------------------------------------------------------------------- one hooked forward

def forward(model: nn.Module, args: tuple, kwargs: dict, device: str, counter: Optional[FlopCounter] = None,
            train: bool = False, rf: bool = False):
    """One forward call with hooks, in eval mode and without autograd; with ``train``, in
    train mode followed by a backward pass of the sum of the outputs (the counter keeps
    its FLOPs apart). On ``meta``, a model with real tensors (or any model, with ``train``:
    its parameters must not collect gradients) runs through ``functional_call`` with meta
    stand-ins, so nothing of it changes. Returns ``(output, recorder)``; on failure the
    recorder rides on the exception as ``__archscope_recorder__`` (the diagnosis reads its stack)."""
    recorder = Recorder(model, counter, tag_autograd=train, fields=rf)
    mode = running_mode(model, train)
    grad = torch.enable_grad() if train else torch.no_grad()
    fields = contextlib.nullcontext()
    if rf:
        from archscope.trace.receptive import ReceptiveFields, mark_input

        for x in list(args) + list(kwargs.values()):
            mark_input(x)
        fields = ReceptiveFields()
    try:
        with mode, grad, _quiet(), (counter or contextlib.nullcontext()), fields:
            if device == "meta" and (train or any(t.device.type != "meta" for _, t in _named_tensors(model))):
                stand_ins = {n: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
                             for n, t in _named_tensors(model)}
                out = torch.func.functional_call(model, stand_ins, args, kwargs, tie_weights=True, strict=False)
            else:
                out = model(*args, **kwargs)
            if train:
                _backward(out, recorder, counter)
        return out, recorder
    except BaseException as error:
        error.__archscope_recorder__ = recorder
        raise
    finally:
        recorder.remove()


def _backward(out, recorder: "Recorder", counter: Optional[FlopCounter]) -> None:
    """Backward of the sum of every output that needs a gradient; each autograd node's ops
    are charged to the module call that created it (the recorder tagged them)."""
    leaves = [t for t in torch.utils._pytree.tree_leaves(out)
              if isinstance(t, torch.Tensor) and t.requires_grad and t.is_floating_point()]
    if not leaves:
        raise UsageError("a training step needs an output that depends on trainable parameters; this model has none")
    loss = sum(t.sum() for t in leaves)  # sums are reductions: no FLOPs by the convention
    recorder.hook_backward(loss)
    if counter is not None:
        counter.attribute_to = None
        counter.begin_backward()
    loss.backward()
    if counter is not None:
        counter.end_backward()


@contextlib.contextmanager
def running_mode(model: nn.Module, training: bool):
    """Run in train mode (dropout, BatchNorm batch statistics, auxiliary heads) or eval mode,
    then restore every module's own training flag exactly."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for m, flag in modes:
            m.training = flag


@contextlib.contextmanager
def _quiet():
    # PyTorch's UserWarnings about the user's model (a zero-size conv, a deprecated
    # argument) would interleave with the table; the failure, if any, is what we report.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _named_tensors(model: nn.Module):
    # Tied tensors appear once; functional_call(tie_weights=True) maps them to every use.
    yield from model.named_parameters()
    yield from model.named_buffers()


class Recorder:
    """Forward hooks on every module: per call path, the number of calls and the last
    input/output shapes; the stack of modules entered but not left (so a failure can be
    pinned to a layer); and the counter told which path the ops now belong to.

    A module's call path is its caller's path plus the name the caller knows it by, so a
    block shared by two stages is ``stage1.block`` when stage1 calls it and
    ``stage2.block`` when stage2 does; a module called by something that does not hold it
    keeps its first structural name."""

    def __init__(self, model: nn.Module, counter: Optional[FlopCounter] = None, tag_autograd: bool = False,
                 fields: bool = False):
        self.root = model
        self.fields: Optional[Dict[str, Any]] = {} if fields else None  # path → receptive field of its output
        self.counter = counter
        self.tag_autograd = tag_autograd
        self.node_path: Dict[Any, str] = {}  # autograd node → the call path whose forward created it
        self.names = {id(m): n for n, m in model.named_modules()}
        self.calls: Dict[str, int] = {}
        self.inputs: Dict[str, Any] = {}
        self.outputs: Dict[str, Any] = {}
        self.first_seen: Dict[str, int] = {}  # path → index of its first call
        self.last_seen: Dict[str, int] = {}
        self.stack: List[Tuple[str, nn.Module, Any]] = []
        self._relative: Dict[Tuple[int, int], Optional[str]] = {}
        self._finished = 0  # calls completed so far, to order them
        self._handles = []
        for module in dict.fromkeys(m for _, m in model.named_modules()):
            self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._post))

    def _path(self, module: nn.Module) -> str:
        if not self.stack:
            return "" if module is self.root else self.names.get(id(module), "")
        parent_path, parent, _ = self.stack[-1]
        key = (id(parent), id(module))
        if key not in self._relative:
            self._relative[key] = _relative_name(parent, module)
        rel = self._relative[key]
        if rel is None:
            return self.names.get(id(module), "")
        return f"{parent_path}.{rel}" if parent_path else rel

    def _pre(self, module, args, kwargs):
        path = self._path(module)
        self.stack.append((path, module, (args, kwargs)))
        self.inputs[path] = shape_of(args) if args or not kwargs else shape_of(kwargs)
        if self.counter is not None:
            self.counter.attribute_to = path

    def _post(self, module, args, output):
        path, _, inputs = self.stack.pop()
        if self.tag_autograd:
            self._tag(path, output, inputs)
        self._finished += 1
        self.first_seen.setdefault(path, self._finished)
        self.last_seen[path] = self._finished
        self.calls[path] = self.calls.get(path, 0) + 1
        self.outputs[path] = shape_of(output)
        if self.fields is not None:
            from archscope.trace.receptive import field_of
            self.fields[path] = field_of(output)
        if self.counter is not None:
            self.counter.attribute_to = self.stack[-1][0] if self.stack else None

    def _tag(self, path: str, output, inputs) -> None:
        """Give this call's path to the autograd nodes its forward created: walk back from the
        outputs, stopping at the inputs' nodes and at nodes an inner call already claimed."""
        def nodes(obj):
            return [t.grad_fn for t in torch.utils._pytree.tree_leaves(obj)
                    if isinstance(t, torch.Tensor) and t.grad_fn is not None]

        stop = set(nodes(inputs))
        pending = nodes(output)
        while pending:
            node = pending.pop()
            if node is None or node in self.node_path or node in stop:
                continue
            self.node_path[node] = path
            pending.extend(n for n, _ in node.next_functions)

    def hook_backward(self, loss: torch.Tensor) -> None:
        """Before each autograd node runs, tell the counter whose it is (None: outside any module)."""
        seen, pending = set(), [loss.grad_fn]
        while pending:
            node = pending.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            path = self.node_path.get(node)
            node.register_prehook(lambda grads, path=path: self._charge(path))
            pending.extend(n for n, _ in node.next_functions)

    def _charge(self, path):
        if self.counter is not None:
            self.counter.attribute_to = path

    def first_and_last_below(self, path: str) -> Tuple[Optional[str], Optional[str]]:
        """The called paths under ``path`` that ran first and last (for a container's shapes)."""
        prefix = f"{path}." if path else ""
        below = [p for p in self.calls if p.startswith(prefix) and p != path]
        children = [p for p in below if "." not in p[len(prefix):]]
        below = children or below
        if not below:
            return None, None
        return min(below, key=self.first_seen.__getitem__), max(below, key=self.last_seen.__getitem__)

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _relative_name(parent: nn.Module, child: nn.Module) -> Optional[str]:
    for name, module in parent._modules.items():  # the common case: a direct child
        if module is child:
            return name
    for name, module in parent.named_modules():
        if module is child and name:
            return name
    return None
