"""FLOPs of one training step (forward + backward), against PyTorch's own counter on a real CPU
step and hand formulas."""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archscope import trace
from archscope.models import get_entry, get_model, list_models

from models import BLOCK_FLOPS, SharedStages, linear_flops


def real_cpu_step_flops(model, x):
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        out.sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", list_models())
def test_training_step_matches_pytorchs_counter_on_a_real_cpu_step(name):
    options = {"ratio": 8} if name == "vgg" else {}
    side = get_entry(name).default_side
    t = trace(name, train=True, batch=2, depth=2, **options)
    torch.manual_seed(0)
    expected = real_cpu_step_flops(get_model(name, **options), torch.randn(2, 1, side, side))
    assert t.totals.train_flops == expected
    assert sum(r.train_flops for r in t.rows) == t.totals.train_flops  # rows partition it
    assert all(r.train_flops >= r.flops >= 0 for r in t.rows)


def test_linear_layers_by_hand():
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    t = trace(net, input_size=(5, 8), train=True)
    first, second = 2 * 5 * 8 * 16, 2 * 5 * 16 * 4
    # The first layer computes no gradient for the input (an image needs none): forward + grad_weight.
    assert t.row("0").train_flops == 2 * first
    assert t.row("2").train_flops == 3 * second  # forward + grad_input + grad_weight
    assert t.totals.train_flops == 2 * first + 3 * second


def test_grouped_conv_backward_costs_what_the_forward_costs():
    # PyTorch 2.14's own formula counts a depthwise conv's grad_weight 64 times: ours counts it once.
    net = nn.Sequential(nn.Conv2d(64, 64, 1), nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False))
    t = trace(net, input_size=(1, 64, 16, 16), train=True)
    depthwise = 2 * 64 * 16 * 16 * 9
    assert t.row("1").flops == depthwise and t.row("1").train_flops == 3 * depthwise


def test_shared_block_backward_goes_to_each_caller():
    t = trace(SharedStages(), input_size=(1, 16), train=True)
    head = linear_flops(1, 16, 4)
    assert t.row("stage1").train_flops == 2 * BLOCK_FLOPS  # the first layer: no grad_input
    assert t.row("stage2").train_flops == 3 * BLOCK_FLOPS + 3 * head
    assert sum(r.train_flops for r in t.rows) == t.totals.train_flops


def test_train_on_the_command_line(cli):
    import json

    r = cli("flops", "lenet", "--train", "-f", "json")
    d = json.loads(r.stdout)
    assert d["totals"]["train_flops"] > 2 * d["totals"]["flops"]
    assert "Train FLOPs" in cli("flops", "lenet", "--train").stdout
    r = cli("summary", "tv:inception_v3", "--train")  # BatchNorm in train mode at batch 1
    assert r.exit_code == 2 and "--batch 2" in r.stderr


def test_a_users_model_is_untouched_by_a_training_trace():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trace(net, input_size=(3, 4), train=True)
    trace(net, input_size=(3, 4), train=True, device="cpu")
    assert all(p.grad is None for p in net.parameters()) and not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
