"""Train a zoo (or user) model on Fashion-MNIST. Reads top to bottom:

config → device → data (whole dataset on the device) → model → optimizer and schedule →
resume → epochs of (shuffled index batches → forward/backward, statistics kept on the
device) → evaluation → metrics.jsonl, last.pt / best.pt → curves.png.

On CUDA: bf16 autocast, channels_last and cudnn.benchmark (channels_last on CPU too for
inputs of 96×96 and up), and no host sync inside an
epoch except the progress bar's, every ``log_every`` steps. Ctrl-C or SIGTERM finishes the
current step, saves ``last.pt`` (mid-epoch position included) and exits; ``--resume``
continues exactly where it stopped.
"""
from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from archscope.errors import TrainingError, UsageError
from archscope.train import checkpoint as ckpt
from archscope.train.data import Split, batches, epoch_order, load, prepare
from archscope.train.evaluate import autocast, evaluate
from archscope.train.plot import plot_curves
from archscope.train.recipes import recipe_for


@dataclass
class TrainConfig:
    model: str
    epochs: int = 5
    batch_size: Optional[int] = None  # None: the model's recipe
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

    def filled(self) -> "TrainConfig":
        """A copy with every None replaced by the model's recipe."""
        r = recipe_for(self.model)
        d = asdict(self)
        for key in ("batch_size", "lr", "optimizer", "weight_decay", "schedule", "label_smoothing"):
            if d[key] is None:
                d[key] = getattr(r, key)
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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but no CUDA GPU is available: use --device cpu (or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown --device '{name}': use auto, cpu or cuda")
    return torch.device(name)


def make_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise UsageError(f"unknown --optimizer '{cfg.optimizer}': use adam or sgd")


def make_schedule(cfg: TrainConfig, optimizer, total_steps: int):
    if cfg.schedule == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.2)
    raise UsageError(f"unknown --schedule '{cfg.schedule}': use none, cosine or onecycle")


def validate(cfg: TrainConfig) -> None:
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("limit_train", "limit_test", "resize"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 < cfg.lr < torch.finfo(torch.float32).max:
        raise UsageError(f"--lr must be > 0 and below {torch.finfo(torch.float32).max:.3g}")


def build_model(cfg: TrainConfig, device: torch.device):
    from archscope.loader import load_model

    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    loaded = load_model(cfg.model, device=str(device), **cfg.model_kwargs)
    side = cfg.resize or loaded.input_size
    if side is None:
        raise UsageError(f"{cfg.model} has no default input size: pass --resize SIDE")
    from archscope.trace.inputs import first_in_channels
    return loaded.module, side, first_in_channels(loaded.module) or 1


def train(cfg: TrainConfig, console=None, on_step: Optional[Callable[[int, int, StopRequest], None]] = None,
          handle_signals: bool = True, resume: Optional[str] = None) -> TrainResult:
    """Train; ``resume`` is a last.pt to continue (its config comes from ``resume_config``);
    ``on_step(epoch, step, stop)`` lets a caller (a test) request a stop."""
    from rich.console import Console

    console = console or Console(stderr=True)
    if cfg.out is None:
        cfg.out = f"runs/{Path(cfg.model).stem.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = cfg.filled()
    validate(cfg)

    # ---- device and data
    device = pick_device(cfg.device)
    cuda = device.type == "cuda"
    amp = cuda if cfg.amp is None else cfg.amp
    if cuda:
        torch.backends.cudnn.benchmark = True
    train_set, test_set = load(cfg.data_dir, device=str(device), download_if_missing=cfg.download)
    if cfg.limit_train:
        train_set = Split(train_set.images[: cfg.limit_train], train_set.labels[: cfg.limit_train])
    if cfg.limit_test:
        test_set = Split(test_set.images[: cfg.limit_test], test_set.labels[: cfg.limit_test])

    # ---- model, optimizer, schedule
    model, side, channels = build_model(cfg, device)
    # channels_last: cuDNN's fast path, and on CPU oneDNN's NHWC convolutions are ~20% faster at
    # 224×224 (measured on AlexNet); on LeNet-sized inputs it buys nothing, so CPU keeps NCHW there.
    channels_last = cuda or side >= 96
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = make_schedule(cfg, optimizer, cfg.epochs * steps_per_epoch)
    step_model = torch.compile(model) if cfg.compile else model

    # ---- resume
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    start_epoch, start_step, history, best_acc = 0, 0, [], -1.0
    partial = None
    if resume is not None:
        resume_state = ckpt.load(resume)
        ckpt.load_weights(model, resume_state["model"], resume, cfg.model)
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        ckpt.set_rng_state(resume_state["rng"])
        start_epoch, start_step = resume_state["epoch"], resume_state["step"]
        history, best_acc = resume_state["history"], resume_state["best_test_acc"]
        partial = resume_state["partial"]
        console.print(f"resuming {cfg.model} at epoch {start_epoch + 1}, step {start_step} of {steps_per_epoch}")

    def state(epoch: int, step: int, sums) -> Dict[str, Any]:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": ckpt.rng_state(), "epoch": epoch, "step": step,
            "partial": {k: v.detach().cpu() for k, v in sums.items()} if sums else None,
            "history": history, "best_test_acc": best_acc, "config": asdict(cfg),
        }

    stop = StopRequest()
    previous = {}
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop)
    metrics_path = run_dir / "metrics.jsonl"
    log_every = max(1, steps_per_epoch // 20)
    console.print(f"training {cfg.model} on {device} ({'bf16 autocast' if amp else 'fp32'}): "
                  f"{len(train_set):,} images at {side}×{side}, batch {cfg.batch_size}, {cfg.optimizer} "
                  f"lr {cfg.lr:g}, schedule {cfg.schedule}, {cfg.epochs} epochs → {run_dir}")
    try:
        for epoch in range(start_epoch, cfg.epochs):
            order = epoch_order(len(train_set), cfg.seed, epoch, device)
            first = start_step if epoch == start_epoch else 0
            sums = _zero_sums(device) if not (partial and epoch == start_epoch) else {k: v.to(device) for k, v in partial.items()}
            model.train()
            t0 = time.perf_counter()
            with _progress(console, epoch, cfg.epochs, steps_per_epoch, first) as bar:
                for step, idx in batches(len(train_set), cfg.batch_size, order, first):
                    x = prepare(train_set.images[idx], side, channels, channels_last)
                    y = train_set.labels[idx]
                    with autocast(device, amp):
                        logits = step_model(x)
                        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    # Statistics stay on the device: no host sync per batch.
                    # (A Python number as the other operand is a kernel argument, not a host-to-device copy.)
                    sums["loss"] += loss.detach() * len(idx)
                    sums["correct"] += (logits.argmax(1) == y).sum()
                    sums["seen"] += len(idx)
                    sums["steps"] += 1
                    sums["first_bad"] = torch.where((sums["first_bad"] < 0) & ~torch.isfinite(loss.detach()),
                                                    sums["steps"], sums["first_bad"])
                    if on_step is not None:
                        on_step(epoch, step, stop)
                    if (step + 1) % log_every == 0 or step + 1 == steps_per_epoch or stop.signal_name:
                        _check_finite(sums, epoch, cfg)
                        bar.update(step + 1, sums, time.perf_counter() - t0)
                    if stop.signal_name:
                        ckpt.save(state(epoch, step + 1, sums), run_dir / "last.pt")
                        console.print(f"stopped by {stop.signal_name} at epoch {epoch + 1}, step {step + 1} of "
                                      f"{steps_per_epoch}; checkpoint saved to {run_dir / 'last.pt'}. Resume with: "
                                      f"archscope train {cfg.model} --resume {run_dir / 'last.pt'}")
                        return TrainResult(str(run_dir), history, best_acc, interrupted=True)
            _check_finite(sums, epoch, cfg)
            train_time = time.perf_counter() - t0
            test = evaluate(step_model, test_set, side, cfg.batch_size * 2, amp, channels_last, channels)
            seen = sums["seen"].item()
            row = {
                "epoch": epoch + 1, "train_loss": sums["loss"].item() / seen, "train_acc": sums["correct"].item() / seen,
                "test_loss": test.loss, "test_acc": test.accuracy, "time_s": time.perf_counter() - t0,
                "train_img_per_s": (seen - (partial["seen"].item() if partial and epoch == start_epoch else 0)) / train_time,
                "lr": scheduler.get_last_lr()[0],
            }
            history.append(row)
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            console.print(_epoch_line(row, cfg.epochs))
            if test.accuracy > best_acc:
                best_acc = test.accuracy
                ckpt.save(state(epoch + 1, 0, None), run_dir / "best.pt")
            ckpt.save(state(epoch + 1, 0, None), run_dir / "last.pt")
            partial = None
            if stop.signal_name:
                console.print(f"stopped by {stop.signal_name} after epoch {epoch + 1}; resume with: "
                              f"archscope train {cfg.model} --resume {run_dir / 'last.pt'}")
                return TrainResult(str(run_dir), history, best_acc, interrupted=True)
    except torch.cuda.OutOfMemoryError as error:
        raise TrainingError(f"CUDA out of memory at batch size {cfg.batch_size}, input {side}×{side}: try "
                            f"--batch-size {max(1, cfg.batch_size // 2)} or a smaller --resize") from error
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    note = plot_curves(history, run_dir / "curves.png")
    return TrainResult(str(run_dir), history, best_acc, plot_note=note)


def resume_config(path: str, overrides: Dict[str, Any]) -> TrainConfig:
    """The saved run's config; ``overrides`` may change where and how fast it runs (device,
    data_dir, compile, out) and, with a constant learning rate, how many epochs it lasts."""
    state = ckpt.load(path)
    saved = dict(state["config"])
    for key in ("device", "data_dir", "compile"):
        if overrides.get(key) is not None:
            saved[key] = overrides[key]
    # The run continues in the folder the checkpoint is in now, wherever it was first written.
    saved["out"] = overrides.get("out") or str(Path(path).parent)
    epochs = overrides.get("epochs")
    if epochs is not None and epochs != saved["epochs"]:
        # More epochs extend a constant learning rate exactly; a cosine or one-cycle schedule was
        # planned for the original length, and stretching it would silently change the run.
        if epochs < state["epoch"]:
            raise UsageError(f"--epochs {epochs}: the run in {path} has already done {state['epoch']} epochs")
        if saved["schedule"] != "none":
            raise UsageError(f"--epochs cannot change on resume with the '{saved['schedule']}' schedule, planned for "
                             f"{saved['epochs']} epochs; start a new run, or train with --schedule none to extend later")
        saved["epochs"] = epochs
    return TrainConfig(**saved)


def _zero_sums(device) -> Dict[str, torch.Tensor]:
    return {"loss": torch.zeros((), device=device), "correct": torch.zeros((), dtype=torch.long, device=device),
            "seen": torch.zeros((), device=device), "steps": torch.zeros((), dtype=torch.long, device=device),
            "first_bad": torch.full((), -1, dtype=torch.long, device=device)}


def _check_finite(sums, epoch: int, cfg: TrainConfig) -> None:
    bad = int(sums["first_bad"].item())
    if bad >= 0:
        raise TrainingError(f"the loss became NaN/inf at epoch {epoch + 1}, step {bad}: lower the learning rate "
                            f"(e.g. --lr {cfg.lr / 10:g}) or use --schedule onecycle; nothing was saved for this epoch")


def _epoch_line(row: Dict[str, Any], epochs: int) -> str:
    return (f"epoch {row['epoch']:>3}/{epochs}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
            f"test acc {row['test_acc']:.4f}  time {row['time_s']:.1f} s  {row['train_img_per_s']:,.0f} img/s")


class _progress:
    """A rich progress bar for one epoch, refreshed only when the loop has synced anyway."""

    def __init__(self, console, epoch, epochs, steps, start):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console,
                                 transient=True, disable=not console.is_terminal)
        self.task = self.progress.add_task("train", total=steps, completed=start, stats="")

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def update(self, done, sums, seconds):
        seen = max(sums["seen"].item(), 1)
        stats = f"loss {sums['loss'].item() / seen:.4f}  acc {sums['correct'].item() / seen:.4f}  {seen / max(seconds, 1e-9):,.0f} img/s"
        self.progress.update(self.task, completed=done, stats=stats)
