"""AlexNet as in D2L §8.1 (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with
Deep Convolutional Neural Networks", NeurIPS 2012), sized for 1-channel 224×224 Fashion-MNIST.

The seed's first convolution has no padding (``nn.Conv2d(1, 96, 11, 4)``); a later edition of
the book pads it by 1 (``conv1_padding=1``). Both give 6400 features at 224×224, but the sides
that work differ: 195..226 for the seed, 193..224 for the later edition."""
from __future__ import annotations

import torch
from torch import nn

from archscope.models.registry import Recipe, register_model


class AlexNet(nn.Module):
    """A ``conv`` feature extractor and an ``fc`` head; the flatten lives in ``forward``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, fc_layers: int = 2, dropout: float = 0.5,
                 conv1_padding: int = 0):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=conv1_padding), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        hidden: list[nn.Module] = []
        width = 6400  # 256 channels × 5 × 5 at a 224×224 input
        for _ in range(fc_layers):
            hidden += [nn.Linear(width, 4096), nn.ReLU(), nn.Dropout(dropout)]
            width = 4096
        self.fc = nn.Sequential(*hidden, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.flatten (not .view) so channels_last activations flatten safely.
        return self.fc(torch.flatten(self.conv(x), 1))


# Adam at 1e-3 spikes on AlexNet (no BatchNorm).
@register_model(default_side=224, description="AlexNet (D2L 8.1): 5 convs, FC 6400→4096→4096→10",
                recipe=Recipe(lr=0.0001, batch_size=128))
def alexnet(in_channels: int = 1, num_classes: int = 10, fc_layers: int = 2, dropout: float = 0.5,
            conv1_padding: int = 0) -> nn.Module:
    """AlexNet; ``fc_layers=1`` gives the CPU-trimmed head 6400→4096→10; ``conv1_padding=1`` is
    the later edition's first convolution (the seed's has none)."""
    if fc_layers < 0:
        raise ValueError("fc_layers must be >= 0")
    return AlexNet(in_channels, num_classes, fc_layers, dropout, conv1_padding)
