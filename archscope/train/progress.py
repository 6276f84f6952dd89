"""What a run says while it runs: the epoch's progress bar with its ETA, the first estimate of
the whole run, and one line per finished epoch."""
from __future__ import annotations

import time
from typing import Any, Dict


def start_line(run) -> str:
    cfg, dist = run.cfg, run.dist
    return (f"training {cfg.model} on {run.device}{f' × {dist.world} processes' if dist.active else ''} "
            f"({'bf16 autocast' if run.amp else 'fp32'}): {len(run.train_set):,} images at {run.side}×{run.side}, "
            f"batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, schedule {cfg.schedule}, {plural(cfg.epochs, 'epoch')} "
            f"→ {run.folder} (run {cfg.run_id})")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def estimate(steps_timed: int, seconds: float, steps_per_epoch: int, steps_left: int) -> tuple:
    """(seconds an epoch, seconds for the steps left) from ``steps_timed`` steps that took
    ``seconds`` after the warm-up (the first step, which pays for allocation and kernel choice)."""
    per_step = seconds / max(steps_timed, 1)
    return per_step * steps_per_epoch, per_step * steps_left


def epoch_line(row: Dict[str, Any], epochs: int) -> str:
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


def predicted_line(run, measured: float) -> str:
    """What ``archscope time`` predicts for this run's training step on this device, beside the
    measured rate: every training run checks the time model."""
    from archscope.analysis.hardware import hardware_for
    from archscope.analysis.timing import time_model

    try:
        hardware = hardware_for(run.device)
        if hardware is None:
            return f"no time prediction: {run.device} is not in 'archscope time --hw list'"
        optimizer = "sgd-momentum" if run.cfg.optimizer == "sgd" else run.cfg.optimizer
        report = time_model(run.model, input_size=(run.cfg.batch_size, run.channels, run.side, run.side), train=True,
                            hw=hardware.name if hardware.name != "cpu" else "cpu",
                            dtype="bf16" if run.amp else "fp32", optimizer=optimizer)
    except Exception as error:  # noqa: BLE001 - a prediction never stops a training run
        return f"no time prediction: {type(error).__name__}: {error}"
    predicted = run.cfg.batch_size / report.total().predicted_s
    return (f"predicted {predicted:,.0f} img/s on {hardware.description} by 'archscope time' "
            f"(measured/predicted {measured / predicted:.2f})")


class EpochProgress:
    """A progress bar for one epoch with ETA and running loss, refreshed only when the loop syncs
    anyway (its first step, then every 1/20 epoch); after the first steps, one line estimates
    the whole run, and on CPU says how to make a long one fast."""

    ESTIMATE_AFTER = 5  # steps timed after the first (warm-up) step before the run is estimated
    REVISE_BY = 0.3  # a later estimate this far off the first one is said again, once

    def __init__(self, run, epoch: int, start: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.run, self.epoch, self.start = run, epoch, start
        self.t0 = time.perf_counter()
        self.estimated = epoch > 0 or start > 0 or not run.dist.main
        self.warm = None  # (time, steps done) at the first refresh: the clock starts after the warm-up step
        self.first_estimate = None
        self.revised = False
        console = run.console
        self.progress = Progress(TextColumn(f"epoch {epoch + 1}/{run.cfg.epochs}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=console, transient=True,
                                 disable=not (console.is_terminal and run.dist.main))
        self.task = self.progress.add_task("train", total=run.steps_per_epoch, completed=start, stats="")

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def update(self, done: int, sums):
        """Show the epoch so far; returns its running (loss, accuracy), read once here (a host sync)."""
        seen = max(sums["seen"].item(), 1)
        now = time.perf_counter()
        elapsed = max(now - self.t0, 1e-9)
        rate = seen / elapsed
        loss, acc = sums["loss"].item() / seen, sums["correct"].item() / seen
        stats = f"loss {loss:.4f}  acc {acc:.4f}  {rate:,.0f} img/s"
        self.progress.update(self.task, completed=done, stats=stats)
        self._predict(now, done)
        return loss, acc

    def _predict(self, now: float, done: int) -> None:
        if self.warm is None:
            self.warm = (now, done)
            return
        timed = done - self.warm[1]
        if timed <= 0:
            return
        run = self.run
        per_epoch, rest = estimate(timed, now - self.warm[0], run.steps_per_epoch,
                                   run.total_steps - (self.epoch * run.steps_per_epoch + done))
        if not self.estimated and timed >= min(self.ESTIMATE_AFTER, run.steps_per_epoch - 1):
            self.estimated = True
            self.first_estimate = per_epoch
            self._estimate(per_epoch, rest + (done * per_epoch / run.steps_per_epoch), timed, now - self.warm[0])
        elif (self.first_estimate and not self.revised and done >= run.steps_per_epoch // 2
              and abs(per_epoch - self.first_estimate) > self.REVISE_BY * self.first_estimate):
            self.revised = True
            run.say(f"revised: ≈ {_duration(per_epoch)} an epoch, ≈ {_duration(rest)} to go")

    def _estimate(self, per_epoch: float, total: float, timed: int, seconds: float) -> None:
        run = self.run
        rate = run.cfg.batch_size * timed / seconds
        run.say(f"measured {rate:,.0f} img/s after warm-up: ≈ {_duration(per_epoch)} an epoch, "
                f"≈ {_duration(total)} for {plural(run.cfg.epochs, 'epoch')} on {run.device.type}")
        run.say(predicted_line(run, rate))
        if run.device.type == "cpu" and total > 15 * 60:
            run.say(f"that is long on a CPU: a CUDA GPU makes it minutes; for a quick look, try "
                    f"--limit-train 5000 or a smaller --resize (the smallest {run.cfg.model} accepts is shown by "
                    f"'archscope check {run.cfg.model} --sizes 1..{run.side}')")
