"""LeNet-5 as in D2L §7.6 (LeCun et al., "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998)."""
from __future__ import annotations

from torch import nn

from archscope.models.registry import Recipe, register_model


# lr 0.03: 10 epochs reach 0.9054 on CPU (0.02 reached 0.8965), at the same time per epoch.
@register_model(default_side=28, description="LeNet-5 (D2L 7.6): sigmoid, average pooling, FC 400→120→84→10",
                recipe=Recipe(lr=0.03, batch_size=256))
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


@register_model(default_side=28, name="lenet-bn", recipe=Recipe(lr=0.02, batch_size=256),
                description="LeNet with BatchNorm (D2L 8.5): BN after every conv and hidden FC, FC 256→120→84→10")
def lenet_bn(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """LeNet with batch normalisation, as in D2L §8.5 (Ioffe & Szegedy, "Batch Normalization:
    Accelerating Deep Network Training by Reducing Internal Covariate Shift", ICML 2015).
    Unpadded 5×5 convs: 28 → 24 → 12 → 8 → 4, so 16·4·4 = 256 features reach the first Linear."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )
