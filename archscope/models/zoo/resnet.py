"""ResNet-18 as in D2L §8.6 (He, Zhang, Ren & Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016), for 1-channel 96×96 Fashion-MNIST."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from archscope.models.registry import Recipe, register_model


class Residual(nn.Module):
    """Two 3×3 convs with BatchNorm; a 1×1 conv on the shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, use_1x1conv: bool = False, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


def resnet_block(in_channels: int, out_channels: int, num_residuals: int, first_block: bool = False) -> nn.Sequential:
    blocks = []
    for i in range(num_residuals):
        if i == 0 and not first_block:  # halve the side, change the width
            blocks.append(Residual(in_channels, out_channels, use_1x1conv=True, stride=2))
        else:
            blocks.append(Residual(out_channels, out_channels))
    return nn.Sequential(*blocks)


@register_model(default_side=96, recipe=Recipe(lr=0.002, batch_size=128),
                description="ResNet-18 (D2L 8.6): 7×7 stem, 4 stages of 2 residual blocks, FC 512→10")
def resnet18(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    net = nn.Sequential()
    net.add_module("b1", nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    ))
    net.add_module("b2", resnet_block(64, 64, 2, first_block=True))
    net.add_module("b3", resnet_block(64, 128, 2))
    net.add_module("b4", resnet_block(128, 256, 2))
    net.add_module("b5", resnet_block(256, 512, 2))
    net.add_module("pool", nn.AdaptiveAvgPool2d((1, 1)))
    net.add_module("flatten", nn.Flatten())
    net.add_module("fc", nn.Linear(512, num_classes))
    return net
