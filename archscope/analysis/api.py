"""``trace``: run a model once on a dummy input and record, per layer, what it did.

One real forward call of the whole model, with forward hooks on every module and
archscope's dispatch-level FLOP counter around it (``run.py``). The hooks keep a stack of the
modules running (``hooks.py``); the counter charges every op to the innermost one, under the
name it was called by (its *call path*). By default the model lives on the ``meta`` device:
shapes, counts and FLOPs need no weights, so even a 10-billion-parameter model traces in
milliseconds. ``rows.py`` turns the record into rows at a depth.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from archscope.analysis.counter import FlopCounter
from archscope.analysis.diagnose import diagnose
from archscope.analysis.records import FLOPS_CONVENTION, LayerRow, Totals, Trace
from archscope.analysis.rows import build_rows, collapse_rows, packed_weights
from archscope.analysis.run import Attempt, RunOptions, attempt, check_device
from archscope.errors import ModelFailure, UsageError
from archscope.gc_pause import gc_paused
from archscope.inputs import Inputs, InputSize, resolve_inputs, shape_of
from archscope.models import load_model, tree

__all__ = ["FLOPS_CONVENTION", "LayerRow", "Totals", "Trace", "trace", "traces"]


def trace(
    model: Any,
    input_size: InputSize = None,
    depth: int = 1,
    device: Optional[str] = None,
    batch: Optional[int] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    dtypes: Optional[List[Any]] = None,
    input_data: Any = None,
    train: bool = False,
    rf: bool = False,
    collapse: bool = False,
    memo: bool = True,
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
    start per spatial axis). ``collapse=True`` merges consecutive identical sibling rows into
    one ``first … last`` row of type ``T ×N`` (as ``graph`` does). ``device`` None: meta, except that a
    small model passed in with its weights on CPU runs there (faster, the same numbers); "meta" forces meta.
    ``memo=False`` runs every repeated block rather than replaying its first run (the same numbers,
    slower; memo.py says when a block is replayed). Builder options go in
    ``**kwargs`` or, when one is named like an argument of ``trace`` itself, in ``model_kwargs``.
    """
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    with gc_paused():
        loaded, inputs, run = counted_run(model, input_size, depth, device, batch, model_kwargs, dtypes, input_data,
                                          train=train, rf=rf, memo=memo, rows_depth=depth)
        return _trace_of(loaded, inputs, run, depth, collapse, model_kwargs)


def traces(model: Any, depths: List[int], input_size: InputSize = None, device: Optional[str] = None,
           batch: Optional[int] = None, model_kwargs: Optional[Dict[str, Any]] = None,
           dtypes: Optional[List[Any]] = None, input_data: Any = None, train: bool = False, rf: bool = False,
           **kwargs) -> List[Trace]:
    """``trace`` at each of ``depths``, from one run of the model (the rows of every depth come
    from the same record)."""
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    with gc_paused():
        loaded, inputs, run = counted_run(model, input_size, min(depths), device, batch, model_kwargs, dtypes,
                                          input_data, train=train, rf=rf, rows_depth=max(depths))
        return [_trace_of(loaded, inputs, run, depth, False, model_kwargs) for depth in depths]


def _trace_of(loaded, inputs: Inputs, run: Attempt, depth: int, collapse: bool, model_kwargs) -> Trace:
    module, counter = run.module, run.counter

    rows = build_rows(module, run.recorder, counter.by_key, depth, root_label=type(module).__name__,
                      backward_by_path=counter.backward_by_key)
    if collapse:
        rows = collapse_rows(rows, module)
    packed = packed_weights(module)  # int8 weights PyTorch's parameters() leaves out
    params, trainable = _unique_params(module, packed)
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
        note="; ".join(n for n in (loaded.note, _assumed(inputs, loaded), run.note, _fields_note(run),
                                   _packed_note(packed), _routing_note(counter)) if n) or None,
        uncounted_ops=counter.uncounted_ops(),
    )


def counted_run(model: Any, input_size: InputSize, depth: int, device: str, batch: Optional[int],
                model_kwargs: Dict[str, Any], dtypes: Optional[List[Any]], input_data: Any,
                counter: Optional[FlopCounter] = None, dtype=None, **options):
    """Load the model, make its inputs, run it once with the FLOP counter (``options``: train, rf,
    flow_depth); a failed forward is raised as one line with its diagnosis. ``(loaded, inputs, run)``.
    ``dtype``: the model and its floating inputs at that dtype (``time --dtype bf16``)."""
    if depth < 1:
        raise UsageError(f"bad --depth {depth}: it must be >= 1")
    options.setdefault("prefer_cpu", device is None)  # an explicit --device meta means meta
    device = check_device(device or "meta")
    with gc_paused():
        loaded = load_model(model, device=device, **model_kwargs)
        inputs = resolve_inputs(input_size, loaded.module, loaded.default_input, batch, dtypes, input_data)
        if dtype is not None:
            inputs = inputs.cast(dtype)
        run = attempt(loaded, inputs, RunOptions(device=device, dtype=dtype, **options), counter or FlopCounter())
    if run.error is not None:
        problem = failure(run, inputs, loaded)
        problem.run, problem.loaded, problem.inputs = run, loaded, inputs  # what ran, for a partial picture
        raise problem
    return loaded, inputs, run


def failure(run: Attempt, inputs: Inputs, loaded) -> ModelFailure:
    """The one-line error of a forward that raised, with the diagnosis attached."""
    diagnosis = diagnose(run.module, inputs.shape, run.error, loaded)
    message = diagnosis.one_line()
    for note in (_assumed(inputs, loaded), run.note):
        if note:
            message += f" ({note})"
    return ModelFailure(message, diagnosis)


def _assumed(inputs: Inputs, loaded) -> Optional[str]:
    """What a --size was taken to mean, for a model that declares no input of its own (a zoo or
    library model's side is its builder's, not a guess)."""
    return inputs.assumed if loaded.default_input is None else None


def _fields_note(run: Attempt) -> Optional[str]:
    receptive = run.recorder.receptive if run.recorder is not None else None
    return receptive.note() if receptive is not None else None


def _routing_note(counter: FlopCounter) -> Optional[str]:
    if not counter.routed:
        return None
    return ("mixture of experts: each token is counted through the k experts its router picked (grouped "
            "matmuls); the FLOPs are the same whichever experts the routing chose, their per-expert split is not")


def _unique_params(model: nn.Module, packed: List[torch.Tensor]) -> Tuple[int, int]:
    params = list(tree.parameters(model))  # parameters() already yields a shared tensor once
    return (sum(p.numel() for p in params) + sum(t.numel() for t in packed),
            sum(p.numel() for p in params if p.requires_grad))


def _packed_note(packed: List[torch.Tensor]) -> Optional[str]:
    if not packed:
        return None
    n = sum(t.numel() for t in packed if t.is_quantized)
    return (f"{n:,} parameters are int8 weights of dynamically quantized layers (packed, so PyTorch's "
            "parameters() does not list them; counted here, and not trainable)")


