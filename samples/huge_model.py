"""A model of about 10 billion parameters (40 GB of float32 weights), used by
``benchmarks/bench_inspect.py``. Built on the meta device, archscope inspects it without
allocating any of that memory:

    archscope summary samples/huge_model.py:build

A convolutional stem, then a wide MLP head: ``blocks`` Linear layers of ``width``×``width``.
With the defaults that is 9 × 32768² ≈ 9.66 G parameters in the head, plus the stem and the
input projection (≈ 0.27 G).
"""
import torch
from torch import nn


class HugeNet(nn.Module):
    input_size = 64

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32768, blocks: int = 9):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 256, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(256, 512, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.project = nn.Linear(512 * 16, width)
        self.blocks = nn.Sequential(*(nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in range(blocks)))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.project(torch.flatten(self.stem(x), 1))))


def build(in_channels: int = 1, num_classes: int = 10, width: int = 32768, blocks: int = 9) -> nn.Module:
    return HugeNet(in_channels, num_classes, width, blocks)
