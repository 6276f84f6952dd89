"""VGG-11 as in D2L §8.2 (Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from torch import nn

from archscope.models.registry import Recipe, register_model

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
# (convs per block, channels) for the four depths of the paper's table 1 (configurations A, B, D, E).
ARCHS = {
    11: VGG11,
    13: ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    16: ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    19: ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` × (3×3 conv, pad 1, ReLU), then a 2×2 max-pool that halves the side."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


@register_model(default_side=224, recipe=Recipe(lr=0.001, batch_size=128),
                description="VGG-11 (D2L 8.2): 5 VGG blocks, FC 25088→4096→4096→10; --ratio divides widths, --arg arch=16")
def vgg(
    in_channels: int = 1,
    num_classes: int = 10,
    ratio: int = 1,
    conv_arch: Optional[Sequence[Tuple[int, int]]] = None,
    dropout: float = 0.5,
    arch: int = 11,
) -> nn.Module:
    """VGG; ``arch`` = 11 | 13 | 16 | 19 picks the depth (D2L builds 11), ``conv_arch`` any
    (convs, channels) list instead, ``ratio=r`` divides every channel count and the hidden FC width by ``r``."""
    if ratio < 1:
        raise ValueError("ratio must be >= 1")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(map(str, ARCHS))}")
    conv_arch = ARCHS[arch] if conv_arch is None else conv_arch
    net = nn.Sequential()
    channels = in_channels
    for i, (num_convs, out) in enumerate(conv_arch, start=1):
        net.add_module(f"vgg_block_{i}", vgg_block(num_convs, channels, out // ratio))
        channels = out // ratio
    hidden = 4096 // ratio
    net.add_module(
        "fc",
        nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        ),
    )
    return net
