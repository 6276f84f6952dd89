"""Models and hand formulas that several test modules share (written here, independently of archscope)."""
import torch
import torchvision
from torch import nn

from archscope.models import torchvision as torchvision_source


def conv_side(side, kernel, stride=1, padding=0):
    """The conv/pool output side, written out here independently of archscope."""
    return (side + 2 * padding - kernel) // stride + 1


def linear_flops(tokens, fan_in, fan_out):
    return 2 * tokens * fan_in * fan_out


# AlexNet's layers as (kernel, stride, padding), conv and pool alike, in order.
ALEXNET = [(11, 4, 0),  # the seed: no padding in the first conv
           (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]


def alexnet_final_side(side):
    """The side after AlexNet's conv part, or None when it falls below 1 on the way."""
    for k, s, p in ALEXNET:
        if side + 2 * p < k:
            return None
        side = conv_side(side, k, s, p)
    return side


class Block(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return torch.relu(self.fc(x))


BLOCK_FLOPS = linear_flops(1, 16, 16)  # one call of Block on a 1×16 input
BLOCK_PARAMS = 16 * 16 + 16


class SharedStages(nn.Module):
    """One block held by two stages; each stage calls it once, then its own head."""

    def __init__(self):
        super().__init__()
        shared = Block()
        self.stage1 = nn.Sequential()
        self.stage1.add_module("block", shared)
        self.stage2 = nn.Sequential()
        self.stage2.add_module("block", shared)
        self.stage2.add_module("head", nn.Linear(16, 4))

    def forward(self, x):
        return self.stage2(self.stage1(x))


# --------------------------------------------------------------------------- torchvision's published figures

# Classification models whose published numbers describe another build than the default one,
# with the reason. Everything else must match torchvision's weights.meta to the digit.
BUILD_ARGS = {
    # The pretrained GoogLeNets are built with aux_logits=False: num_params leaves the two
    # auxiliary heads out (6,624,904 against 13,004,888 with them).
    "googlenet": {"aux_logits": False},
    "quantized_googlenet": {"aux_logits": False},
}


def classification_models():
    models = torchvision.models
    names = models.list_models(module=models) + models.list_models(module=models.quantization)
    return sorted(n for n in names if torchvision_source.weights(n) is not None)


def published(name, side):
    """(num_params, _ops) of the weights whose crop size matches the traced input."""
    for weights in torchvision.models.get_model_weights(name):
        crop = weights.transforms.keywords.get("crop_size")
        if crop == side or crop == [side, side]:
            return weights.meta["num_params"], weights.meta["_ops"]
    weights = torchvision_source.weights(name)
    return weights.meta["num_params"], weights.meta["_ops"]
