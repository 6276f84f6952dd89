"""Predicted against measured step time of each seed model on this machine, at batch 32.

    python benchmarks/bench_time.py [--batch 32] [--repeats 5] [--models lenet,alexnet,...]

For each model, forward (eval, no grad) and a training step (forward + backward + Adam), one
run of ``archscope.time(..., hw="cpu", measure=True)``: the roofline's prediction (this CPU,
calibrated once), the same step timed whole without hooks, their ratio, the sum of the hooked
rows against the whole step, and whether the five costliest rows come in the same order.
Time it alone: this machine has 2 cores.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archscope.analysis.timing import time_model  # noqa: E402

SEED = {"lenet": {}, "alexnet": {}, "vgg": {"ratio": 8}, "nin": {}, "googlenet": {}}


def top5(rows, key):
    ranked = sorted((r for r in rows if r.kind != "total"), key=key, reverse=True)
    return [r.name for r in ranked[:5]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(SEED))
    args = parser.parse_args()
    print(f"{'model':<10} {'step':<8} {'predicted ms':>12} {'measured ms':>12} {'meas/pred':>9} "
          f"{'rows/whole':>10} {'top-5 set':>9}  top-5 order")
    worst = 0.0
    for name in args.models.split(","):
        for train in (False, True):
            r = time_model(name, batch=args.batch, hw="cpu", measure=True, train=train, repeats=args.repeats,
                           **SEED.get(name, {}))
            total = r.total()
            ratio = r.whole_measured_s / total.predicted_s
            worst = max(worst, ratio, 1 / ratio)
            predicted, measured = top5(r.rows, lambda x: x.predicted_s), top5(r.rows, lambda x: x.measured_s or 0)
            common = len(set(predicted) & set(measured))
            order = "same" if predicted == measured else \
                "differs: " + next(f"#{i + 1} {p} (predicted) vs {m}" for i, (p, m) in enumerate(zip(predicted, measured))
                                   if p != m)
            print(f"{name:<10} {'train' if train else 'forward':<8} {total.predicted_s * 1e3:>12.2f} "
                  f"{r.whole_measured_s * 1e3:>12.2f} {ratio:>9.2f} {total.measured_s / r.whole_measured_s:>10.2f} "
                  f"{common:>7}/5  {order}")
    print(f"worst factor between predicted and measured: {worst:.2f}x (goal: within 2x)")


if __name__ == "__main__":
    main()
