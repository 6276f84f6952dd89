"""Which square input sides a model accepts, found by running it on the meta device.

Each probe is one forward on meta tensors (milliseconds, no memory). Conv/pool output
sides never shrink when the input grows, so "gets through every conv/pool layer" and
"the width reaching a Linear" are monotone in the side and can be bisected; the full
``scan`` probes every side of a range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from archscope.analysis.diagnose.blame import classify, failing_layer
from archscope.analysis.run import forward
from archscope.errors import UsageError

MAX_SIDE = 8192  # the largest side the solver and a scan try
MAX_SCAN = 4096  # the most sides one scan probes (each probe is one meta forward)


@dataclass
class Probe:
    side: int
    ok: bool
    kind: Optional[str] = None  # why it failed: width | channels | spatial | other
    layer: Optional[str] = None
    widths: Dict[str, int] = field(default_factory=dict)  # Linear's call path → features that reached it
    in_features: Dict[str, int] = field(default_factory=dict)  # Linear's call path → its in_features
    reached: set = field(default_factory=set)  # ids of the Linears this probe reached


def _shape(shape: Sequence[int], side: int) -> Tuple[int, ...]:
    return (shape[0], shape[1], side, side)


def probe(model: nn.Module, shape: Sequence[int], side: int) -> Probe:
    """Run the model once on meta at ``side``×``side``."""
    x = torch.empty(_shape(shape, side), device="meta")
    try:
        _, rec = forward(model, (x,), {}, "meta")
    except Exception as error:  # noqa: BLE001 - a failing side is an answer, not an error
        rec = error.__archscope_recorder__  # forward attaches its recorder to every exception
        found = failing_layer(error)
        kind, layer = ("other", None)
        if found is not None:
            layer = found[0]
            kind = classify(found[1], found[2]) or "other"
        return Probe(side, False, kind, layer, *_widths(rec))
    return Probe(side, True, None, None, *_widths(rec))


def _widths(rec) -> Tuple[Dict[str, int], Dict[str, int], set]:
    """Per Linear reached, by the call path it was reached through (a Linear shared by two
    Sequentials is known by the one that called it): the features that arrived, its in_features."""
    widths, expected, reached = {}, {}, set()
    for path, module in rec.modules.items():
        shape = rec.inputs.get(path)
        if isinstance(module, nn.Linear) and shape and isinstance(shape[0], int):
            widths[path], expected[path] = shape[-1], module.in_features
            reached.add(id(module))
    return widths, expected, reached


def _passes_spatial(model, shape, side) -> bool:
    p = probe(model, shape, side)
    return p.ok or p.kind != "spatial"


def smallest_side(model: nn.Module, shape: Sequence[int]) -> Optional[int]:
    """The smallest square side that gets through every conv/pool layer (bisection)."""
    hi = 1
    while not _passes_spatial(model, shape, hi):
        hi *= 2
        if hi > MAX_SIDE:
            return None
    lo = hi // 2  # fails (or hi == 1)
    if hi == 1:
        return 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _passes_spatial(model, shape, mid):
            hi = mid
        else:
            lo = mid
    return hi


def first_width_failure(model, shape, side) -> Optional[Tuple[str, int]]:
    """(Linear name, its in_features) if the model fails at ``side`` on a Linear's width."""
    p = probe(model, shape, side)
    if p.kind != "width":
        return None
    return p.layer, p.in_features.get(p.layer, p.widths.get(p.layer))


def sides_giving_width(model: nn.Module, shape: Sequence[int], layer: str, want: int) -> Optional[Tuple[int, int]]:
    """The range of square sides at which exactly ``want`` features reach ``layer``."""
    start = smallest_side(model, shape)
    if start is None:
        return None

    def width(side: int) -> int:
        return probe(model, shape, side).widths.get(layer, -1)

    def first_at_least(target: int) -> int:
        lo, hi = start, start
        while width(hi) < target:
            lo, hi = hi, hi * 2
            if hi > MAX_SIDE:
                return MAX_SIDE + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if width(mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        return lo

    lo = first_at_least(want)
    if lo > MAX_SIDE or width(lo) != want:
        return None
    hi = first_at_least(want + 1) - 1
    return lo, min(hi, MAX_SIDE)


def smallest_running_side(model: nn.Module, shape: Sequence[int]) -> Tuple[Optional[int], Optional[int]]:
    """(lo, hi): the smallest square side at which the whole model runs and, when a Linear's
    width bounds it, the largest; (lo, None) when every larger side runs too; (None, None) if none."""
    start = smallest_side(model, shape)
    if start is None:
        return None, None
    p = probe(model, shape, start)
    if p.ok:
        if not p.widths:
            return start, None
        name, width = next(iter(p.widths.items()))
        sides = sides_giving_width(model, shape, name, width)
        return start, sides[1] if sides else None
    if p.kind == "width":
        width = first_width_failure(model, shape, start)
        sides = sides_giving_width(model, shape, *width) if width else None
        return (sides[0], sides[1]) if sides else (None, None)
    return None, None


# --------------------------------------------------------------------------- full scan

@dataclass
class SizeScan:
    """Result of probing every square side in ``lo..hi``."""

    lo: int
    hi: int
    probes: List[Probe]
    in_features: Dict[str, int]  # each Linear's expected width

    @property
    def running(self) -> List[int]:
        return [p.side for p in self.probes if p.ok]

    @property
    def smallest_running(self) -> Optional[int]:
        return min(self.running, default=None)

    def valid_for(self, layer: str) -> List[int]:
        """Sides at which ``layer`` receives exactly its ``in_features``."""
        want = self.in_features[layer]
        return [p.side for p in self.probes if p.widths.get(layer) == want]

    def to_dict(self):
        return {
            "range": [self.lo, self.hi],
            "smallest_running": self.smallest_running,
            "running": ranges(self.running),
            "linears": {n: {"in_features": w, "valid_sides": ranges(self.valid_for(n))}
                        for n, w in self.in_features.items()},
            "failures": {k: ranges([p.side for p in self.probes if p.kind == k])
                         for k in ("spatial", "width", "channels", "other")
                         if any(p.kind == k for p in self.probes)},
        }


def scan(model: nn.Module, shape: Sequence[int], lo: int, hi: int) -> SizeScan:
    if lo < 1 or hi < lo:
        raise UsageError(f"bad --sizes {lo}..{hi}: need 1 <= A <= B")
    if hi > MAX_SIDE or hi - lo + 1 > MAX_SCAN:
        raise UsageError(f"--sizes {lo}..{hi} is too wide: a scan covers at most {MAX_SCAN} sides, "
                         f"up to {MAX_SIDE} (e.g. --sizes {lo}..{min(lo + MAX_SCAN - 1, MAX_SIDE)})")
    probes = [probe(model, shape, side) for side in range(lo, hi + 1)]
    # Each Linear by the call path it was reached through, as rows name it; one no probe reached
    # keeps its structural name.
    in_features: Dict[str, int] = {}
    reached = set()
    for p in probes:
        in_features.update(p.in_features)
        reached |= p.reached
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and id(m) not in reached:
            in_features[name] = m.in_features
    return SizeScan(lo, hi, probes, in_features)


def ranges(values: List[int]) -> List[List[int]]:
    """[3, 4, 5, 9] → [[3, 5], [9, 9]]"""
    out: List[List[int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return out
