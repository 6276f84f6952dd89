"""Every zoo command against ``import torch``, each in fresh processes.

    python benchmarks/bench_commands.py [--repeats 5] [--models lenet,alexnet,...] [--commands shapes,...]

For each seed model and each command (shapes, params, flops, summary, check) it runs
``archscope COMMAND MODEL`` ``--repeats`` times in a fresh process, and as the baseline
``python -c "import torch"`` as often, interleaved so both see the same machine. It prints the
median of each, the command's time past ``import torch`` against the goal of 0.5 s, and
``archscope --help`` against its goal of 0.3 s. Whether a run imported ``torch._dynamo`` (1.1-1.5 s
by itself) is printed per command. Each row is printed as soon as it is measured, against the
``import torch`` runs interleaved with it (the whole table takes about 12 minutes at ``--repeats 5``
on a 2-core machine; ``--models``/``--commands`` take a part). Run it alone: this machine has two cores.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

MODELS = ["lenet", "alexnet", "vgg", "nin", "googlenet"]
COMMANDS = ["shapes", "params", "flops", "summary", "check"]
PROBE = ("import runpy, sys, atexit\n"
         "atexit.register(lambda: sys.__stderr__.write('dynamo=%d\\n' % ('torch._dynamo' in sys.modules)))\n"
         "sys.argv = ['archscope'] + sys.argv[1:]\n"
         "runpy.run_module('archscope', run_name='__main__')\n")


def _wall(cmd) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _imports_dynamo(args) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    return "dynamo=1" in done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--commands", default=",".join(COMMANDS))
    args = parser.parse_args()
    exe = shutil.which("archscope") or sys.exit("archscope is not installed: pip install -e .")
    torch_times, help_times = [], []
    print(f"{'command':<22} {'median s':>9} {'import torch':>13} {'past torch':>11} {'/0.5 s':>7}  dynamo", flush=True)
    for model in args.models.split(","):
        for command in args.commands.split(","):
            times, baseline = [], []
            for _ in range(args.repeats):
                baseline.append(_wall([sys.executable, "-c", "import torch"]))
                times.append(_wall([exe, command, model]))
            torch_times += baseline
            median, torch_s = statistics.median(times), statistics.median(baseline)
            past, dynamo = median - torch_s, _imports_dynamo([command, model])
            print(f"{command + ' ' + model:<22} {median:>9.2f} {torch_s:>13.2f} {past:>11.2f} {past / 0.5:>7.2f}  "
                  f"{'yes' if dynamo else 'no'}", flush=True)
    for _ in range(args.repeats):
        help_times.append(_wall([exe, "--help"]))
    print(f"import torch: {statistics.median(torch_times):.2f} s (median of all {len(torch_times)} runs)")
    help_s = statistics.median(help_times)
    print(f"{'--help':<22} {help_s:>9.2f} {'':>11} {help_s / 0.3:>7.2f}  (goal 0.3 s, no torch)")


if __name__ == "__main__":
    main()
