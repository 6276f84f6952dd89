"""``time``: seconds per layer, predicted from a roofline and, with ``measure``, measured.

The prediction is built from the ops of one traced forward (and, with ``train``, its backward
and one optimizer step), each recorded at dispatch level with its FLOPs, the bytes it read and
wrote at its dtype, and whose call it was:

    op time = max(FLOPs / peak FLOP/s at the op's dtype, bytes / memory bandwidth) + overhead

The overhead is what eager PyTorch pays to dispatch (and on a GPU launch) one op. A row's time
is the sum over its ops; so is the step. A row is *compute*-, *memory*- or *overhead*-bound by
whichever of the three terms makes most of its time. The step time gives an epoch time for
Fashion-MNIST (60,000 training images, or the 10,000 test images for inference).

With ``measure`` the model runs for real on CUDA when there is one, else on this CPU, and the
hooks time every call path (``measure.py``); rows add each path's median seconds exactly as
they add FLOPs, beside the whole step timed without hooks.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, astuple, dataclass, field, fields
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from archscope.analysis.api import counted_run
from archscope.analysis.counter import FlopCounter, OpCost
from archscope.analysis.hardware import DTYPES, Hardware, parse_hardware
from archscope.analysis.memory import OPTIMIZER_STATES
from archscope.analysis.records import LayerRow, Result
from archscope.analysis.rows import OUTSIDE, build_rows, per_row
from archscope.errors import UsageError
from archscope.inputs import DTYPES as INPUT_DTYPES

TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000  # Fashion-MNIST
OPTIMIZER_ROW = "(optimizer step)"
_OPTIMIZER_KEY = object()  # the counter's key for the optimizer's ops: not a call path
_DTYPE_OF = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class Cost:
    """What some ops cost on a piece of hardware; costs add."""

    flops: int = 0
    bytes: int = 0
    ops: int = 0  # kernels launched (views and metadata queries are not kernels)
    compute_s: float = 0.0  # Σ over its ops of the compute term, where it is the largest
    memory_s: float = 0.0  # Σ of the memory term, where it is the largest
    kernel_s: float = 0.0  # Σ of a pooling/normalisation kernel's measured-rate term, where it is the largest
    overhead_s: float = 0.0  # Σ of the per-op overhead

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(a + b for a, b in zip(astuple(self), astuple(other))))


COST_FIELDS = tuple(f.name for f in fields(Cost))


@dataclass
class TimeRow:
    name: str
    type: str
    depth: int
    output_shape: Any
    flops: int
    bytes: int
    ops: int  # kernels launched (views and metadata queries are not kernels)
    compute_s: float  # Σ over its ops of the compute term, where it is the largest
    memory_s: float  # Σ of the memory term, where it is the largest
    kernel_s: float  # Σ of a pooling/normalisation kernel's measured-rate term, where it is the largest
    overhead_s: float  # Σ of the per-op overhead
    kind: str = "module"
    measured_s: Optional[float] = None

    @classmethod
    def of(cls, name: str, type_: str, depth: int, output_shape: Any, cost: Cost, **extra) -> "TimeRow":
        return cls(name, type_, depth, output_shape, int(cost.flops), int(cost.bytes), int(cost.ops), cost.compute_s,
                   cost.memory_s, cost.kernel_s, cost.overhead_s, **extra)

    @property
    def cost(self) -> Cost:
        return Cost(*(getattr(self, f) for f in COST_FIELDS))

    @property
    def predicted_s(self) -> float:
        return self.compute_s + self.memory_s + self.kernel_s + self.overhead_s

    @property
    def intensity(self) -> Optional[float]:
        """Arithmetic intensity: FLOPs per byte moved."""
        return self.flops / self.bytes if self.bytes else None

    @property
    def bound(self) -> str:
        if not self.ops:
            return "-"
        terms = {"compute": self.compute_s, "memory": self.memory_s, "kernel": self.kernel_s,
                 "overhead": self.overhead_s}
        return max(terms, key=terms.get)

    @property
    def achieved_flops(self) -> Optional[float]:
        return self.flops / self.measured_s if self.measured_s else None

    @property
    def roofline_share(self) -> Optional[float]:
        """How close the measured time came to the roofline (1 = at the roofline, overhead left out)."""
        if not self.measured_s:
            return None
        return (self.compute_s + self.memory_s + self.kernel_s) / self.measured_s

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(predicted_s=self.predicted_s, intensity=self.intensity, bound=self.bound)
        if self.measured_s is not None:
            d.update(achieved_flops=self.achieved_flops, roofline_share=self.roofline_share)
        return d


@dataclass(repr=False)
class TimeReport(Result):
    model: str
    input_shape: Any
    batch: int
    dtype: str
    train: bool
    hardware: Hardware
    rows: List[TimeRow]
    depth: int
    optimizer: Optional[str] = None
    measured_on: Optional[str] = None  # "cpu", "cuda:0 (NVIDIA H200)"
    whole_measured_s: Optional[float] = None  # the same step, timed without hooks
    hook_cost_s: Optional[float] = None  # per module call, taken off every row
    repeats: Optional[int] = None
    note: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    whole_spread_s: Optional[List[float]] = None  # the quartiles of the whole step's time (min, max below 4 runs)

    UNSTEADY = 1.5  # upper / lower quartile of the whole step above this: the machine was busy while it measured
    DISAGREE = 0.25  # the rows' sum this far from the whole step: the per-row seconds are not to be trusted

    @property
    def unsteady(self) -> Optional[str]:
        """Why the measured figures should not be trusted, or None when the runs agreed."""
        if self.whole_measured_s is None:
            return None
        why = []
        if self.whole_spread_s and self.whole_spread_s[0] > 0 and \
                self.whole_spread_s[1] / self.whole_spread_s[0] > self.UNSTEADY:
            why.append(f"the whole step's quartiles are {self.whole_spread_s[1] / self.whole_spread_s[0]:.1f}× apart")
        rows = self.total().measured_s or 0.0
        if self.whole_measured_s > 0 and abs(rows / self.whole_measured_s - 1) > self.DISAGREE:
            why.append(f"the rows sum to {rows / self.whole_measured_s:.0%} of the whole step")
        return "; ".join(why) or None

    def total(self) -> TimeRow:
        total = TimeRow.of("total", "", 0, None, sum((r.cost for r in self.rows), Cost()), kind="total")
        if self.measured_on is not None:
            total.measured_s = sum(r.measured_s or 0.0 for r in self.rows)
        return total

    @property
    def images(self) -> int:
        return TRAIN_IMAGES if self.train else TEST_IMAGES

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.images / self.batch)

    @property
    def predicted_epoch_s(self) -> float:
        return self.steps_per_epoch * self.total().predicted_s

    @property
    def measured_epoch_s(self) -> Optional[float]:
        return None if self.whole_measured_s is None else self.steps_per_epoch * self.whole_measured_s

    def to_dict(self) -> Dict[str, Any]:
        total = self.total()
        return {
            "model": self.model, "input_shape": self.input_shape, "batch": self.batch, "dtype": self.dtype,
            "train": self.train, "optimizer": self.optimizer, "depth": self.depth, "options": self.options,
            "hardware": self.hardware.to_dict(),
            "layers": [r.to_dict() for r in self.rows],
            "totals": total.to_dict(),
            "predicted_step_s": total.predicted_s,
            "measured_on": self.measured_on,
            "measured_step_s": self.whole_measured_s,
            "rows_measured_s": total.measured_s,
            "hook_cost_s": self.hook_cost_s,
            "repeats": self.repeats,
            "epoch": {"images": self.images, "steps": self.steps_per_epoch, "predicted_s": self.predicted_epoch_s,
                      "measured_s": self.measured_epoch_s},
            "note": self.note,
        }

    def summary(self) -> str:
        step = "training step" if self.train else "forward"
        measured = "" if self.whole_measured_s is None else f", measured {self.whole_measured_s * 1e3:.3g} ms"
        return (f"{self.model} at batch {self.batch} ({self.dtype}) on {self.hardware.name}: {step} predicted "
                f"{self.total().predicted_s * 1e3:.3g} ms{measured}")


# --------------------------------------------------------------------------- the roofline


def op_terms(op: OpCost, hw: Hardware, dtype: str, training: bool = False):
    """(compute, memory, kernel, overhead) seconds of one op on ``hw``: FLOPs at the peak (a GEMM
    at the efficiency its shape reaches), bytes at the bandwidth (plus fresh pages, where the
    hardware has a first-touch cost), a pooling or normalisation kernel at its measured rate."""
    peak = hw.peak.get(_DTYPE_OF.get(op.dtype, dtype)) or hw.peak_for(dtype)
    if op.kind == "gemm":
        peak *= hw.efficiency(op.size)
    memory = op.bytes / hw.bandwidth
    if hw.first_touch:
        memory += sum(n for n in op.fresh if n >= hw.first_touch_from) / hw.first_touch
    rate = {"pool": hw.pool_rate, "norm": hw.norm_rate}.get(op.kind)
    kernel = op.size / rate if rate else 0.0
    overhead = hw.overhead_s
    if training and hw.train_overhead_s is not None:
        overhead = hw.train_overhead_s  # autograd records a node for every op that needs a gradient
    return op.flops / peak, memory, kernel, overhead


def op_cost(op: OpCost, hw: Hardware, dtype: str, training: bool = False) -> Cost:
    """One op's cost: its time goes to whichever of its compute, memory and kernel terms is the largest."""
    *terms, overhead = op_terms(op, hw, dtype, training)
    largest = max(range(3), key=terms.__getitem__)  # on a tie, the first: compute, then memory
    split = [terms[i] if i == largest else 0.0 for i in range(3)]
    return Cost(op.flops, op.bytes, 1, *split, overhead)


def _row_costs(ops: List[OpCost], hw: Hardware, dtype: str, training: bool = False) -> Dict[Any, Cost]:
    """Per attribution key, the sum of its ops' costs."""
    by_key: Dict[Any, Cost] = {}
    for op in ops:
        by_key[op.key] = by_key.get(op.key, Cost()) + op_cost(op, hw, dtype, training)
    return by_key


# --------------------------------------------------------------------------- the optimizer's step


def _optimizer(name: str, params: List[torch.Tensor], foreach: bool) -> torch.optim.Optimizer:
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=1e-3, foreach=foreach)
    return torch.optim.SGD(params, lr=0.01, momentum=0.9 if name == "sgd-momentum" else 0.0, foreach=foreach)


def _count_optimizer_step(module: nn.Module, counter: FlopCounter, name: str, dtype: torch.dtype,
                          foreach: bool) -> None:
    """One optimizer step over meta stand-ins of the trainable parameters, its ops in ``counter``."""
    params = [torch.empty_like(p, device="meta", dtype=dtype if p.is_floating_point() else p.dtype)
              .requires_grad_() for p in module.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.empty_like(p)
    if not params:
        return
    optimizer = _optimizer(name, params, foreach)
    counter.path_changed(_OPTIMIZER_KEY)  # no recorder here: the step is no module's call
    with counter:
        optimizer.step()
    counter.path_changed(None)


# --------------------------------------------------------------------------- the command


def time_model(model: Any, batch: Optional[int] = None, dtype: str = "fp32", train: bool = False,
               hw: Optional[str] = None, measure: bool = False, depth: int = 1, input_size=None,
               input_data: Any = None, optimizer: str = "adam", model_kwargs: Optional[Dict[str, Any]] = None,
               repeats: int = 5, **kwargs) -> TimeReport:
    """Predict (and with ``measure``, measure) the seconds of one forward, or with ``train`` one
    training step (forward, backward of the sum of the outputs, one ``optimizer`` step), per row
    at ``depth``, on ``hw`` (a name from ``--hw list``, ``cpu``, or ``peak=…,bandwidth=…``).

    >>> r = time_model("lenet", batch=32, hw="h100")
    >>> r.total().bytes > 0 and r.rows[0].bound in ("compute", "memory", "overhead")
    True
    """
    by_torch = {v: k for k, v in DTYPES.items()}
    long_name = INPUT_DTYPES.get(str(dtype).strip().lower())  # bfloat16, half...: the same names an --input takes
    dtype = by_torch.get(long_name, dtype)
    if dtype not in DTYPES:
        raise UsageError(f"unknown --dtype '{dtype}': use {', '.join(DTYPES)} (or bfloat16, float16, float32)")
    if optimizer not in OPTIMIZER_STATES:
        raise UsageError(f"unknown --optimizer '{optimizer}': use one of {', '.join(OPTIMIZER_STATES)}")
    if batch is not None and batch < 1:
        raise UsageError(f"bad --batch {batch}: it must be a positive integer")
    hardware = parse_hardware(hw, dtypes=(dtype,))
    hardware.peak_for(dtype)  # refuse bf16 on a T4 before any work
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    if batch is None and input_size is None and input_data is None:
        batch = 32  # a training batch: time is about throughput
    torch_dtype = DTYPES[dtype]
    counter = FlopCounter(record_ops=True)
    loaded, inputs, run = counted_run(model, input_size, depth, None, batch, model_kwargs, None, input_data,
                                      counter=counter, dtype=None if torch_dtype == torch.float32 else torch_dtype,
                                      train=train)
    counter = run.counter  # a fallback to CPU counts afresh
    if train:
        _count_optimizer_step(run.module, counter, optimizer, torch_dtype, foreach=not hardware.is_cpu)

    model_ops = [op for op in counter.ops if op.key is not _OPTIMIZER_KEY]
    costs = _row_costs(model_ops, hardware, dtype, train)
    seconds = measured_on = whole = per_call = reps = spread = None
    if measure:
        seconds, whole, per_call, reps, measured_on, spread = _measure(loaded, inputs, torch_dtype, train,
                                                                        optimizer, repeats)
    also = [{k: c.ops for k, c in costs.items()}] + ([seconds] if seconds else [])
    layer_rows = build_rows(run.module, run.recorder, counter.by_key, depth, root_label=type(run.module).__name__,
                            also=also)
    rows = _time_rows(layer_rows, costs, seconds)
    if train:
        opt_costs = _row_costs([op for op in counter.ops if op.key is _OPTIMIZER_KEY], hardware, dtype)  # no autograd
        rows.append(TimeRow.of(OPTIMIZER_ROW, optimizer, 0, None, opt_costs.get(_OPTIMIZER_KEY, Cost()), kind="other",
                               measured_s=None if seconds is None else seconds.get("optimizer", 0.0)))
    batch_size = inputs.batch_size or batch or 1  # real data (--input-data) says its own batch
    note = "; ".join(n for n in (loaded.note, run.note) if n) or None
    return TimeReport(loaded.label, inputs.describe(), batch_size, dtype, train, hardware, rows, depth,
                      optimizer if train else None, measured_on, whole, per_call, reps, note, dict(model_kwargs),
                      None if spread is None else list(spread))


def _time_rows(layer_rows: List[LayerRow], costs: Dict[Any, Cost], seconds: Optional[Dict]) -> List[TimeRow]:
    # per_row gives each row what its own keys (and, for a collapsed row, its members') hold, one field at a time
    columns = {f: per_row(layer_rows, {k: getattr(c, f) for k, c in costs.items()}) for f in COST_FIELDS}
    measured = per_row(layer_rows, {k: v for k, v in seconds.items() if k != "optimizer"}) if seconds else None
    rows = []
    for i, r in enumerate(layer_rows):
        cost = Cost(*(columns[f][i] for f in COST_FIELDS))
        rows.append(TimeRow.of(r.name, r.type, r.depth, r.output_shape, cost, kind=r.kind,
                               measured_s=None if measured is None else measured[i]))
    if not any(r.name == OUTSIDE for r in rows) and measured is not None and seconds.get(None):
        rows.append(TimeRow.of(OUTSIDE, "-", 0, None, Cost(), kind="other", measured_s=seconds[None]))
    return rows


def _measure(loaded, inputs, dtype: torch.dtype, train: bool, optimizer: str, repeats: int):
    """Run for real: CUDA when there is one, else this CPU."""
    from archscope.analysis.measure import measure

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if loaded.rebuild is not None:
        module = loaded.rebuild(device)
    else:
        if any(t.device.type == "meta" for t in list(loaded.module.parameters()) + list(loaded.module.buffers())):
            raise UsageError("--measure needs real weights: this model lives on the meta device; pass a model "
                             "built on CPU, or a zoo/tv:/timm: name")
        module = copy.deepcopy(loaded.module).to(device)  # never the user's own object
    module = module.to(dtype)
    args, kwargs = inputs.cast(dtype).make(device)
    if inputs.data is None:  # random data, not zeros: some kernels take shortcuts on zeros
        args = tuple(torch.randn_like(a) if a.is_floating_point() else a for a in args)
    opt = None
    if train:
        params = [p for p in module.parameters() if p.requires_grad]
        opt = _optimizer(optimizer, params, foreach=device != "cpu") if params else None
    per_path, whole, per_call, reps, spread = measure(module, args, kwargs, device, train, opt, repeats=repeats)
    name = f"cuda ({torch.cuda.get_device_name()})" if device == "cuda" else "cpu"
    return per_path, whole, per_call, reps, name, spread

