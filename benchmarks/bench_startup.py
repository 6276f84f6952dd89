"""Where a CLI command's start-up goes, in phases, each in a fresh process.

    python benchmarks/bench_startup.py [--repeats 3] [-- shapes alexnet]

Prints, per run: ``import torch``; archscope's CLI imports; ``torch._dynamo`` (which PyTorch's own
Python meta kernels import on the first element-wise meta op, so it is timed apart here); and the
command itself (default ``shapes alexnet``), its output discarded.
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
import torch._dynamo
t3 = time.perf_counter()
sys.argv = ["archscope"] + sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        archscope.cli.main()
    except SystemExit:
        pass
t4 = time.perf_counter()
print(f"import torch {t1 - t0:.2f} s, archscope.cli {t2 - t1:.2f} s, torch._dynamo {t3 - t2:.2f} s, "
      f"the command {t4 - t3:.2f} s")
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
