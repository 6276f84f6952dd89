"""DenseNet as in D2L §8.7 (Huang, Liu, van der Maaten & Weinberger, "Densely Connected
Convolutional Networks", CVPR 2017), for 1-channel 96×96 Fashion-MNIST."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from archscope.models.registry import Recipe, register_model


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """BatchNorm → ReLU → 3×3 conv (the pre-activation order DenseNet uses)."""
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    """Each conv block's output is concatenated to its input on the channel axis."""

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int):
        super().__init__()
        self.net = nn.Sequential(*(conv_block(in_channels + i * growth_rate, growth_rate) for i in range(num_convs)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.net:
            x = torch.cat((x, block(x)), dim=1)
        return x


def transition_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """BatchNorm → ReLU → 1×1 conv (fewer channels) → 2×2 average pool (half the side)."""
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, kernel_size=1), nn.AvgPool2d(kernel_size=2, stride=2))


@register_model(default_side=96, recipe=Recipe(lr=0.002, batch_size=128),
                description="DenseNet (D2L 8.7): 4 dense blocks of 4 convs, growth 32, transitions, FC 248→10")
def densenet(in_channels: int = 1, num_classes: int = 10, growth_rate: int = 32,
             num_convs_in_dense_blocks: Sequence[int] = (4, 4, 4, 4)) -> nn.Module:
    net = nn.Sequential()
    net.add_module("b1", nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    ))
    channels = 64
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        net.add_module(f"dense_{i + 1}", DenseBlock(num_convs, channels, growth_rate))
        channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:  # halve the channels between dense blocks
            net.add_module(f"transition_{i + 1}", transition_block(channels, channels // 2))
            channels //= 2
    net.add_module("head", nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)),
                                         nn.Flatten(), nn.Linear(channels, num_classes)))
    return net
