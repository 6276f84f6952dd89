"""How well `time --measure`'s per-row seconds add up to the same step timed whole, without hooks.

    python benchmarks/bench_measure.py [--repeats 7]

The rows are timed with archscope's hooks (their own cost measured on a stack of nn.Identity and
taken off each call); the baseline is the same forward (or training step) run plainly, alternating
with the hooked runs so both see the same machine. The ratio rows/whole should be within 1 ± 0.15
on an idle machine; on a busy one it is not, which is why this is a benchmark and not a test (the
tests check what holds under any load; `time --measure` itself warns when the runs disagree).
Cases: VGG-11 ÷8 at batch 4 (a forward), and a conv + linear training step at batch 16.
"""
from __future__ import annotations

import argparse

from torch import nn

from archscope.analysis.timing import time_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="at least this many hooked and plain runs each")
    repeats = parser.parse_args().repeats
    conv = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 30 * 30, 10))
    cases = [("vgg ÷8 forward, batch 4", dict(model="vgg", ratio=8, batch=4)),
             ("conv+linear training step, batch 16", dict(model=conv, input_size=(16, 1, 32, 32), train=True))]
    for label, kwargs in cases:
        r = time_model(hw="cpu", measure=True, repeats=repeats, **kwargs)
        rows, whole = r.total().measured_s, r.whole_measured_s
        fastest, slowest = r.whole_spread_s
        print(f"{label}: rows {rows * 1e3:.2f} ms, whole {whole * 1e3:.2f} ms (quartiles {fastest * 1e3:.2f}–{slowest * 1e3:.2f})"
              f", ratio rows/whole {rows / whole:.3f}  (goal 1 ± 0.15)"
              + (f"  [unsteady: {r.unsteady}]" if r.unsteady else ""))


if __name__ == "__main__":
    main()
