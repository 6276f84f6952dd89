"""Fashion-MNIST, read from the official IDX files and kept whole on the training device.

The four files (60,000 + 10,000 images of 28×28, uint8) are 55 MB in memory. Keeping them
as one uint8 tensor on the GPU and drawing shuffled index batches there removes the data
pipeline from the critical path: conversion to float, resizing to the model's input side and
normalisation happen on the device, batch by batch. (D2L's loader decodes and resizes every
image on the CPU with PIL: at 224×224 that is 64× the pixels, per image, per epoch.)
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F

from archscope.errors import TrainingError

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MEAN, STD = 0.2860, 0.3530  # of the training images, scaled to [0, 1]
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
IDX_MAGIC = {1: 2049, 3: 2051}  # labels: 1-d, images: 3-d


def cache_dir() -> Path:
    """Where ``--download`` puts the data: ``$XDG_CACHE_HOME/archscope`` or ``~/.cache/archscope``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archscope"


def candidate_dirs(data_dir: Optional[str]) -> List[Tuple[str, Path]]:
    """Where to look, in order. Each also tried in torchvision's layout (``FashionMNIST/raw``)."""
    found = []
    if data_dir:
        found.append(("--data-dir", Path(data_dir)))
    if os.environ.get("ARCHSCOPE_DATA"):
        found.append(("$ARCHSCOPE_DATA", Path(os.environ["ARCHSCOPE_DATA"])))
    found.append(("cache", cache_dir()))
    found.append(("Debian package dataset-fashion-mnist", Path(DEBIAN_DIR)))
    return found


def _file_in(directory: Path, stem: str) -> Optional[Path]:
    for sub in (directory, directory / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (sub / name).is_file():
                return sub / name
    return None


def find_files(data_dir: Optional[str] = None) -> dict:
    """Paths of the four files from the first place that has them all."""
    for _, directory in candidate_dirs(data_dir):
        paths = {key: _file_in(directory, stem) for key, stem in FILES.items()}
        if all(paths.values()):
            return paths
        if data_dir and directory == Path(data_dir):
            missing = [FILES[k] for k, p in paths.items() if p is None]
            raise TrainingError(f"--data-dir {data_dir} lacks {', '.join(missing)} (.gz or uncompressed)")
    raise TrainingError(
        "Fashion-MNIST not found. Get it one of three ways: "
        "(1) rerun with --download (fetches it through torchvision into "
        f"{cache_dir()}); (2) on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist "
        f"(installs to {DEBIAN_DIR}); (3) put the four IDX files ({', '.join(v + '.gz' for v in FILES.values())}) "
        "in a folder and pass --data-dir DIR or set ARCHSCOPE_DATA=DIR"
    )


def download(root: Optional[Path] = None) -> Path:
    """Fetch through torchvision's FashionMNIST into the cache (torchvision layout)."""
    root = root or cache_dir()
    new, folder = [], root / "FashionMNIST" / "raw"  # the folders this call may create, deepest first
    while not folder.exists() and folder != folder.parent:
        new.append(folder)
        folder = folder.parent
    try:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(str(root), train=train, download=True)
    except Exception as error:  # noqa: BLE001 - network, disk: tell the user plainly
        for folder in new:  # leave no empty folders behind
            try:
                folder.rmdir()
            except OSError:
                pass
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingError(f"download of Fashion-MNIST failed ({reason}); see the other ways to get it with "
                            f"'archscope train lenet' without --download") from error
    return root


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """One IDX file (gzip or raw) of ``ndim`` dimensions (3: images, 1: labels) as a uint8
    tensor; any damage is a TrainingError naming the file."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise TrainingError(f"{path} is corrupt or truncated ({error}); delete it and fetch it again") from error
    if len(raw) < 4:
        raise TrainingError(f"{path} is truncated: {len(raw)} bytes")
    magic = int.from_bytes(raw[:4], "big")
    if magic != IDX_MAGIC[ndim]:
        what = "images" if ndim == 3 else "labels"
        raise TrainingError(f"{path} is not an IDX file of {what}: magic number {magic} where {IDX_MAGIC[ndim]} belongs")
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = 1
    for d in dims:
        count *= d
    if len(raw) != header + count:
        raise TrainingError(f"{path} is truncated or padded: the header promises {count} values for shape "
                            f"{dims}, the file holds {len(raw) - header}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


@dataclass
class Split:
    images: torch.Tensor  # N×28×28 uint8, on the training device
    labels: torch.Tensor  # N int64

    def __len__(self) -> int:
        return len(self.labels)


def load(data_dir: Optional[str] = None, device: str = "cpu", download_if_missing: bool = False) -> Tuple[Split, Split]:
    """(train, test) on ``device``."""
    try:
        paths = find_files(data_dir)
    except TrainingError:
        if not download_if_missing:
            raise
        download()
        paths = find_files(str(cache_dir()))
    t = {key: read_idx(path, 3 if key.endswith("images") else 1) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = t[f"{split}_images"], t[f"{split}_labels"]
        if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
            raise TrainingError(f"{paths[split + '_images']} and its labels disagree: "
                                f"{tuple(images.shape)} images, {tuple(labels.shape)} labels")
        if int(labels.max()) >= len(CLASSES):
            raise TrainingError(f"{paths[split + '_labels']} holds labels outside 0..9")
    return (Split(t["train_images"].to(device), t["train_labels"].long().to(device)),
            Split(t["test_images"].to(device), t["test_labels"].long().to(device)))


def prepare(images: torch.Tensor, side: int, channels: int = 1, channels_last: bool = False) -> torch.Tensor:
    """uint8 N×28×28 → normalised float N×C×side×side, on whatever device ``images`` is."""
    x = images.unsqueeze(1).float().div_(255).sub_(MEAN).div_(STD)
    if x.shape[-1] != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    if channels > 1:
        x = x.expand(-1, channels, -1, -1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def batches(n: int, batch_size: int, order: Optional[torch.Tensor] = None, start: int = 0,
            device=None) -> Iterator[Tuple[int, torch.Tensor]]:
    """(step, index tensor) for each batch of a pass, from step ``start`` on: slices of
    ``order`` if given, else consecutive indices made directly on ``device``."""
    steps = (n + batch_size - 1) // batch_size
    for step in range(start, steps):
        lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
        yield step, (order[lo:hi] if order is not None else torch.arange(lo, hi, device=device))


def epoch_order(n: int, seed: int, epoch: int, device) -> torch.Tensor:
    """The shuffle of one epoch: a function of (seed, epoch) alone, so a resumed run draws
    exactly the batches the uninterrupted run would have."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).to(device)
