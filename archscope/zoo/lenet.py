"""LeNet-5 as in D2L §7.6 (LeCun et al., "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998)."""
from __future__ import annotations

from torch import nn

from archscope.zoo.registry import register_model


@register_model(input_size=28, description="LeNet-5 (D2L 7.6): sigmoid, average pooling, FC 400→120→84→10")
def lenet(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )
