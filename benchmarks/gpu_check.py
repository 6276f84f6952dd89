"""One epoch of each seed model on a CUDA GPU: img/s, epoch time, test accuracy, MFU, and peak
CUDA memory beside `archscope memory`'s estimate.

    PYTHONPATH=. bash benchmarks/gpu_check.sh            # under 6 minutes on an H100/H200
    bash benchmarks/gpu_check.sh --dry-run               # the same script on CPU, a few steps a model

MFU (model-FLOPs utilisation) = training FLOPs per image × img/s ÷ the GPU's peak, where
training FLOPs per image = 3 × the forward FLOPs that `archscope flops` reports (forward +
backward ≈ 3 × forward for conv/linear layers) and the peak is the dense bf16 rate
(ARCHSCOPE_PEAK_TFLOPS overrides the built-in table). Needs no torchinfo and no install: the
repository on PYTHONPATH and Fashion-MNIST in ARCHSCOPE_DATA (or the Debian package). When $OUT
is set, the figures are also written to $OUT/gpu_check.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time

import torch
from rich.console import Console

from archscope.analysis import trace
from archscope.analysis.memory import memory
from archscope.train import TrainConfig, train

MODELS = [("lenet", {}), ("alexnet", {}), ("vgg", {"ratio": 8}), ("nin", {}), ("googlenet", {})]
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}
# Fashion-MNIST lives on the device for the whole run: 70,000 images of 28×28 bytes and their labels.
DATASET_BYTES = 70_000 * (28 * 28 + 8)


def peak_tflops(name: str) -> float:
    if os.environ.get("ARCHSCOPE_PEAK_TFLOPS"):
        return float(os.environ["ARCHSCOPE_PEAK_TFLOPS"])
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    sys.exit(f"unknown GPU '{name}': set ARCHSCOPE_PEAK_TFLOPS to its dense bf16 peak")


def measure(name: str, kwargs: dict, dry_run: bool, epochs: int, peak: float) -> dict:
    cuda = not dry_run
    options = dict(epochs=epochs, device="cuda" if cuda else "cpu", model_kwargs=kwargs)
    if dry_run:  # two steps at a small batch on CPU: the GPU path's code, in seconds (bf16 on a CPU is slow)
        options.update(limit_train=32, limit_test=32, batch_size=16, amp=False)
    flops = 3 * trace(name, **kwargs).totals.flops  # per image, training
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(name, out=out, **options)
        result = train(cfg, console=Console(file=io.StringIO()))
    wall = time.perf_counter() - start
    batch = cfg.filled().batch_size
    h = result.history[-1]
    estimate = memory(name, batch=batch, amp=True, model_kwargs=kwargs).training_bytes + DATASET_BYTES
    rate = h["train_img_per_s"] or 0.0
    return {"model": name + ("÷8" if kwargs.get("ratio") else ""), "batch": batch, "img_per_s": rate,
            "epoch_s": h["time_s"], "wall_s": wall, "test_acc": h["test_acc"], "train_gflop_per_img": flops / 1e9,
            "mfu": flops * rate / peak if peak else None,
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "estimated_memory_bytes": estimate}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="EPOCHS=N sets the epochs per model (default 1).")
    parser.add_argument("--dry-run", action="store_true", help="run on CPU, a few steps per model")
    parser.add_argument("--models", default=",".join(m for m, _ in MODELS), help="comma-separated seed models")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check needs a CUDA GPU (or --dry-run to try the script on CPU)")
    gpu = torch.cuda.get_device_name() if not args.dry_run else "CPU (dry run)"
    peak = peak_tflops(gpu) * 1e12 if not args.dry_run else 0.0
    epochs = int(os.environ.get("EPOCHS", "1"))
    print(f"{gpu}, peak {peak / 1e12:.0f} TFLOP/s bf16 dense, torch {torch.__version__}, {epochs} epoch(s) each")
    print(f"{'model':<12}{'batch':>6}{'img/s':>10}{'epoch s':>9}{'test acc':>10}{'GFLOP/img':>10}{'MFU':>7}"
          f"{'peak MiB':>10}{'est. MiB':>10}")
    wanted = args.models.split(",")
    rows = []
    for name, kwargs in MODELS:
        if name not in wanted:
            continue
        row = measure(name, kwargs, args.dry_run, epochs, peak)
        rows.append(row)
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "—"
        used = f"{row['peak_memory_bytes'] / 2**20:,.0f}" if row["peak_memory_bytes"] is not None else "—"
        print(f"{row['model']:<12}{row['batch']:>6}{row['img_per_s']:>10,.0f}{row['epoch_s']:>9.1f}"
              f"{row['test_acc']:>10.4f}{row['train_gflop_per_img']:>10.2f}{mfu:>7}{used:>10}"
              f"{row['estimated_memory_bytes'] / 2**20:>10,.0f}", flush=True)
    if os.environ.get("OUT"):
        path = os.path.join(os.environ["OUT"], "gpu_check.json")
        with open(path, "w") as f:
            json.dump({"device": gpu, "torch": torch.__version__, "epochs": epochs, "dry_run": args.dry_run,
                       "models": rows}, f, indent=2)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
