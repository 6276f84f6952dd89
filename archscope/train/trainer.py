"""Train a zoo (or user) model on Fashion-MNIST. ``train`` reads top to bottom:

the config (recipe filled in, every option validated before anything is loaded) → the run's
folder (claimed, locked, writable) → ``setup``: device, data (the whole dataset on the
device), model, optimizer → resume, if asked → ``run_epochs``: for each epoch, the steps
(shuffled index batches, the learning rate a pure function of the global step), evaluation,
checkpoints first and then the metrics row → curves.png.

On CUDA: bf16 autocast, channels_last and cudnn.benchmark (channels_last on CPU too for inputs
of 96×96 and up), epochs timed with CUDA events. Under torchrun, DistributedDataParallel; only
rank 0 prints and writes.

Ctrl-C or SIGTERM (when the caller asks for it: the CLI does, a library call does not) finishes
the current step, saves ``last.pt`` with the position inside the epoch and exits; ``--resume``
continues exactly where it stopped. The pieces live in ``config``, ``model``, ``schedule``,
``loop``, ``progress``, ``device``, ``checkpoint``, ``rundir`` and ``distributed``.
"""
from __future__ import annotations

import signal
from typing import Callable, Optional

import torch

from archscope.errors import TrainingError
from archscope.train import checkpoint as ckpt
from archscope.train import distributed
from archscope.train.config import TrainConfig, TrainResult, validate
from archscope.train.loop import Position, StopRequest, restore, run_epochs, setup
from archscope.train.progress import start_line
from archscope.train.rundir import RunDir


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
        start = restore(run, resume_state, resume) if resume_state is not None else Position()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, stop)
        run.say(start_line(run))
        result = run_epochs(run, start.epoch, start.step, start.partial, stop, on_step)
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
