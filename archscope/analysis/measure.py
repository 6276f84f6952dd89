"""Seconds per call path, measured: the hooks that name the running module drive a stopwatch.

The tracer's ``Recorder`` tells a counter, at every module entry and exit (and, in backward,
before every autograd node), whose ops run now. ``Stopwatch`` takes that place: each switch
charges the time since the previous one to the previous owner, so the seconds of a forward
(and backward) are partitioned by call path exactly as FLOPs are. On CUDA a switch records
an event in the stream and the gaps are read after one synchronisation, so the hooks never
stall the GPU.

The hooks themselves cost time. That cost is measured apart, on a stack of ``nn.Identity``
(hooked against plain), and taken off each path per call, so the rows can be checked against
a whole forward timed without any hooks.
"""
from __future__ import annotations

import time
from statistics import median, quantiles
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

from archscope.analysis.modes import running_mode
from archscope.analysis.run import forward
from archscope.inputs import tensors_in


class Stopwatch:
    """A listener of the Recorder (``PathListener``): each change of the current call path starts
    charging the time to the new one; ``seconds()`` is the time per path (None: outside any module)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self._key = None
        self._marks: List[tuple] = []
        self._start = None

    def _now(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _gap(self, start, end) -> float:
        return start.elapsed_time(end) / 1e3 if self.cuda else end - start

    def path_changed(self, path) -> None:
        self._marks.append((self._key, self._now()))  # the time until now was the previous owner's
        self._key = path

    def __enter__(self):
        self._key, self._marks, self._start = None, [], self._now()
        return self

    def __exit__(self, *exc) -> None:
        self._marks.append((self._key, self._now()))

    def seconds(self) -> Dict[Any, float]:
        if self.cuda:
            torch.cuda.synchronize()
        out: Dict[Any, float] = {}
        previous = self._start
        for key, mark in self._marks:
            out[key] = out.get(key, 0.0) + self._gap(previous, mark)
            previous = mark
        return out


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(device: str, run: Callable[[], Any]) -> float:
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def hook_cost(device: str, repeats: int = 20) -> float:
    """Seconds the hooks add to one module call, on a stack of 64 ``nn.Identity`` (whose own
    work is nothing but the call)."""
    stack = nn.Sequential(*[nn.Identity() for _ in range(64)]).to(device)
    x = torch.zeros(1, device=device)
    plain = median(_timed(device, lambda: _plain_step(stack, (x,), {}, False, None)) for _ in range(repeats))
    hooked = median(_timed(device, lambda: _watched(stack, (x,), {}, device, Stopwatch(device)))
                    for _ in range(repeats))
    return max(0.0, (hooked - plain) / 65)  # 64 identities and the Sequential itself


def _watched(module: nn.Module, args, kwargs, device: str, watch: Stopwatch, train: bool = False):
    """One hooked forward (and backward) with the stopwatch listening to the recorder."""
    with watch:
        _, recorder = forward(module, args, kwargs, device, listeners=(watch,), train=train)
    return recorder


def _loss(out) -> torch.Tensor:
    leaves = [t for t in tensors_in(out) if t.requires_grad and t.is_floating_point()]
    return sum(t.float().sum() for t in leaves)


def _plain_step(module: nn.Module, args, kwargs, train: bool, optimizer) -> None:
    """The forward (and, in training, backward + optimizer step) without any hook."""
    with running_mode(module, train), (torch.enable_grad() if train else torch.no_grad()):
        out = module(*args, **kwargs)
        if train:
            _loss(out).backward()
    if train and optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def measure(module: nn.Module, args, kwargs, device: str, train: bool, optimizer: Optional[torch.optim.Optimizer],
            warmup: int = 2, repeats: int = 5, budget_s: float = 2.0):
    """Median seconds per call path (``None``: outside any module; ``"optimizer"``: its step), the
    median of the same step timed whole without hooks, and the quartiles of that step's time
    (their spread says how steady the machine was). Hooked and plain runs alternate, so
    both see the same machine; at least ``repeats`` of each, more while within ``budget_s``."""
    per_call = hook_cost(device)
    for _ in range(warmup):
        _plain_step(module, args, kwargs, train, optimizer)
    samples: Dict[Any, List[float]] = {}
    whole: List[float] = []
    started = time.perf_counter()
    calls: Dict[str, int] = {}
    while len(whole) < repeats or (time.perf_counter() - started < budget_s and len(whole) < 50):
        watch = Stopwatch(device)
        synchronize(device)
        recorder = _watched(module, args, kwargs, device, watch, train)
        seconds = watch.seconds()
        if train and optimizer is not None:
            seconds["optimizer"] = _timed(device, lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True)))
        calls = recorder.calls
        for key, value in seconds.items():
            samples.setdefault(key, []).append(value)
        whole.append(_timed(device, lambda: _plain_step(module, args, kwargs, train, optimizer)))
    per_path = {key: median(values) for key, values in samples.items()}
    for path, n in calls.items():  # the hooks' own cost: a call's pre-hook runs on its caller's time
        caller = (path.rpartition(".")[0] if "." in path else "") if path else None
        for key in (path, caller):
            if key in per_path:
                per_path[key] = max(0.0, per_path[key] - n * per_call / 2)
    # The spread is the middle half of the whole-step times (one slow first run is not unsteadiness).
    spread = tuple(quantiles(whole, n=4)[::2]) if len(whole) >= 4 else (min(whole), max(whole))
    return per_path, median(whole), per_call, len(whole), spread
