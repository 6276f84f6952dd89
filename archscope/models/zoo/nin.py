"""Network in Network as in D2L §8.3 (Lin, Chen & Yan, "Network In Network", ICLR 2014)."""
from __future__ import annotations

from torch import nn

from archscope.models.registry import Recipe, register_model


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    """A k×k conv followed by two 1×1 convs (per-pixel MLP), ReLU after each."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )


@register_model(default_side=224, description="NiN (D2L 8.3): 4 NiN blocks, global average pool, no FC",
                recipe=Recipe(lr=0.002, batch_size=128))
def nin(in_channels: int = 1, num_classes: int = 10, dropout: float = 0.5) -> nn.Module:
    return nn.Sequential(
        nin_block(in_channels, 96, kernel_size=11, stride=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, stride=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, stride=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(dropout),
        nin_block(384, num_classes, kernel_size=3, stride=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )
