"""A model whose ``forward`` does real work with functional ops: two conv towers joined by
``torch.cat``, ``F.relu``, and a bilinear-style projection by ``torch.matmul`` on a
parameter owned by the model itself. Hook-based counters that only look at leaf modules
miss the matmul; archscope reports it as the model's own row.

    archscope flops samples/functional_ops.py:build
"""
import torch
from torch import nn
from torch.nn import functional as F


class TwoTower(nn.Module):
    input_size = 28

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.left = nn.Conv2d(in_channels, width, 3, padding=1)
        self.right = nn.Conv2d(in_channels, width, 5, padding=2)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.projection = nn.Parameter(torch.randn(2 * width * 16, 64) * 0.02)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        x = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], dim=1)
        x = torch.flatten(self.pool(x), 1)
        x = F.relu(torch.matmul(x, self.projection))  # 2·512·64 FLOPs per image, outside any child
        return self.head(x)


def build(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Module:
    return TwoTower(in_channels, num_classes, width)
