"""One epoch of each seed model on a CUDA GPU: img/s, epoch time, test accuracy, MFU.

    bash benchmarks/gpu_check.sh            # a few minutes on an H100/H200

MFU (model-FLOPs utilisation) = training FLOPs per image × img/s ÷ the GPU's peak, where
training FLOPs per image = 3 × the forward FLOPs that `archscope flops` reports (forward +
backward ≈ 3 × forward for conv/linear layers) and the peak is the dense bf16 rate
(ARCHSCOPE_PEAK_TFLOPS overrides the built-in table).
"""
from __future__ import annotations

import io
import os
import sys
import tempfile

import torch
from rich.console import Console

from archscope.analysis import trace
from archscope.train import TrainConfig, train

MODELS = [("lenet", {}), ("alexnet", {}), ("vgg", {"ratio": 8}), ("nin", {}), ("googlenet", {})]
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def peak_tflops(name: str) -> float:
    if os.environ.get("ARCHSCOPE_PEAK_TFLOPS"):
        return float(os.environ["ARCHSCOPE_PEAK_TFLOPS"])
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    sys.exit(f"unknown GPU '{name}': set ARCHSCOPE_PEAK_TFLOPS to its dense bf16 peak")


def main():
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="EPOCHS=N sets the epochs per model (default 1).").parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check needs a CUDA GPU")
    gpu = torch.cuda.get_device_name()
    peak = peak_tflops(gpu) * 1e12
    epochs = int(os.environ.get("EPOCHS", "1"))
    print(f"{gpu}, peak {peak / 1e12:.0f} TFLOP/s bf16 dense, torch {torch.__version__}, {epochs} epoch(s) each")
    print(f"{'model':<12}{'input':>6}{'batch':>7}{'img/s':>11}{'epoch s':>9}{'test acc':>10}{'GFLOP/img':>11}{'MFU':>7}")
    for name, kwargs in MODELS:
        flops = 3 * trace(name, **kwargs).totals.flops  # per image, training
        with tempfile.TemporaryDirectory() as out:
            cfg = TrainConfig(name, epochs=epochs, device="cuda", out=out, model_kwargs=kwargs)
            result = train(cfg, console=Console(file=io.StringIO()))
        h = result.history[-1]
        label = name + ("÷8" if kwargs.get("ratio") else "")
        side = 28 if name == "lenet" else 96 if name == "googlenet" else 224
        batch = cfg.filled().batch_size
        print(f"{label:<12}{side:>6}{batch:>7}{h['train_img_per_s']:>11,.0f}{h['time_s']:>9.1f}{h['test_acc']:>10.4f}"
              f"{flops / 1e9:>11.2f}{flops * h['train_img_per_s'] / peak:>7.1%}", flush=True)


if __name__ == "__main__":
    main()
