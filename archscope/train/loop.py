"""The training loop: a run's state (``Run``, built by ``setup``), one epoch of steps
(``train_epoch``), and the epochs with evaluation and checkpoints (``run_epochs``).

Statistics stay on the device; the host syncs only when the progress bar refreshes (its first
step, then every 1/20 epoch) and at the end of an epoch. Under torchrun each rank takes a
disjoint shard of every global batch; sums are reduced over ranks where the host syncs.
"""
from __future__ import annotations

import json
import math
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from archscope.errors import TrainingError, UsageError
from archscope.train import checkpoint as ckpt
from archscope.train import distributed
from archscope.train.config import TrainConfig, TrainResult
from archscope.train.data import Split, batches, epoch_order, load, prepare
from archscope.train.device import Timer, autocast, pick_device
from archscope.train.evaluate import evaluate
from archscope.train.model import build_model, check_side, meta_model
from archscope.train.plot import plot_curves
from archscope.train.progress import EpochProgress, epoch_line
from archscope.train.schedule import get_lr, make_optimizer

# A cross-entropy over 10 classes starts near ln 10 = 2.3; far above that the run has diverged.
DIVERGED = 50 * math.log(10)


class StopRequest:
    """Set by SIGINT/SIGTERM (or a test): the loop stops after the current step."""

    def __init__(self):
        self.signal_name: Optional[str] = None

    def __call__(self, signum, frame):
        if self.signal_name is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


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
    points: List[tuple] = field(default_factory=list)  # (epochs done, running loss, running accuracy) per log point
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


@dataclass
class Position:
    """Where a run starts: an epoch, a step inside it, and that epoch's partial sums (resuming)."""

    epoch: int = 0
    step: int = 0
    partial: Optional[Dict[str, torch.Tensor]] = None


def restore(run: Run, state: Dict[str, Any], path: str) -> Position:
    """Load a checkpoint's weights, optimizer, RNG and history into ``run``; where to go on from."""
    ckpt.load_weights(run.model, state["model"], path, run.cfg.model)
    run.optimizer.load_state_dict(state["optimizer"])
    ckpt.set_rng_state(state["rng"])
    run.history, run.best_acc = state["history"], state["best_test_acc"]
    run.say(f"resuming {run.cfg.model} at epoch {state['epoch'] + 1}, step {state['step']} of {run.steps_per_epoch}")
    return Position(state["epoch"], state["step"], state["partial"])


def setup(cfg: TrainConfig, dist: distributed.Dist, folder: Path, console) -> Run:
    device = distributed.start(dist, pick_device(cfg.device))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    model, side, channels = build_model(cfg, device)
    check_side(cfg.model, side, meta_model(cfg.model, cfg.model_kwargs), channels)
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


def train_epoch(run: Run, epoch: int, first: int, sums, stop: StopRequest, on_step) -> Optional[int]:
    """Steps ``first``.. of ``epoch``; returns the step to resume from if a stop was requested."""
    cfg, dist = run.cfg, run.dist
    order = epoch_order(len(run.train_set), cfg.seed, epoch, run.device)
    log_every = max(1, run.steps_per_epoch // 20)
    run.model.train()
    with EpochProgress(run, epoch, first) as bar:
        for step, idx in batches(len(run.train_set), cfg.batch_size, order, first):
            global_n = len(idx)
            mine = distributed.shard(idx, dist)
            # A last global batch smaller than the number of processes leaves some ranks nothing. They
            # still take the step, on one image whose loss counts zero: every rank must enter the same
            # collectives (DDP's gradient all-reduce, the log points' reductions) or the group hangs.
            counts = 1.0 if len(mine) else 0.0
            idx = mine if len(mine) else idx[:1]
            for group in run.optimizer.param_groups:
                group["lr"] = get_lr(epoch * run.steps_per_epoch + step, cfg, run.total_steps)
            x = prepare(run.train_set.images[idx], run.side, run.channels, run.channels_last)
            y = run.train_set.labels[idx]
            with autocast(run.device, run.amp):
                logits = run.step_model(x)
                # The sum over this shard, scaled so that DDP's average over ranks is the mean over
                # the global batch: results depend on the number of processes only through float order.
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing,
                                       reduction="sum") * (dist.world / global_n) * counts
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            # Statistics stay on the device: no host sync per batch.
            per_image = loss.detach() * global_n / dist.world / len(idx)
            sums["loss"] += per_image * len(idx)
            sums["correct"] += (logits.argmax(1) == y).sum() * int(counts)
            sums["seen"] += len(idx) * int(counts)
            sums["steps"] += int(counts)
            bad = ~torch.isfinite(per_image) | (per_image > DIVERGED)
            sums["first_bad"] = torch.where((sums["first_bad"] < 0) & bad, sums["steps"], sums["first_bad"])
            sums["worst"] = torch.maximum(sums["worst"], torch.nan_to_num(per_image.float(), nan=float("inf")))
            if on_step is not None:
                on_step(epoch, step, stop)
            # The host syncs only here: at the first step, every 1/20 epoch and the last step. Under
            # torchrun the ranks also agree on a stop only here (every rank reaches the same points),
            # so Ctrl-C takes effect within 1/20 epoch; alone, a stop is seen at once.
            log_point = step == first or (step + 1) % log_every == 0 or step + 1 == run.steps_per_epoch
            stopping = False
            if log_point or (not dist.active and stop.signal_name is not None):
                stopping = _agree_on_stop(stop, dist, run.device)
                totals = _reduced(sums, dist)
                _check_finite(totals, epoch, cfg)
                running = bar.update(step + 1, totals)
                if running is not None:  # for curves.png: the epoch's running loss and accuracy so far
                    run.points.append((epoch + (step + 1) / run.steps_per_epoch, *running))
            if stopping:
                return step + 1
    return None


def _agree_on_stop(stop: StopRequest, dist: distributed.Dist, device: torch.device) -> bool:
    """Under torchrun every rank gets the signal, not necessarily at the same step: agree. The flag
    lives on the training device: NCCL reduces CUDA tensors only."""
    if not dist.active:
        return stop.signal_name is not None
    flag = distributed.reduce(torch.tensor([1 if stop.signal_name else 0], device=device), dist, "max")
    agreed = bool(flag.item())
    if agreed and stop.signal_name is None:
        stop.signal_name = "SIGTERM"
    return agreed


def _reduced(sums, dist: distributed.Dist) -> Dict[str, torch.Tensor]:
    """The sums of every rank: losses, counts and steps add; the worst loss is the maximum; the
    first bad step is the earliest any rank saw (a rank without one reports -1)."""
    if not dist.active:
        return sums
    out = {k: distributed.reduce(v, dist, "max" if k == "worst" else "sum") for k, v in sums.items() if k != "first_bad"}
    if "first_bad" not in sums:
        return out
    never = torch.iinfo(torch.long).max
    bad = sums["first_bad"]
    earliest = distributed.reduce(torch.where(bad < 0, torch.full_like(bad, never), bad), dist, "min")
    out["first_bad"] = torch.where(earliest == never, torch.full_like(bad, -1), earliest)
    return out


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


def run_epochs(run: Run, start_epoch: int, start_step: int, partial, stop: StopRequest, on_step) -> TrainResult:
    cfg, folder = run.cfg, run.folder
    for epoch in range(start_epoch, cfg.epochs):
        resumed_here = epoch == start_epoch
        first = start_step if resumed_here else 0
        sums = {k: v.to(run.device) for k, v in partial.items()} if partial and resumed_here else _zero_sums(run.device)
        sums.setdefault("worst", torch.zeros((), device=run.device))
        seen_before = sums["seen"].clone()
        timer = Timer(run.device)
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
        run.say(epoch_line(row, cfg.epochs))
        partial = None
        if stop.signal_name:
            run.say(f"stopped by {stop.signal_name} after epoch {epoch + 1}; resume with: "
                    f"archscope train {cfg.model} --resume {folder / 'last.pt'}")
            return TrainResult(str(folder), run.history, run.best_acc, interrupted=True)
    title = f"{run.cfg.model} on Fashion-MNIST, {len(run.history)} epoch{'s' * (len(run.history) != 1)}"
    note = plot_curves(run.history, folder / "curves.png", title, run.points) if run.dist.main else None
    return TrainResult(str(folder), run.history, run.best_acc, plot_note=note, points=list(run.points))


def save(run: Run, name: str, state: Dict[str, Any]) -> None:
    """Rank 0 writes; a write failure is one clear line and leaves the previous file intact."""
    if run.dist.main:
        ckpt.save(state, run.folder / name)
