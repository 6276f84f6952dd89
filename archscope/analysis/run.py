"""One hooked forward of a model, and the fallback policy around it.

``attempt`` runs once on the requested device; when the meta device itself is the obstacle
(data-dependent code) it runs again on CPU, on a copy or a rebuild, and says so. ``forward``
is that one call: hooks on, the FLOP counter (and receptive fields) around it, in eval or
train mode, and for a training step the backward pass too.
"""
from __future__ import annotations

import copy
import math
import operator
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

from archscope.analysis.counter import FlopCounter
from archscope.analysis.flow import Flow
from archscope.analysis.heavy_on_meta import may_run_heavy
from archscope.analysis.hooks import Recorder
from archscope.analysis.known_values import KnownValues
from archscope.analysis.memo import BlockMemo, without_kv_cache
from archscope.analysis.modes import mode_stack
from archscope.analysis.receptive import ReceptiveFields, mark_input
from archscope.errors import UsageError, first_line, is_meta_limitation
from archscope.inputs import Inputs, tensors_in
from archscope.models import tree
from archscope.models.build import fresh_lazy_tensors
from archscope.quiet import library_warnings_silenced


def check_device(device: str) -> str:
    device = str(device).lower()
    if device not in ("meta", "cpu") and not device.startswith("cuda"):
        raise UsageError(f"unknown --device '{device}': use meta, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available: use --device meta or cpu")
    return device


# --------------------------------------------------------------------------- one attempt, with fallback

@dataclass
class Attempt:
    """One forward of a loaded model: its output and hooks' record, or the error it raised."""

    module: nn.Module
    device: str
    recorder: Optional[Recorder]
    output: Any = None
    error: Optional[BaseException] = None
    note: Optional[str] = None
    counter: Optional[FlopCounter] = None


@dataclass(frozen=True)
class RunOptions:
    """How one analysis wants the model run: where, in which mode, what else to follow."""

    device: str = "meta"
    train: bool = False  # a training step: train mode, then the backward of the sum of the outputs
    rf: bool = False  # follow receptive fields
    flow_depth: Optional[int] = None  # record the dataflow between module calls at this depth
    dtype: Optional[torch.dtype] = None  # the model's floating tensors taken at this dtype
    prefer_cpu: bool = True  # a small model passed in with CPU weights runs there rather than on meta
    memo: bool = True  # on meta, repeated blocks are replayed from their first run (memo.py)
    rows_depth: Optional[int] = None  # only rows down to this depth are made from the run (None: any depth)


@dataclass
class _Plan:
    """One model and input going through the strategies: what each needs, and the meta failure, if any."""

    loaded: Any
    inputs: Inputs
    options: RunOptions
    counter: Optional[FlopCounter]
    meta_failure: Optional[Attempt] = None  # the plain meta run, when the meta device was the obstacle
    followed: bool = False  # that run already followed the values of the input archscope made
    _walk: Optional[tree.Walk] = None  # the model's walk, while no forward has run (one may add modules)
    _ran: bool = False

    @property
    def module(self) -> nn.Module:
        return self.loaded.module

    @property
    def values(self) -> str:
        return ("the input was real data (--input-data)" if self.inputs.real else
                "the input was all zeros, so data-dependent branches followed zeros (give real inputs with "
                "--input-data)")

    def fresh_counter(self) -> Optional[FlopCounter]:
        """A strategy after a failed one counts afresh (the failed run's partial counts are not kept)."""
        self.counter = self.counter.fresh() if self.counter is not None else None
        return self.counter

    def walk(self) -> Optional[tree.Walk]:
        """``tree.named_modules(self.module)``, made once for the checks and the first forward; None once a
        forward has run (a model may build a module in its forward)."""
        if self._ran:
            return None
        if self._walk is None:
            self._walk = tree.named_modules(self.module)
        return self._walk

    def run(self, get_module, device: str, note: Optional[str], **how) -> Attempt:
        walked = self.walk()
        try:
            return _run(get_module, self.inputs, device, self.counter, note, self.options,
                        walks=(self.module, walked), **how)
        finally:
            self._ran = True


# Each strategy returns the Attempt to keep, or None to hand the model to the next. In this order:
def _as_scripted(plan: _Plan) -> Optional[Attempt]:
    """TorchScript runs where its weights are; the FLOP counter sees its ops, no hook fires inside it."""
    if not isinstance(plan.module, torch.jit.ScriptModule):
        return None
    module, options = plan.module, plan.options
    if options.train:
        raise UsageError("a TorchScript module's training step would write gradients into it: trace it without "
                         "--train, or pass the Python model")
    where = next((t.device.type for t in module.parameters()), "cpu")
    if options.device not in ("meta", where):
        raise UsageError(f"this TorchScript module lives on {where}: trace it with --device {where} or meta")
    note = (f"a TorchScript module: it ran on {where} (it cannot move to meta); module hooks do not fire inside "
            "TorchScript, so all its work is one row and per-layer shapes are lost (pass the Python model for "
            f"per-layer rows); {plan.values}")
    # At a --dtype the inputs are cast, so the module must be too: a cast copy (never the user's object).
    return plan.run(lambda: module if options.dtype is None else _scripted_copy(module, options.dtype), where, note,
                    scripted=True, cast=False)


def _lazy_on_meta(plan: _Plan) -> Optional[Attempt]:
    """Lazy parameters take their shapes from the first input, and a meta input has every shape they
    need: a copy on meta learns them from one plain forward, then is traced like any meta model."""
    if plan.options.device != "meta" or not _has_lazy_parameters(plan.module, plan.walk()):
        return None
    note = "the model has uninitialised lazy parameters: their shapes were taken from this input, on meta"
    return plan.run(lambda: _materialized_on_meta(plan.module, plan.inputs), "meta", note)


def _on_real_device(plan: _Plan) -> Optional[Attempt]:
    """--device cpu/cuda: a rebuild (a name) or a copy (the user's object) runs there."""
    device = plan.options.device
    if device == "meta":
        return None
    rebuilt = plan.loaded.rebuild is not None
    note = plan.values if rebuilt else f"a copy of the model ran on {device}; {plan.values}"
    return plan.run(lambda: plan.module if rebuilt else _copy(plan.module, device), device, note)


def _small_on_cpu_first(plan: _Plan) -> Optional[Attempt]:
    """A prebuilt model with its weights on CPU and a small forward: running it for real is faster
    than PyTorch's Python meta kernels (an LSTM's 50 steps: 1 ms against 400). Its parameters are
    shared (no gradients, nothing writes them) and its buffers copied; the numbers are the same."""
    options = plan.options
    if not (options.prefer_cpu and plan.loaded.passed_in and not options.train and options.dtype is None
            and _small_on_cpu(plan.module, plan.inputs, plan.walk())):
        return None
    # Its fused RNN layers on meta first (heavy_on_meta.py): a failure there (a value from meta read, a real
    # tensor written from one) is not the model's, so the plain real run answers for it.
    walked = plan.walk()
    heavy = _heavy_on_meta_allowed(options) and may_run_heavy(tree.modules(plan.module) if walked is None else
                                                              [m for _, m in walked])
    run = plan.run(lambda: plan.module, "cpu", None, shared=True, heavy_on_meta=heavy)
    if run.error is not None and heavy:
        plan.fresh_counter()
        run = plan.run(lambda: plan.module, "cpu", None, shared=True)
    if run.error is None:
        if plan.counter is not None and plan.counter.data_dependent:  # it read the input's values: say which
            run.note = f"a small model with its weights on CPU ran there rather than on meta; {plan.values}"
        return run
    plan.fresh_counter()  # a failure is diagnosed on meta, as for any model
    return None


def _heavy_on_meta_allowed(options: RunOptions) -> bool:
    """Receptive fields and the dataflow follow each tensor through the run: they keep the plain one."""
    return not options.rf and options.flow_depth is None


def _on_meta(plan: _Plan) -> Optional[Attempt]:
    follow = _reads_its_inputs(plan.inputs)
    run = plan.run(lambda: plan.module, "meta", None, follow_values=follow)
    if run.error is not None and is_meta_limitation(run.error):
        plan.meta_failure = run  # the meta device itself was the obstacle: the strategies below may help
        plan.followed = follow
        return None
    return run


def _reads_its_inputs(inputs: Inputs) -> bool:
    """Named inputs archscope made (a library's text model: ``input_ids`` of zeros, an
    ``attention_mask`` of ones) are read by the model's own code (transformers asks "is the mask all
    ones?" before its first layer): such a run follows their values from the start rather than
    failing on meta first and running again. Following values changes no result (it only answers
    reads, as a run on this input would); it costs a little per op, so other models run plainly."""
    return bool(inputs.names) and not inputs.real


def _on_meta_with_known_values(plan: _Plan) -> Optional[Attempt]:
    """It read a value. If it was one of the input archscope made (zeros, a mask of ones), meta can
    answer it: once more on meta, following those values (a second pass only for such models)."""
    if plan.meta_failure is None or plan.inputs.real or plan.followed:
        return None
    plan.fresh_counter()
    retry = plan.run(lambda: plan.module, "meta", None, follow_values=True)
    return retry if retry.error is None or not is_meta_limitation(retry.error) else None


def _on_cpu_instead(plan: _Plan) -> Optional[Attempt]:
    """The meta device cannot run it: a rebuild with random weights, or a copy with its own, on CPU."""
    if plan.meta_failure is None:
        return None
    why = first_line(plan.meta_failure.error)
    module = plan.module
    weights = sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
    if weights > CPU_FALLBACK_BYTES:
        raise UsageError(f"this model cannot run on the meta device ({why}), and running it on CPU instead would "
                         f"need {weights / 2**30:.1f} GiB of weights: give it a smaller size (fewer layers, "
                         "--arg ...) or trace it where it fits (--device cuda)")
    plan.fresh_counter()
    if plan.loaded.rebuild is not None:
        note = (f"this model cannot run on the meta device ({why}); rebuilt and traced on CPU with random weights; "
                f"{plan.values}")
        return plan.run(lambda: plan.loaded.rebuild("cpu"), "cpu", note)
    note = f"this model cannot run on the meta device ({why}); a copy was traced on CPU with its weights; {plan.values}"
    return plan.run(lambda: _copy(module, "cpu"), "cpu", note)


STRATEGIES = (
    ("scripted", _as_scripted),
    ("lazy", _lazy_on_meta),
    ("real device", _on_real_device),
    ("small on CPU", _small_on_cpu_first),
    ("meta", _on_meta),
    ("meta with known values", _on_meta_with_known_values),
    ("CPU rebuild", _on_cpu_instead),
)


def attempt(loaded, inputs: Inputs, options: Optional[RunOptions] = None,
            counter: Optional[FlopCounter] = None) -> Attempt:
    """Run once, by the first of ``STRATEGIES`` that takes the model: on the requested device; and
    if the meta device itself is the obstacle (data-dependent code), on meta following the values
    of the input archscope made, else on CPU with real weights, and say so in ``note``. The model's
    floating tensors are taken at ``options.dtype`` (stand-ins on meta, a cast copy elsewhere).

    A user's own object is never run on a real device: a copy is (buffers a forward
    updates, hooks' side effects and modes stay as they were on the original)."""
    plan = _Plan(loaded, inputs, options or RunOptions(), counter)
    for _name, strategy in STRATEGIES:
        run = strategy(plan)
        if run is not None:
            return run
    return plan.meta_failure  # no strategy could do better than the meta run's own failure


def follow_made_values(try_once, inputs: Inputs, args: tuple, kwargs: dict):
    """The strategies "meta" then "meta with known values" for an analysis that runs its own meta
    pass (memory): ``try_once(known)`` runs it; when it failed only because it read a value of
    the input archscope made, once more following those values (known_values.py)."""
    try:
        return try_once(None)
    except Exception as error:  # noqa: BLE001 - retried only when it read a value
        if inputs.real or not is_meta_limitation(error):
            raise
    return try_once(inputs.made_values(args, kwargs))


def _scripted_copy(module, dtype: torch.dtype):
    copied = copy.deepcopy(module)
    with library_warnings_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTorch's own .grad probe inside Module.to on TorchScript
        copied.to(dtype)
    return copied


def _run(get_module, inputs: Inputs, device: str, counter, note, options: RunOptions, shared: bool = False,
         scripted: bool = False, follow_values: bool = False, cast: bool = True, heavy_on_meta: bool = False,
         walks: Optional[tuple] = None) -> Attempt:
    """``walks``: ``(a module, its walk)``, the walk used if that is the module run (a walk is 1.4 ms for
    an 80-layer Llama's 1,045 modules)."""
    dtype = options.dtype
    try:
        module = get_module()
        if cast and dtype is not None and device != "meta":
            module = module.to(dtype)  # a copy or a fresh build: never the user's own object
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - building or copying the model failed
        raise UsageError(f"could not prepare the model for {device}: {type(error).__name__}: {first_line(error)}") from error
    try:
        args, kwargs = inputs.make(device)
    except RuntimeError as error:  # e.g. an input too large to allocate
        raise UsageError(f"could not allocate the input on {device}: {first_line(error)}") from error
    try:
        known = inputs.made_values(args, kwargs) if follow_values else None
        how = dict(train=options.train, rf=options.rf, flow_depth=options.flow_depth,
                   dtype=dtype if cast else None, shared=shared, scripted=scripted, known=known,
                   heavy_on_meta=heavy_on_meta)
        try:
            walked = walks[1] if walks is not None and walks[0] is module else None
            out, rec = forward(module, args, kwargs, device, counter, memo=options.memo, walked=walked,
                               rows_depth=options.rows_depth, **how)
            if rec.missed or (rec.watching and rec.rows_may_differ()):
                # a module inside a watched block was called from outside it, unhooked; or rows would read
                # a record that a module left to its own path changed: run again with every module hooked
                counter.__dict__.update(counter.fresh().__dict__)
                out, rec = forward(module, args, kwargs, device, counter, memo=False, **how)
        except Exception as error:  # noqa: BLE001 - a memoised run fails only where the plain one does, or
            # where running without the key/value cache took another path: that run is made again plainly;
            # so is a run that left a module to its own path (the failure is diagnosed with every layer hooked)
            blocks = getattr(error, "__archscope_memo__", None)
            recorder = getattr(error, "__archscope_recorder__", None)
            missed = getattr(recorder, "missed", False)
            watched = getattr(recorder, "watching", False)
            if not watched and (blocks is None or not (blocks.entered or missed)):
                raise
            counter.__dict__.update(counter.fresh().__dict__)  # its partial counts are not kept
            out, rec = forward(module, args, kwargs, device, counter, memo=False, **how)
        if rec.known is not None and rec.known.answered:
            read = ("the model read its input's values, which archscope knows on meta for the input it made "
                    "(zeros; masks of ones): its branches followed those (give real inputs with --input-data)")
            note = f"{note}; {read}" if note else read
        return Attempt(module, device, rec, out, note=note, counter=counter)
    except Exception as error:  # noqa: BLE001 - reported to the caller
        return Attempt(module, device, getattr(error, "__archscope_recorder__", None), error=error,
                       note=note, counter=counter)


def _materialized_on_meta(module: nn.Module, inputs: Inputs) -> nn.Module:
    """A meta copy of a model with lazy layers, after the one forward that gives them their shapes."""
    copied = copy.deepcopy(module, fresh_lazy_tensors(module, "meta"))  # lazy tensors made anew, on meta
    copied = copied.to("meta")
    args, kwargs = inputs.make("meta")
    try:
        with torch.no_grad(), library_warnings_silenced():
            copied(*args, **kwargs)
    except Exception:  # noqa: BLE001 - the traced run fails at the same layer, and is diagnosed there
        pass
    return copied


def _copy(module: nn.Module, device: str) -> nn.Module:
    on_meta = any(t.device.type == "meta" for t in list(module.parameters()) + list(module.buffers())
                  if not isinstance(t, nn.parameter.UninitializedParameter) or t.device.type == "meta")
    if on_meta and device != "meta":
        why = ("its lazy layers need one real forward to learn their shapes, and a model on meta has no data to "
               "run it with: build it on CPU, or call it once on a real input before passing it in"
               if _has_lazy_parameters(module) else
               "a model on meta has no data to copy: build it on CPU, or pass its name (zoo, tv:, timm:)")
        raise UsageError(f"this model lives on the meta device and must run on {device} here: {why}")
    try:
        return copy.deepcopy(module).to(device)
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"the model could not be copied to run it on {device} "
                         f"({type(error).__name__}: {first_line(error)}): trace it on --device meta") from error


CPU_FALLBACK_BYTES = 4 * 2**30  # the most weights a model that cannot run on meta is given on CPU instead
SMALL_ON_CPU = 30_000_000  # parameters x batch: below it a real CPU forward takes ~0.1 s at most
SMALL_INPUT = 2 ** 21  # input elements


def _small_on_cpu(module: nn.Module, inputs: Inputs, walked: Optional[tree.Walk] = None) -> bool:
    if inputs.real or not inputs.shapes:
        return False
    modules = tree.modules(module) if walked is None else [m for _, m in walked]
    # A conv reuses each weight at every position, so a conv net's real forward costs far more per
    # parameter (ResNet-50: 160 MACs each) than an RNN's or a transformer's, while its meta run (own
    # kernels for its ops, repeated blocks replayed) is as fast or faster for every conv net measured,
    # down to SqueezeNet and MobileNetV3-Small (benchmarks/bench_peers.py): a conv net runs on meta.
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in modules):
        return False
    tensors = list(tree.parameters(module, walked)) + tree.buffers(module, walked)
    if any(isinstance(t, nn.parameter.UninitializedParameter) or t.device.type != "cpu" or t.is_quantized
           for t in tensors):
        return False
    batch = inputs.shapes[0][0] if inputs.shapes[0] else 1
    elements = sum(math.prod(s) for s in inputs.shapes)
    return sum(t.numel() for t in tensors) * batch <= SMALL_ON_CPU and elements <= SMALL_INPUT


def _has_lazy_parameters(model: nn.Module, walked: Optional[tree.Walk] = None) -> bool:
    """A lazy module (LazyModuleMixin: its pre-hook gives its tensors their shapes on a first call) with
    tensors still uninitialised. Asked of the lazy classes only, found by class once (a lookup a module
    rather than a look at each of its tensors: 80-layer Llama 1.2 -> 0.3 ms)."""
    lazy = _LAZY_CLASSES
    for m in (tree.modules(model) if walked is None else [m for _, m in walked]):
        kind = type(m)
        is_lazy = lazy.get(kind)
        if is_lazy is None:
            is_lazy = lazy[kind] = issubclass(kind, nn.modules.lazy.LazyModuleMixin)
        if is_lazy and m.has_uninitialized_params():
            return True
    return False


_LAZY_CLASSES: dict = {}


# --------------------------------------------------------------------------- one hooked forward

def forward(model: nn.Module, args: tuple, kwargs: dict, device: str, counter: Optional[FlopCounter] = None,
            train: bool = False, rf: bool = False, flow_depth: Optional[int] = None,
            dtype: Optional[torch.dtype] = None, shared: bool = False, scripted: bool = False,
            known: Optional[list] = None, listeners: Sequence[Any] = (), memo: bool = False,
            heavy_on_meta: bool = False, walked: Optional[tree.Walk] = None, rows_depth: Optional[int] = None):
    """One forward call with hooks, in eval mode and without autograd; with ``train``, in
    train mode followed by a backward pass of the sum of the outputs (the counter keeps
    its FLOPs apart). On ``meta``, a model with real tensors (or any model, with ``train``:
    its parameters must not collect gradients) runs through ``functional_call`` with meta
    stand-ins (at ``dtype``, when given), so nothing of it changes; ``shared``: a user's model runs on
    its own parameters with copies of its buffers (an eval forward writes nothing else). Returns ``(output, recorder)``; on failure the
    recorder rides on the exception as ``__archscope_recorder__`` (the diagnosis reads its stack).
    ``memo``: repeated blocks are replayed (memo.py), where the run records nothing else per op;
    ``heavy_on_meta``: a real forward's matmuls and what follows from them run on meta (heavy_on_meta.py);
    ``rows_depth``: only rows down to that depth are wanted, so on a real device in an eval forward that
    records nothing else, a module below it that looks at its hooks runs its own path (hooks.Recorder)."""
    if walked is None:  # one walk for the memo, the hooks, the modes and the stand-ins
        walked = tree.named_modules(model)
    blocks = None
    if memo and device == "meta" and counter is not None and not (train or rf or scripted or listeners or
                                                                   counter.record_ops or flow_depth is not None):
        blocks = BlockMemo(model, counter).install(walked)  # before the recorder's hooks: only a user's refuse a block
        kwargs = without_kv_cache(model, kwargs)
    plain = device != "meta" and not (train or rf or scripted or listeners or flow_depth is not None or
                                      (counter is not None and counter.record_ops))
    recorder = Recorder(model, counter, tag_autograd=train, fields=rf, listeners=tuple(listeners), walked=walked,
                        deferred=blocks.inside(walked) if blocks is not None else None,
                        rows_depth=rows_depth if plain else None)
    if blocks is not None:
        blocks.recorder = recorder
    if scripted:
        recorder.charge("")  # no hook will say whose ops run: the scripted root's
    observers = []
    if rf:
        for x in list(args) + list(kwargs.values()):
            mark_input(x)
        recorder.receptive = ReceptiveFields()
        observers.append(recorder.receptive)
    if flow_depth is not None:  # inside the counter, so that each node's FLOPs are the counter's growth
        recorder.flow = Flow(flow_depth, counter)
        recorder.flow.start(args, kwargs)
        observers.append(recorder.flow)
    meta = device == "meta"
    if meta and known is not None:
        recorder.known = KnownValues(known)
    try:
        stand_ins = None
        if meta and (train or dtype is not None or not _all_on_meta(walked)):
            # Made before the modes are entered: they are archscope's tensors, not ops of the model's
            # (under the modes each would pass through every one of them: 15% of MobileNetV3's trace).
            stand_ins = {n: torch.empty_like(t, device="meta", dtype=dtype if dtype is not None and
                                             t.is_floating_point() else t.dtype).requires_grad_(t.requires_grad)
                         for n, t in _named_tensors(model, walked)}
        with mode_stack(model, train=train, meta=meta, counter=counter, observers=observers, known=recorder.known,
                        heavy_on_meta=heavy_on_meta and not meta, modules=[m for _, m in walked]):
            if stand_ins is not None:
                out = torch.func.functional_call(model, stand_ins, args, kwargs, tie_weights=True, strict=False)
            elif shared and (own_buffers := tree.named_buffers(model)):
                buffers = {n: b.clone() for n, b in own_buffers}
                out = torch.func.functional_call(model, buffers, args, kwargs, tie_weights=True, strict=False)
            else:  # shared without buffers: its own parameters are all it has, and nothing swaps them
                out = model(*args, **kwargs)
            if flow_depth is not None:
                recorder.flow.finish(out)
            if train:
                _backward(out, recorder, counter)
        return out, recorder
    except BaseException as error:
        error.__archscope_recorder__ = recorder
        error.__archscope_memo__ = blocks
        raise
    finally:
        recorder.remove()
        if blocks is not None:
            blocks.remove()
            recorder.replayed = blocks.replayed


def _backward(out, recorder: Recorder, counter: Optional[FlopCounter]) -> None:
    """Backward of the sum of every output that needs a gradient; each autograd node's ops
    are charged to the module call that created it (the recorder tagged them)."""
    leaves = [t for t in tensors_in(out) if t.requires_grad and t.is_floating_point()]
    if not leaves:
        raise UsageError("a training step needs an output that depends on trainable parameters; this model has none")
    loss = sum(t.sum() for t in leaves)  # sums are reductions: no FLOPs by the convention
    recorder.hook_backward(loss)
    recorder.charge(None)
    if counter is not None:
        counter.begin_backward()
    loss.backward()
    if counter is not None:
        counter.end_backward()


def _all_on_meta(walked: tree.Walk) -> bool:
    """Every tensor each module holds is on meta (read from the tables: a tensor held twice is looked
    at twice, which costs less than keeping a set of them; the test of each by C calls, map and
    attrgetter, since an 80-layer Llama holds 1,700)."""
    tensors = [t for _, m in walked for table in (m._parameters, m._buffers) if table
               for t in table.values() if t is not None]
    return all(map(_IS_META, tensors))


_IS_META = operator.attrgetter("is_meta")


def _named_tensors(model: nn.Module, walked: tree.Walk):
    # Tied tensors appear once; functional_call(tie_weights=True) maps them to every use.
    yield from tree.named_parameters(model, walked)
    yield from tree.named_buffers(model, walked)
