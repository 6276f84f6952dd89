"""What a run says while it runs: the epoch's progress bar with its ETA, the first estimate of
the whole run, and one line per finished epoch."""
from __future__ import annotations

import time
from typing import Any, Dict


def start_line(run) -> str:
    cfg, dist = run.cfg, run.dist
    return (f"training {cfg.model} on {run.device}{f' × {dist.world} processes' if dist.active else ''} "
            f"({'bf16 autocast' if run.amp else 'fp32'}): {len(run.train_set):,} images at {run.side}×{run.side}, "
            f"batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, schedule {cfg.schedule}, {cfg.epochs} epochs "
            f"→ {run.folder} (run {cfg.run_id})")


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


class EpochProgress:
    """A progress bar for one epoch with ETA and running loss, refreshed only when the loop syncs
    anyway (its first step, then every 1/20 epoch); after the first steps, one line estimates
    the whole run, and on CPU says how to make a long one fast."""

    ESTIMATE_AFTER = 5  # steps: the first ones include warm-up

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
