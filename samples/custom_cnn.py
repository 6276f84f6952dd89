"""A correct small CNN for 28×28 Fashion-MNIST.

    archscope summary samples/custom_cnn.py:build
    archscope check samples/custom_cnn.py:build --size 224   # its Linear was sized for 28×28
"""
from torch import nn


def build(in_channels: int = 1, num_classes: int = 10, width: int = 32) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2),                                                  # 14×14
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.MaxPool2d(2),                                                  # 7×7
        nn.Flatten(),
        nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )
    model.input_size = 28  # archscope's default input side for this model
    return model
