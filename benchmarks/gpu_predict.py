"""On a CUDA GPU: archscope's predictions against the GPU itself, for the seed models.

    PYTHONPATH=. python3 benchmarks/gpu_predict.py --hw h200     # about 2 minutes on an H200
    python3 benchmarks/gpu_predict.py --dry-run --models lenet   # the same script on CPU, small

Two checks per model:
- time: `archscope time MODEL --hw HW --measure` (the roofline prediction for that GPU's datasheet
  against the step measured on it), a bf16 forward and a bf16 training step with Adam;
- memory: `archscope memory MODEL --amp` against torch.cuda.max_memory_allocated over one real
  training step (fp32 weights, bf16 autocast, Adam), the model's own memory only (no dataset), with
  the allocations that are not the model's listed apart (what was allocated before the step, the
  cuBLAS/cuDNN workspaces are inside the peak).
When $OUT is set, the figures are also written to $OUT/gpu_predict.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from archscope.analysis.memory import memory
from archscope.analysis.timing import time_model
from archscope.inputs import resolve_inputs
from archscope.models import load_model

MODELS = [("lenet", {}), ("alexnet", {}), ("vgg", {"ratio": 8}), ("nin", {}), ("googlenet", {})]


def timed(name, kwargs, hw, batch, train, dtype, dry_run):
    r = time_model(name, batch=batch, dtype=dtype, train=train, hw=hw, measure=True, repeats=3 if dry_run else 10,
                   **kwargs)
    predicted = sum(row.predicted_s for row in r.rows)
    return {"step": "train" if train else "forward", "dtype": dtype, "predicted_ms": predicted * 1e3,
            "measured_ms": (r.whole_measured_s or 0) * 1e3, "measured_on": r.measured_on,
            "ratio": (r.whole_measured_s or 0) / predicted if predicted else None}


def real_step_peak(name, kwargs, batch, device, amp):
    """Peak allocated bytes over one training step (forward under autocast, backward, Adam)."""
    loaded = load_model(name, device="cpu", **kwargs)
    model = loaded.module.to(device).train()
    shape = tuple(resolve_inputs(None, model, loaded.default_input, batch).shapes[0])
    x = torch.randn(shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    cuda = device == "cuda"

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # the optimizer's state exists from here, as in any step after the first
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        after = torch.cuda.memory_allocated()
    else:
        before = after = peak = 0
    inputs = x.numel() * x.element_size() + y.numel() * y.element_size()
    return {"before_step_bytes": before, "peak_bytes": peak, "after_step_bytes": after, "inputs_bytes": inputs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hw", default="h200", help="the GPU's name in `archscope time --hw list`")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dry-run", action="store_true", help="on CPU at batch 2: the script's code, not its figures")
    parser.add_argument("--models", default=",".join(m for m, _ in MODELS), help="comma-separated seed models")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_predict needs a CUDA GPU (or --dry-run)")
    device = "cpu" if args.dry_run else "cuda"
    batch = 2 if args.dry_run else args.batch
    if not args.dry_run:
        torch.backends.cudnn.benchmark = False  # its trials allocate workspaces a plain step does not
    print(f"{torch.cuda.get_device_name() if not args.dry_run else 'CPU (dry run)'}, torch {torch.__version__}, "
          f"batch {batch}, predictions for --hw {args.hw}")
    rows = []
    print(f"{'model':<11}{'step':<9}{'dtype':<6}{'pred ms':>9}{'meas ms':>9}{'meas/pred':>10}   "
          f"{'est MiB':>8}{'peak MiB':>9}{'peak-in':>8}{'peak/est':>9}")
    for name, kwargs in MODELS:
        if name not in args.models.split(","):
            continue
        est = memory(name, batch=batch, amp=True, **kwargs)
        real = real_step_peak(name, kwargs, batch, device, amp=True)
        if device == "cuda":
            torch.cuda.empty_cache()  # the step's model and optimizer are gone with its frame
        mem = {"estimated_bytes": est.training_bytes, "params_bytes": est.params_bytes,
               "optimizer_bytes": est.optimizer_bytes, "backward_peak_bytes": est.backward_peak_bytes,
               "activations_bytes": est.activations_bytes, **real}
        times = [timed(name, kwargs, args.hw, batch, train, "bf16", args.dry_run) for train in (False, True)]
        label = name + ("÷8" if kwargs.get("ratio") else "")
        rows.append({"model": label, "batch": batch, "memory": mem, "time": times})
        for i, t in enumerate(times):
            line = (f"{label if i == 0 else '':<11}{t['step']:<9}{t['dtype']:<6}{t['predicted_ms']:>9.2f}"
                    f"{t['measured_ms']:>9.2f}{(t['ratio'] or 0):>10.2f}")
            if i == 0:
                peak = real["peak_bytes"] - real["inputs_bytes"]
                line += (f"   {est.training_bytes / 2**20:>8,.0f}{real['peak_bytes'] / 2**20:>9,.0f}"
                         f"{peak / 2**20:>8,.0f}{peak / est.training_bytes:>9.2f}")
            print(line, flush=True)
    if os.environ.get("OUT"):
        path = os.path.join(os.environ["OUT"], "gpu_predict.json")
        with open(path, "w") as f:
            json.dump({"device": device, "torch": torch.__version__, "hw": args.hw, "rows": rows}, f, indent=2)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
