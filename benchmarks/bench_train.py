"""Training throughput: archscope's trainer against a D2L-style pipeline, same model,
batch size and device, in one run.

    python benchmarks/bench_train.py lenet            # CPU here: goal >= 1.8x
    python benchmarks/bench_train.py alexnet --steps 12 --batch-size 64   # goal >= 1.1x on CPU
    python benchmarks/bench_train.py nin --device cuda                     # goal >= 5x on a GPU

Baseline (D2L's load_data_fashion_mnist + train loop): torchvision FashionMNIST with
Resize + ToTensor, a DataLoader with 4 workers (D2L's default, capped at the CPU count),
shuffled, Adam, batches copied to the device each step. archscope: `archscope.train.train`,
data resident on the device, resized there. Both time the same number of optimizer steps
after a warm-up; img/s = images / seconds.
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import tempfile
import time

import torch
import torch.nn.functional as F


def torchvision_root(tmp: str) -> str:
    """torchvision's FashionMNIST wants uncompressed files under ROOT/FashionMNIST/raw."""
    from archscope.train.data import find_files

    raw = os.path.join(tmp, "FashionMNIST", "raw")
    os.makedirs(raw)
    for path in find_files().values():
        name = os.path.basename(str(path))
        target = os.path.join(raw, name[:-3] if name.endswith(".gz") else name)
        with (gzip.open(path) if str(path).endswith(".gz") else open(path, "rb")) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp


def baseline(model_name, kwargs, side, batch_size, steps, warmup, device) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from archscope.models import get_model

    torch.manual_seed(0)
    model = get_model(model_name, **kwargs).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with tempfile.TemporaryDirectory() as tmp:
        trans = transforms.Compose([transforms.Resize(side), transforms.ToTensor()])
        data = datasets.FashionMNIST(torchvision_root(tmp), train=True, transform=trans, download=False)
        workers = min(4, os.cpu_count() or 1)
        loader = DataLoader(data, batch_size, shuffle=True, num_workers=workers, persistent_workers=True)
        model.train()
        done, start = 0, None
        while done < warmup + steps:
            for x, y in loader:
                if done == warmup:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                done += 1
                if done == warmup + steps:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch_size / (time.perf_counter() - start)


def ours(model_name, kwargs, batch_size, steps, warmup, device) -> float:
    """The real trainer: epoch 1 is the warm-up, epoch 2 is timed (its img/s excludes evaluation)."""
    from rich.console import Console

    from archscope.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        # Evaluation is not timed (train_img_per_s covers the training steps only); keep it small.
        cfg = TrainConfig(model_name, epochs=2, batch_size=batch_size, limit_train=steps * batch_size,
                          limit_test=batch_size, device=str(device), out=tmp, model_kwargs=kwargs,
                          optimizer="adam", lr=1e-3, schedule="none")
        result = train(cfg, console=Console(file=io.StringIO()))
    return result.history[-1]["train_img_per_s"]


def main():
    from archscope.models import get_entry

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--ratio", type=int, default=None)
    args = p.parse_args()
    kwargs = {"ratio": args.ratio} if args.ratio else {}
    device = torch.device(args.device)
    side = get_entry(args.model).default_side
    print(f"{args.model} @{side}, batch {args.batch_size}, {args.steps} timed steps on {device} "
          f"({torch.get_num_threads()} CPU threads)")
    theirs = baseline(args.model, kwargs, side, args.batch_size, args.steps, args.warmup, device)
    print(f"  D2L-style (torchvision Resize+ToTensor, DataLoader): {theirs:10,.0f} img/s")
    mine = ours(args.model, kwargs, args.batch_size, args.steps, args.warmup, device)
    print(f"  archscope (data resident on the device):             {mine:10,.0f} img/s")
    print(f"  ratio: {mine / theirs:.2f}x")


if __name__ == "__main__":
    main()
