"""Train a zoo (or user) model on Fashion-MNIST. Reads top to bottom:

config (validated before anything is loaded) → the run's folder (claimed, locked, writable)
→ ``setup``: device, data (whole dataset on the device), model, optimizer → for each epoch:
``train_epoch`` (shuffled index batches, forward/backward, statistics kept on the device, the
learning rate a pure function of the global step) → ``evaluate`` → ``save`` (checkpoints first,
then the metrics row) → curves.png.

On CUDA: bf16 autocast, channels_last and cudnn.benchmark (channels_last on CPU too for inputs
of 96×96 and up), epochs timed with CUDA events, and no host sync inside an epoch except the
progress bar's. Under torchrun, DistributedDataParallel: each rank takes a disjoint shard of
every global batch, metrics are summed over ranks, only rank 0 prints and writes.

Ctrl-C or SIGTERM (when the caller asks for it: the CLI does, a library call does not) finishes
the current step, saves ``last.pt`` with the position inside the epoch and exits; ``--resume``
continues exactly where it stopped.
"""
from __future__ import annotations

import json
import math
import signal
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from archscope.errors import TrainingError, UsageError
from archscope.train import checkpoint as ckpt
from archscope.train import distributed
from archscope.train.data import Split, batches, epoch_order, load, prepare
from archscope.train.evaluate import autocast, evaluate
from archscope.train.plot import plot_curves
from archscope.train.recipes import recipe_for
from archscope.train.rundir import RunDir

# A cross-entropy over 10 classes starts near ln 10 = 2.3; far above that the run has diverged.
DIVERGED = 50 * math.log(10)


@dataclass
class TrainConfig:
    model: str
    epochs: int = 5
    batch_size: Optional[int] = None  # None: the model's recipe; the global batch under torchrun
    lr: Optional[float] = None
    optimizer: Optional[str] = None  # adam | sgd
    weight_decay: Optional[float] = None
    schedule: Optional[str] = None  # none | cosine | onecycle
    label_smoothing: Optional[float] = None
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: Optional[bool] = None  # None: on for CUDA
    compile: bool = False
    resize: Optional[int] = None  # None: the model's default input side
    limit_train: Optional[int] = None
    limit_test: Optional[int] = None
    out: Optional[str] = None
    data_dir: Optional[str] = None
    download: bool = False
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    run_id: Optional[str] = None  # set when the run starts; every metrics row carries it

    def filled(self) -> "TrainConfig":
        """A copy with every None replaced by the model's recipe (the caller's object is left alone)."""
        r = recipe_for(self.model)
        d = asdict(self)
        for key in ("batch_size", "lr", "optimizer", "weight_decay", "schedule", "label_smoothing"):
            if d[key] is None:
                d[key] = getattr(r, key)
        if d["out"] is None:
            d["out"] = f"runs/{Path(self.model).stem.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}"
        d["run_id"] = d["run_id"] or uuid.uuid4().hex[:12]
        return TrainConfig(**d)


@dataclass
class TrainResult:
    run_dir: str
    history: List[Dict[str, Any]]
    best_test_acc: float
    interrupted: bool = False
    plot_note: Optional[str] = None

    def to_dict(self):
        return asdict(self)


class StopRequest:
    """Set by SIGINT/SIGTERM (or a test): the loop stops after the current step."""

    def __init__(self):
        self.signal_name: Optional[str] = None

    def __call__(self, signum, frame):
        if self.signal_name is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


# --------------------------------------------------------------------------- options

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but no CUDA GPU is available: use --device cpu (or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown --device '{name}': use auto, cpu or cuda")
    return torch.device(name)


OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine", "onecycle")


def validate(cfg: TrainConfig) -> None:
    """Every option, before any data is loaded or any folder is touched."""
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("limit_train", "limit_test", "resize"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 < cfg.lr < torch.finfo(torch.float32).max:
        raise UsageError(f"--lr must be > 0 and below {torch.finfo(torch.float32).max:.3g}")
    if not 0 <= cfg.label_smoothing < 1:
        raise UsageError(f"--label-smoothing {cfg.label_smoothing:g}: it must be in [0, 1)")
    if not 0 <= cfg.weight_decay < torch.finfo(torch.float32).max:
        raise UsageError(f"--weight-decay {cfg.weight_decay:g}: it must be >= 0")
    if cfg.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown --optimizer '{cfg.optimizer}': use adam or sgd")
    if cfg.schedule not in SCHEDULES:
        raise UsageError(f"unknown --schedule '{cfg.schedule}': use none, cosine or onecycle")
    if cfg.device != "auto":
        pick_device(cfg.device)


def check_side(model_name: str, side: int, module, channels: int) -> None:
    """``--resize`` a model cannot take is a usage error, said before any data is loaded."""
    from archscope.trace.solver import probe, smallest_running_side

    shape = (1, channels, side, side)
    if probe(module, shape, side).ok:
        return
    lo, hi = smallest_running_side(module, shape)
    if lo is None:
        accepts = "no square side up to 8192"
    elif hi is None:
        accepts = f"sides from {lo} up"
    else:
        accepts = f"side {lo}" if lo == hi else f"sides {lo}..{hi}"
    raise UsageError(f"--resize {side}: {model_name} does not run at {side}×{side}; it accepts {accepts}")


def get_lr(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """The learning rate of global step ``step``: a pure function, so a resumed or extended run
    needs no saved scheduler state. One-cycle: cosine warm-up from lr/25 to lr over the first
    20% of the steps, then cosine down to lr/250,000 (PyTorch's OneCycleLR shape)."""
    if cfg.schedule == "none":
        return cfg.lr
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    start, end = cfg.lr / 25, cfg.lr / 25 / 1e4
    warm = max(1, round(0.2 * total_steps) - 1)
    if step <= warm:
        return _cos(start, cfg.lr, step / warm)
    return _cos(cfg.lr, end, min(1.0, (step - warm) / max(1, total_steps - 1 - warm)))


def _cos(a: float, b: float, pct: float) -> float:
    return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)


def make_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def build_model(cfg: TrainConfig, device: torch.device):
    from archscope.loader import load_model
    from archscope.trace.inputs import first_in_channels

    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    loaded = load_model(cfg.model, device=str(device), **cfg.model_kwargs)
    side = cfg.resize or loaded.input_size
    if side is None:
        raise UsageError(f"{cfg.model} has no default input size: pass --resize SIDE")
    return loaded.module, side, first_in_channels(loaded.module) or 1


# --------------------------------------------------------------------------- setup

@dataclass
class Run:
    """Everything one training run holds."""

    cfg: TrainConfig
    dist: distributed.Dist
    device: torch.device
    amp: bool
    channels_last: bool
    train_set: Split
    test_set: Split
    model: torch.nn.Module  # the plain model (saved, evaluated)
    step_model: torch.nn.Module  # what the step calls: compiled and/or DistributedDataParallel
    optimizer: torch.optim.Optimizer
    side: int
    channels: int
    steps_per_epoch: int
    folder: Path
    console: Any
    history: List[Dict[str, Any]] = field(default_factory=list)
    best_acc: float = -1.0

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch

    def say(self, *args) -> None:
        if self.dist.main:
            self.console.print(*args)

    def state(self, epoch: int, step: int, sums) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "rng": ckpt.rng_state(),
            "epoch": epoch, "step": step,
            "partial": {k: v.detach().cpu() for k, v in sums.items()} if sums else None,
            "history": self.history, "best_test_acc": self.best_acc, "config": asdict(self.cfg),
        }


def setup(cfg: TrainConfig, dist: distributed.Dist, folder: Path, console) -> Run:
    device = distributed.start(dist, pick_device(cfg.device))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    model, side, channels = build_model(cfg, device)
    check_side(cfg.model, side, _meta_copy(cfg), channels)
    train_set, test_set = load(cfg.data_dir, device=str(device), download_if_missing=cfg.download and dist.main)
    if cfg.limit_train:
        train_set = Split(train_set.images[: cfg.limit_train], train_set.labels[: cfg.limit_train])
    if cfg.limit_test:
        test_set = Split(test_set.images[: cfg.limit_test], test_set.labels[: cfg.limit_test])
    # channels_last: cuDNN's fast path, and on CPU oneDNN's NHWC convolutions are ~20% faster at
    # 224×224 (measured on AlexNet); on LeNet-sized inputs it buys nothing, so CPU keeps NCHW there.
    channels_last = cuda or side >= 96
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if cfg.compile:
        step_model = torch.compile(step_model)
    if cfg.batch_size < dist.world:
        raise UsageError(f"--batch-size {cfg.batch_size} is the global batch: it must be at least the "
                         f"{dist.world} processes")
    return Run(cfg, dist, device, cuda if cfg.amp is None else cfg.amp, channels_last, train_set, test_set, model,
               step_model, make_optimizer(cfg, model.parameters()), side, channels,
               math.ceil(len(train_set) / cfg.batch_size), folder, console)


def _meta_copy(cfg: TrainConfig):
    from archscope.loader import load_model
    return load_model(cfg.model, device="meta", **cfg.model_kwargs).module


# --------------------------------------------------------------------------- one epoch

def train_epoch(run: Run, epoch: int, first: int, sums, stop: StopRequest, on_step) -> Optional[int]:
    """Steps ``first``.. of ``epoch``; returns the step to resume from if a stop was requested."""
    cfg, dist = run.cfg, run.dist
    order = epoch_order(len(run.train_set), cfg.seed, epoch, run.device)
    log_every = max(1, run.steps_per_epoch // 20)
    run.model.train()
    with _progress(run, epoch, first) as bar:
        for step, idx in batches(len(run.train_set), cfg.batch_size, order, first):
            global_n = len(idx)
            idx = distributed.shard(idx, dist)
            if len(idx) == 0:  # a last global batch smaller than the number of processes
                continue
            for group in run.optimizer.param_groups:
                group["lr"] = get_lr(epoch * run.steps_per_epoch + step, cfg, run.total_steps)
            x = prepare(run.train_set.images[idx], run.side, run.channels, run.channels_last)
            y = run.train_set.labels[idx]
            with autocast(run.device, run.amp):
                logits = run.step_model(x)
                # The sum over this shard, scaled so that DDP's average over ranks is the mean over
                # the global batch: results depend on the number of processes only through float order.
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing,
                                       reduction="sum") * (dist.world / global_n)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            # Statistics stay on the device: no host sync per batch.
            per_image = loss.detach() * global_n / dist.world / len(idx)
            sums["loss"] += per_image * len(idx)
            sums["correct"] += (logits.argmax(1) == y).sum()
            sums["seen"] += len(idx)
            sums["steps"] += 1
            bad = ~torch.isfinite(per_image) | (per_image > DIVERGED)
            sums["first_bad"] = torch.where((sums["first_bad"] < 0) & bad, sums["steps"], sums["first_bad"])
            sums["worst"] = torch.maximum(sums["worst"], torch.nan_to_num(per_image.float(), nan=float("inf")))
            if on_step is not None:
                on_step(epoch, step, stop)
            stopping = _agree_on_stop(stop, dist)
            if step == first or (step + 1) % log_every == 0 or step + 1 == run.steps_per_epoch or stopping:
                totals = _reduced(sums, dist)
                _check_finite(totals, epoch, cfg)
                bar.update(step + 1, totals)
            if stopping:
                return step + 1
    return None


def _agree_on_stop(stop: StopRequest, dist: distributed.Dist) -> bool:
    """Under torchrun every rank gets the signal, not necessarily at the same step: agree."""
    if not dist.active:
        return stop.signal_name is not None
    flag = distributed.reduce(torch.tensor([1 if stop.signal_name else 0]), dist, "max")
    if flag.item() and stop.signal_name is None:
        stop.signal_name = "SIGTERM"
    return bool(flag.item())


def _reduced(sums, dist: distributed.Dist) -> Dict[str, torch.Tensor]:
    if not dist.active:
        return sums
    # Sums add over ranks; the first bad step and the worst loss are maxima.
    return {k: distributed.reduce(v, dist, "max" if k in ("first_bad", "worst") else "sum") for k, v in sums.items()}


def _zero_sums(device) -> Dict[str, torch.Tensor]:
    return {"loss": torch.zeros((), device=device), "correct": torch.zeros((), dtype=torch.long, device=device),
            "seen": torch.zeros((), device=device), "steps": torch.zeros((), dtype=torch.long, device=device),
            "first_bad": torch.full((), -1, dtype=torch.long, device=device),
            "worst": torch.zeros((), device=device)}


def _check_finite(sums, epoch: int, cfg: TrainConfig) -> None:
    bad = int(sums["first_bad"].item())
    if bad < 0:
        return
    worst = float(sums["worst"].item())
    what = "became NaN/inf" if not math.isfinite(worst) else f"diverged (reached {worst:.3g})"
    advice = f"lower the learning rate (e.g. --lr {cfg.lr / 10:g})"
    if cfg.schedule != "onecycle":
        advice += " or warm it up with --schedule onecycle"
    raise TrainingError(f"the loss {what} at epoch {epoch + 1}, step {bad}: {advice}; "
                        f"nothing was saved for this epoch")


# --------------------------------------------------------------------------- train

def train(cfg: TrainConfig, console=None, on_step: Optional[Callable[[int, int, StopRequest], None]] = None,
          handle_signals: bool = False, resume: Optional[str] = None) -> TrainResult:
    """Train; ``resume`` is a last.pt to continue (its config comes from ``resume_config``).
    ``handle_signals`` installs Ctrl-C/SIGTERM checkpointing (the CLI asks for it; a library
    call does not, and the caller's handlers stay as they are). ``on_step(epoch, step, stop)``
    lets a caller (a test) request a stop. ``cfg`` itself is not modified."""
    from rich.console import Console

    console = console or Console(stderr=True)
    cfg = cfg.filled()
    validate(cfg)
    dist = distributed.from_env()
    resume_state = ckpt.load(resume) if resume is not None else None
    folder = RunDir(cfg.out, cfg.run_id, resuming=resume is not None)
    if dist.main:
        folder.claim()
    failed = True
    stop, previous = StopRequest(), {}
    try:
        run = setup(cfg, dist, folder.path, console)
        start_epoch, start_step, partial = 0, 0, None
        if resume_state is not None:
            ckpt.load_weights(run.model, resume_state["model"], resume, cfg.model)
            run.optimizer.load_state_dict(resume_state["optimizer"])
            ckpt.set_rng_state(resume_state["rng"])
            start_epoch, start_step = resume_state["epoch"], resume_state["step"]
            run.history, run.best_acc = resume_state["history"], resume_state["best_test_acc"]
            partial = resume_state["partial"]
            run.say(f"resuming {cfg.model} at epoch {start_epoch + 1}, step {start_step} of {run.steps_per_epoch}")
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, stop)
        run.say(f"training {cfg.model} on {run.device}{f' × {dist.world} processes' if dist.active else ''} "
                f"({'bf16 autocast' if run.amp else 'fp32'}): {len(run.train_set):,} images at {run.side}×{run.side}, "
                f"batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, schedule {cfg.schedule}, {cfg.epochs} epochs "
                f"→ {folder.path} (run {cfg.run_id})")
        result = _loop(run, start_epoch, start_step, partial, stop, on_step)
        failed = False
        return result
    except torch.cuda.OutOfMemoryError as error:
        raise TrainingError(f"CUDA out of memory at batch size {cfg.batch_size}: try "
                            f"--batch-size {max(1, cfg.batch_size // 2)} or a smaller --resize") from error
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if dist.main:
            folder.release(failed=failed)
        distributed.stop()


def _loop(run: Run, start_epoch: int, start_step: int, partial, stop: StopRequest, on_step) -> TrainResult:
    cfg, folder = run.cfg, run.folder
    for epoch in range(start_epoch, cfg.epochs):
        resumed_here = epoch == start_epoch
        first = start_step if resumed_here else 0
        sums = {k: v.to(run.device) for k, v in partial.items()} if partial and resumed_here else _zero_sums(run.device)
        sums.setdefault("worst", torch.zeros((), device=run.device))
        seen_before = sums["seen"].clone()
        timer = _Timer(run.device)
        stopped_at = train_epoch(run, epoch, first, sums, stop, on_step)
        train_time = timer.seconds()
        if stopped_at is not None:
            save(run, "last.pt", run.state(epoch, stopped_at, sums))
            last = folder / "last.pt"
            run.say(f"stopped by {stop.signal_name} at epoch {epoch + 1}, step {stopped_at} of {run.steps_per_epoch}; "
                    f"checkpoint saved to {last}. Resume with: archscope train {cfg.model} --resume {last}")
            return TrainResult(str(folder), run.history, run.best_acc, interrupted=True)
        totals = _reduced(sums, run.dist)
        _check_finite(totals, epoch, cfg)
        test = evaluate(run.model, run.test_set, run.side, cfg.batch_size * 2, run.amp, run.channels_last, run.channels)
        seen = totals["seen"].item()
        fresh = seen - _reduced({"seen": seen_before}, run.dist)["seen"].item()
        row = {
            "run_id": cfg.run_id, "epoch": epoch + 1, "train_loss": totals["loss"].item() / seen,
            "train_acc": totals["correct"].item() / seen, "test_loss": test.loss, "test_acc": test.accuracy,
            "time_s": timer.seconds(), "train_img_per_s": fresh / train_time if fresh and train_time > 0 else None,
            "lr": get_lr((epoch + 1) * run.steps_per_epoch - 1, cfg, run.total_steps),
        }
        run.history.append(row)
        best = test.accuracy > run.best_acc
        if best:
            run.best_acc = test.accuracy
        # Checkpoints first, then the metrics row: a row never describes an epoch that was not saved.
        if best:
            save(run, "best.pt", run.state(epoch + 1, 0, None))
        save(run, "last.pt", run.state(epoch + 1, 0, None))
        if run.dist.main:
            with open(folder / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        run.say(_epoch_line(row, cfg.epochs))
        partial = None
        if stop.signal_name:
            run.say(f"stopped by {stop.signal_name} after epoch {epoch + 1}; resume with: "
                    f"archscope train {cfg.model} --resume {folder / 'last.pt'}")
            return TrainResult(str(folder), run.history, run.best_acc, interrupted=True)
    note = plot_curves(run.history, folder / "curves.png") if run.dist.main else None
    return TrainResult(str(folder), run.history, run.best_acc, plot_note=note)


def save(run: Run, name: str, state: Dict[str, Any]) -> None:
    """Rank 0 writes; a write failure is one clear line and leaves the previous file intact."""
    if run.dist.main:
        ckpt.save(state, run.folder / name)


class _Timer:
    """Wall time; on CUDA, CUDA events (the GPU's own clock, synchronised once at the end)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.t0 = time.perf_counter()
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
            self.start.record()

    def seconds(self) -> float:
        if not self.cuda:
            return time.perf_counter() - self.t0
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1000


# --------------------------------------------------------------------------- resume

# What a resumed run may change: where and how fast it runs, and how long it lasts.
RESUMABLE = ("device", "data_dir", "compile", "out", "epochs", "download")


def resume_config(path: str, overrides: Dict[str, Any]) -> TrainConfig:
    """The saved run's config. ``overrides`` holds the options given on the command line (None:
    not given): device, data_dir, compile, out and epochs may change; any other option that
    differs from the saved one is refused, naming it and its saved value."""
    state = ckpt.load(path)
    saved = dict(state["config"])
    saved.setdefault("run_id", None)
    for key, value in overrides.items():
        if value is None or key in RESUMABLE:
            continue
        if key not in saved:
            raise UsageError(f"--{key.replace('_', '-')} is not an option of a training run")
        if value != saved[key]:
            flag = "--arg/--ratio" if key == "model_kwargs" else f"--{key.replace('_', '-')}"
            raise UsageError(f"{flag} {_show(value)} differs from the run in {path} ({key}={_show(saved[key])}): "
                             f"drop it to resume that run, or start a new run with another --out")
    for key in ("device", "data_dir", "compile"):
        if overrides.get(key) is not None:
            saved[key] = overrides[key]
    # The run continues in the folder the checkpoint is in now, wherever it was first written.
    saved["out"] = overrides.get("out") or str(Path(path).parent)
    epochs = overrides.get("epochs")
    if epochs is not None:
        if epochs < state["epoch"]:
            raise UsageError(f"--epochs {epochs}: the run in {path} has already done {state['epoch']} epochs")
        saved["epochs"] = epochs  # the learning rate is a function of the step: the plan simply gets longer
    return TrainConfig(**saved)


def _show(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v!r}" for k, v in value.items()) or "{}"
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- progress

def _epoch_line(row: Dict[str, Any], epochs: int) -> str:
    speed = f"{row['train_img_per_s']:,.0f} img/s" if row["train_img_per_s"] else "resumed at its end"
    return (f"epoch {row['epoch']:>3}/{epochs}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
            f"test acc {row['test_acc']:.4f}  time {row['time_s']:.1f} s  {speed}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60)} min"


class _progress:
    """A progress bar for one epoch with ETA and running loss, refreshed only when the loop syncs
    anyway (its first step, then every 1/20 epoch); after the first steps, one line estimates
    the whole run, and on CPU says how to make a long one fast."""

    ESTIMATE_AFTER = 5  # steps: the first ones include warm-up

    def __init__(self, run: Run, epoch: int, start: int):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.run, self.epoch, self.start = run, epoch, start
        self.t0 = time.perf_counter()
        self.estimated = epoch > 0 or start > 0 or not run.dist.main
        console = run.console
        self.progress = Progress(TextColumn(f"epoch {epoch + 1}/{run.cfg.epochs}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=console, transient=True,
                                 disable=not (console.is_terminal and run.dist.main))
        self.task = self.progress.add_task("train", total=run.steps_per_epoch, completed=start, stats="")

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def update(self, done: int, sums) -> None:
        seen = max(sums["seen"].item(), 1)
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = seen / elapsed
        stats = f"loss {sums['loss'].item() / seen:.4f}  acc {sums['correct'].item() / seen:.4f}  {rate:,.0f} img/s"
        self.progress.update(self.task, completed=done, stats=stats)
        if not self.estimated and done - self.start >= min(self.ESTIMATE_AFTER, self.run.steps_per_epoch):
            self.estimated = True
            self._estimate(done, elapsed)

    def _estimate(self, done: int, elapsed: float) -> None:
        run = self.run
        per_step = elapsed / max(done - self.start, 1)
        total = per_step * run.total_steps
        run.say(f"measured {run.cfg.batch_size / per_step:,.0f} img/s: ≈ {_duration(per_step * run.steps_per_epoch)} "
                f"an epoch, ≈ {_duration(total)} for {run.cfg.epochs} epochs on {run.device.type}")
        if run.device.type == "cpu" and total > 15 * 60:
            run.say(f"that is long on a CPU: a CUDA GPU makes it minutes; for a quick look, try "
                    f"--limit-train 5000 or a smaller --resize (the smallest {run.cfg.model} accepts is shown by "
                    f"'archscope check {run.cfg.model} --sizes 1..{run.side}')")
