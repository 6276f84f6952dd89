"""Sweeps: ``time`` or ``memory`` at several batch sizes (and image sides), one point each.

``--batch 1,8,64,256`` (or ``1..256``: the powers of two from 1 to 256) and ``--size 28,56``
give a grid; each point is the same command at that batch and side, so every figure of a
sweep is one a single run would print.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from archscope.analysis.memory import memory, parse_bytes
from archscope.analysis.records import Result
from archscope.analysis.timing import time_model
from archscope.errors import UsageError


def parse_points(text: Optional[str], what: str) -> List[Optional[int]]:
    """``"32"`` → [32]; ``"1,8,64"`` → [1, 8, 64]; ``"1..256"`` → powers of two 1, 2, ..., 256; None → [None]."""
    if text is None:
        return [None]
    text = str(text).strip()
    try:
        if ".." in text:
            low, high = (int(x) for x in text.split(".."))
            if low < 1 or high < low:
                raise ValueError
            points, b = [], low
            while b <= high:
                points.append(b)
                b *= 2
            return points
        points = [int(x) for x in text.split(",") if x.strip()]
        if not points or min(points) < 1:
            raise ValueError
        return points
    except ValueError:
        raise UsageError(f"bad {what} '{text}': give N, a list N,M,... or a range A..B (powers of two), "
                         "all positive") from None


@dataclass(repr=False)
class Sweep(Result):
    """One point per (side, batch): the figures of ``kind`` (``"memory"`` or ``"time"``) there."""

    model: str
    kind: str
    points: List[Dict[str, Any]] = field(default_factory=list)
    capacity: Optional[int] = None  # bytes the device holds (memory sweeps), for the plot's line
    capacity_label: Optional[str] = None
    hardware: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "capacity": self.capacity,
                "capacity_label": self.capacity_label, "hardware": self.hardware, "points": self.points}

    def summary(self) -> str:
        return f"{self.model}: {self.kind} at {len(self.points)} points"

    def largest_fitting(self, size=None) -> Optional[int]:
        """The largest batch of the sweep whose training step fits the capacity."""
        if self.capacity is None or self.kind != "memory":
            return None
        fitting = [p["batch"] for p in self.points if p["size"] == size and p["training_bytes"] <= self.capacity]
        return max(fitting) if fitting else 0


def _grid(batches, sizes, one: Callable[[Optional[int], Optional[int]], Dict[str, Any]]):
    return [one(b, s) for s in sizes for b in batches]


def sweep_memory(model: Any, batches: List[int], sizes: List[Optional[int]], input_size=None,
                 capacity: Optional[str] = None, **options) -> Sweep:
    label = None

    def one(b, s):
        nonlocal label
        r = memory(model, batch=b, input_size=s if s is not None else input_size, **options)
        label = r.model
        point = {"batch": r.batch, "size": s, "input_shape": r.input_shape, "training_bytes": r.training_bytes,
                 "inference_bytes": r.inference_bytes, "activations_bytes": r.activations_bytes}
        if r.sharding is not None:  # per rank: its states and its batch's activations
            point["per_rank_bytes"] = r.sharding.states_bytes + r.activations_bytes
            point["training_bytes"] = point["per_rank_bytes"]
        return point

    points = _grid(batches, sizes, one)
    budget = parse_bytes(capacity) if capacity else None
    return Sweep(label, "memory", points, budget, capacity)


def sweep_time(model: Any, batches: List[int], sizes: List[Optional[int]], input_size=None, **options) -> Sweep:
    label, hardware = None, None

    def one(b, s):
        nonlocal label, hardware
        r = time_model(model, batch=b, input_size=s if s is not None else input_size, **options)
        label, hardware = r.model, r.hardware
        step = r.total().predicted_s
        point = {"batch": r.batch, "size": s, "input_shape": r.input_shape, "predicted_step_s": step,
                 "predicted_images_per_s": r.batch / step if step else None, "predicted_epoch_s": r.predicted_epoch_s}
        if r.whole_measured_s is not None:
            point.update(measured_step_s=r.whole_measured_s, measured_images_per_s=r.batch / r.whole_measured_s)
        return point

    points = _grid(batches, sizes, one)
    return Sweep(label, "time", points, hardware.memory if hardware else None,
                 hardware.description if hardware and hardware.memory else None, hardware.name if hardware else None)
