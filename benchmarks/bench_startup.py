"""Where a CLI command's start-up goes, in phases, each in a fresh process.

    python benchmarks/bench_startup.py [--repeats 3] [-- shapes alexnet]

Prints, per run: ``import torch``; archscope's CLI imports; the command itself (by default
``shapes alexnet``, its output discarded), and its time past ``import torch`` against the goal of 0.5 s;
then which of the heavy imports the command pulled in: ``torch._dynamo`` (1.1-1.5 s, by PyTorch's
Python reference kernels), ``sympy`` (0.4 s, by any Python meta kernel's ``torch._check``),
``torch.utils.flop_counter`` with ``triton`` (0.1-0.2 s). The process's own exit is not timed.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

PHASES = r'''
import contextlib, io, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import archscope.cli
t2 = time.perf_counter()
sys.argv = ["archscope"] + sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        archscope.cli.main()
    except SystemExit:
        pass
t3 = time.perf_counter()
heavy = [m for m in ("torch._dynamo", "sympy", "torch.utils.flop_counter", "triton") if m in sys.modules]
print(f"import torch {t1 - t0:.2f} s, archscope.cli {t2 - t1:.2f} s, the command {t3 - t2:.2f} s: "
      f"{t3 - t1:.2f} s past import torch (goal 0.5 s); imported: {', '.join(heavy) or 'none of the heavy ones'}")
'''


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("command", nargs="*", default=["shapes", "alexnet"])
    args = parser.parse_args()
    for _ in range(args.repeats):
        subprocess.run([sys.executable, "-c", PHASES, *args.command], check=True)


if __name__ == "__main__":
    main()
