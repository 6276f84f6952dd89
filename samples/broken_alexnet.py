"""AlexNet with a classic bug: the first Linear was sized for 227×227 inputs
(256·6·6 = 9216) while the data is 224×224 (256·5·5 = 6400 arrive).

    archscope check samples/broken_alexnet.py:build
"""
import torch
from torch import nn


class BrokenAlexNet(nn.Module):
    input_size = 224

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),  # bug: should be 6400 at 224×224
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return BrokenAlexNet(in_channels, num_classes)
