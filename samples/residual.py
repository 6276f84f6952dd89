"""A small residual network (He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016; D2L §8.6): skip connections make it non-Sequential, so its layers can't be
chained by hand. archscope traces it with one real forward call.

    archscope shapes samples/residual.py:build --depth 2
"""
from torch import nn
from torch.nn import functional as F


class Residual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # A 1×1 conv matches the shortcut's shape when the block changes width or stride.
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride=stride)
                         if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNetSmall(nn.Module):
    input_size = 96

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 32, 7, stride=2, padding=3), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        self.stage1 = nn.Sequential(Residual(32, 32), Residual(32, 32))
        self.stage2 = nn.Sequential(Residual(32, 64, stride=2), Residual(64, 64))
        self.stage3 = nn.Sequential(Residual(64, 128, stride=2), Residual(128, 128))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.head(self.stage3(self.stage2(self.stage1(self.stem(x)))))


def build(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return ResNetSmall(in_channels, num_classes)
