"""Inspection speed and memory, measured against torchinfo in one process.

    python benchmarks/bench_inspect.py [--repeats 7]

1. name → summary for full VGG-11 at 224×224: archscope (build on meta + trace + FLOPs +
   render) against building the same model on CPU + torchinfo.summary. Median of N runs
   after one warm-up of each (imports and PyTorch's lazy initialisation excluded). Goal ≥ 20×.
2. A model already built on the meta device (VGG-11, GoogLeNet, tv:resnet50): archscope's
   trace (shapes + params + FLOPs) against torchinfo.summary on the same meta model and
   input (shapes + params, no FLOPs). Goal: archscope at least as fast (ratio >= 1). Then the
   FLOP counter alone: archscope's dispatch mode against PyTorch's FlopCounterMode.
3. Training-step answers for AlexNet @224, batch 8: archscope's `--train` FLOPs and `memory`
   (both on meta) against torchinfo.summary on a CPU build (its "forward/backward pass size" is
   its memory answer) and against measuring it: one real CPU training step (forward + backward)
   under PyTorch's FlopCounterMode.
4. `archscope check alexnet --sizes 32..511`: 480 square sides probed on meta (goal: well
   under 10 s).
5. Peak RSS of `archscope summary samples/huge_model.py:build` (~10 G parameters) in a fresh
   process, next to the RSS of a bare `import torch` for scale. Goal < 1 GiB.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def archscope_summary():
    from rich.console import Console

    from archscope.analysis import trace
    from archscope.report import render

    Console(file=io.StringIO(), width=160).print(render(trace("vgg"), "table", "summary"))


def torchinfo_summary():
    import torchinfo

    from archscope.models import get_model

    str(torchinfo.summary(get_model("vgg"), input_size=(1, 1, 224, 224), verbose=0))


def meta_models():
    """(label, model built on meta, input shape) for the trace-vs-torchinfo comparison."""
    import torch
    import torchvision

    from archscope.models import get_model

    with torch.device("meta"):
        return [
            ("VGG-11 @224", get_model("vgg"), (1, 1, 224, 224)),
            ("GoogLeNet @96", get_model("googlenet"), (1, 1, 96, 96)),
            ("tv:resnet50 @224", torchvision.models.resnet50(), (1, 3, 224, 224)),
        ]


def compare_on_meta(repeats: int):
    import torchinfo

    from archscope.analysis import trace

    print(f"Prebuilt meta model, median of {repeats}: archscope trace (with FLOPs) vs torchinfo.summary (without)")
    for label, model, shape in meta_models():
        ours = median_seconds(lambda m=model, s=shape: trace(m, input_size=s), repeats)
        theirs = median_seconds(lambda m=model, s=shape: torchinfo.summary(m, input_size=s, device="meta", verbose=0),
                                repeats)
        print(f"  {label:18s} archscope {ours * 1000:7.1f} ms   torchinfo {theirs * 1000:7.1f} ms   "
              f"ratio {theirs / ours:.2f}x (goal >= 1)")


def compare_counters(repeats: int):
    """The FLOP counter alone, on the same meta forward: archscope's against PyTorch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from archscope.analysis.counter import FlopCounter

    _, model, shape = meta_models()[2]
    model.eval()
    x = torch.empty(shape, device="meta")

    def run(mode):
        with torch.no_grad(), mode:
            model(x)
        return mode

    ours = median_seconds(lambda: run(FlopCounter()), repeats)
    theirs = median_seconds(lambda: run(FlopCounterMode(display=False)), repeats)
    assert run(FlopCounter()).total == run(FlopCounterMode(display=False)).get_total_flops()
    print(f"FLOP counter alone on tv:resnet50 (meta forward): archscope {ours * 1000:.1f} ms, "
          f"FlopCounterMode {theirs * 1000:.1f} ms, ratio {theirs / ours:.2f}x")


def compare_training_paths(repeats: int):
    import torch
    import torchinfo
    from torch.utils.flop_counter import FlopCounterMode

    from archscope.analysis import trace
    from archscope.analysis.memory import memory
    from archscope.models import get_model

    shape = (8, 1, 224, 224)
    train_flops = median_seconds(lambda: trace("alexnet", train=True, batch=8), repeats)
    mem = median_seconds(lambda: memory("alexnet", batch=8), repeats)
    info = median_seconds(lambda: torchinfo.summary(get_model("alexnet"), input_size=shape, verbose=0), repeats)

    def real_step():
        model = get_model("alexnet").train()
        with FlopCounterMode(display=False):
            model(torch.randn(shape)).sum().backward()

    real = median_seconds(real_step, max(1, repeats // 3))
    print("AlexNet @224, batch 8, training-step answers (median):")
    print(f"  archscope --train FLOPs (meta):            {train_flops * 1000:8.1f} ms")
    print(f"  archscope memory (meta):                   {mem * 1000:8.1f} ms")
    print(f"  torchinfo.summary (CPU build):             {info * 1000:8.1f} ms   ratio {info / max(train_flops, mem):.1f}x")
    print(f"  a real CPU training step, counted:         {real * 1000:8.1f} ms   ratio {real / max(train_flops, mem):.1f}x")


def peak_rss_mib(args) -> float:
    """Peak resident memory of a child process, in MiB (Linux reports ru_maxrss in KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    # Memory first, while this process is still small: Linux carries a parent's peak RSS into a
    # forked child's ru_maxrss, so children forked after the CPU builds below would read high.
    # Each child is fresh; the smaller one goes first because RUSAGE_CHILDREN keeps a maximum.
    torch_only = peak_rss_mib([sys.executable, "-c", "import torch"])
    huge = peak_rss_mib([sys.executable, "-m", "archscope", "summary", "samples/huge_model.py:build"])

    ours = median_seconds(archscope_summary, args.repeats)
    theirs = median_seconds(torchinfo_summary, args.repeats)
    print(f"VGG-11 @224 name → summary, median of {args.repeats}:")
    print(f"  archscope (meta: build + trace + FLOPs + render): {ours * 1000:8.1f} ms")
    print(f"  CPU build + torchinfo.summary:                    {theirs * 1000:8.1f} ms")
    print(f"  ratio: {theirs / ours:.1f}x faster (goal >= 20x)")

    compare_on_meta(args.repeats)
    compare_counters(args.repeats)
    compare_training_paths(args.repeats)

    from archscope.analysis.check import scan_sizes

    start = time.perf_counter()
    scan = scan_sizes("alexnet", 32, 511)
    print(f"AlexNet size scan 32..511 ({len(scan.probes)} sides on meta): {time.perf_counter() - start:.2f} s "
          f"(goal: well under 10 s); FC-valid sides {scan.valid_for('fc.0')[0]}..{scan.valid_for('fc.0')[-1]}")
    print("samples/huge_model.py (9.93 G parameters, 39.7 GB at float32):")
    print(f"  peak RSS of `archscope summary`: {huge:7.1f} MiB (goal < 1024 MiB)")
    print(f"  peak RSS of a bare `import torch`: {torch_only:5.1f} MiB (for scale)")


if __name__ == "__main__":
    main()
