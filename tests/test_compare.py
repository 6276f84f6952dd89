"""archscope compare, against values derived independently of archscope."""
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from archscope.analysis.compare import compare
from archscope.models import get_model

from models import ALEXNET, alexnet_final_side


def rf_by_hand(layers):
    size, jump = 1, 1
    for k, s, _ in layers:
        size += (k - 1) * jump
        jump *= s
    return size


def test_alexnet_and_vgg_side_by_side():
    alex, vgg = compare(["alexnet", "vgg"], model_kwargs={"ratio": 8})
    assert alex.params == sum(p.numel() for p in get_model("alexnet").parameters())
    assert alex.first_fc_width == 256 * alexnet_final_side(224) ** 2 == 6400
    assert alex.smallest_side == next(s for s in range(1, 400) if alexnet_final_side(s) == 5) == 195
    assert alex.output_rf == [rf_by_hand(ALEXNET)] * 2
    model = get_model("alexnet").train()
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(2, 1, 224, 224)).sum().backward()
    assert alex.train_flops == counter.get_total_flops() // 2
    # --ratio applies to VGG only; its FC sees 64·7·7 at 224, and 224..255 all give 7×7.
    assert vgg.first_fc_width == 3136 and vgg.smallest_side == 224 and vgg.params == 2018346


def test_cli_formats(cli):
    r = cli("compare", "lenet", "nin", "-f", "json")
    rows = json.loads(r.stdout)
    assert [row["model"] for row in rows] == ["lenet", "nin"] and rows[1]["first_fc_width"] is None
    md = cli("compare", "lenet", "tv:resnet18", "-f", "markdown").stdout
    assert "| tv:resnet18 | 1×3×224×224 | 11,689,512 |" in md
    assert cli("compare", "lenet", "nosuchmodel").exit_code == 2


def test_output_rf_is_the_deepest_feature_map_even_after_global_pooling():
    """GoogLeNet's deepest feature map is b5's 1×1024×1×1 after its global pool: it sees the whole
    input (779 px across, the field tests/test_receptive_field.py checks against autograd), not the
    651 of the last conv before the pool."""
    from archscope import trace

    (goog,) = compare(["googlenet"])
    b5 = trace("googlenet", rf=True).row("b5").rf
    assert goog.output_rf == b5["size"] == [779, 779] and goog.output_rf_whole and b5["whole_input"]
    (alex,) = compare(["alexnet"])
    assert not alex.output_rf_whole  # AlexNet's last map, 1×256×5×5, sees 195 px of the 224
