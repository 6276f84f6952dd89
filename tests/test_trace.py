import pytest
import torch
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archscope import trace
from archscope.errors import ModelFailure, UsageError
from archscope.models import get_entry, get_model

from models import conv_side

SEEDS = {"alexnet": {}, "vgg": {"ratio": 8}, "nin": {}, "googlenet": {}, "lenet": {}}


def test_vgg_ratio_8_block_shapes_by_conv_arithmetic():
    t = trace("vgg", ratio=8)
    side, expected = 224, []
    for channels in (8, 16, 32, 64, 64):
        side = conv_side(conv_side(side, 3, 1, 1), 2, 2)  # 3x3 pad-1 conv keeps it, the pool halves it
        expected.append([1, channels, side, side])
    expected.append([1, 10])
    assert [r.output_shape for r in t.rows] == expected
    assert expected[4] == [1, 64, 7, 7]


def test_nin_ten_rows():
    t = trace("nin")
    s1 = conv_side(224, 11, 4)
    p1 = conv_side(s1, 3, 2)
    s2 = conv_side(p1, 5, 1, 2)
    p2 = conv_side(s2, 3, 2)
    s3 = conv_side(p2, 3, 1, 1)
    p3 = conv_side(s3, 3, 2)
    s4 = conv_side(p3, 3, 1, 1)
    expected = [[1, 96, s1, s1], [1, 96, p1, p1], [1, 256, s2, s2], [1, 256, p2, p2], [1, 384, s3, s3],
                [1, 384, p3, p3], [1, 384, p3, p3], [1, 10, s4, s4], [1, 10, 1, 1], [1, 10]]
    assert [r.output_shape for r in t.rows] == expected
    assert expected[0] == [1, 96, 54, 54]


def test_googlenet_at_96():
    t = trace("googlenet")
    shapes = {r.name: r.output_shape for r in t.rows}
    side = conv_side(conv_side(96, 7, 2, 3), 3, 2, 1)
    assert shapes["b1"] == [1, 64, side, side] == [1, 64, 24, 24]
    side = conv_side(side, 3, 2, 1)
    assert shapes["b2"] == [1, 192, side, side]
    side = conv_side(side, 3, 2, 1)
    assert shapes["b3"] == [1, 480, side, side]
    side = conv_side(side, 3, 2, 1)
    assert shapes["b4"] == [1, 832, side, side] == [1, 832, 3, 3]
    assert shapes["b5"] == [1, 1024, 1, 1]
    assert shapes["fc"] == [1, 10]


def test_alexnet_flatten_in_forward_is_traced():
    t = trace("alexnet")
    side = 224
    for k, s, p in ((11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)):
        side = conv_side(side, k, s, p)
    assert t.row("conv").output_shape == [1, 256, side, side] == [1, 256, 5, 5]
    assert t.row("fc").input_shape == [1, 256 * side * side] == [1, 6400]
    assert t.output_shape == [1, 10]


@pytest.mark.parametrize("name", SEEDS)
def test_params_match_numel_and_torchinfo(name):
    t = trace(name, **SEEDS[name])
    model = get_model(name, **SEEDS[name])
    assert t.totals.params == sum(p.numel() for p in model.parameters())
    size = get_entry(name).default_side
    info = torchinfo.summary(model, input_size=(1, 1, size, size), verbose=0)
    assert t.totals.params == info.total_params
    assert t.totals.trainable_params == info.trainable_params


@pytest.mark.parametrize("name", SEEDS)
def test_flops_match_flop_counter_on_a_real_cpu_forward(name):
    t = trace(name, **SEEDS[name])
    model = get_model(name, **SEEDS[name]).eval()
    size = get_entry(name).default_side
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 1, size, size))
    assert t.totals.flops == counter.get_total_flops() > 0
    assert t.totals.macs * 2 == t.totals.flops


def test_lenet_flops_by_formula():
    # 2 x MACs: conv = out_elems * in_ch * k * k, linear = in * out
    macs = 6 * 28 * 28 * 1 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert trace("lenet").totals.flops == 2 * macs


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("name", SEEDS)
def test_rows_partition_the_totals(name, depth):
    t = trace(name, depth=depth, **SEEDS[name])
    assert sum(r.params for r in t.rows) == t.totals.params
    assert sum(r.trainable_params for r in t.rows) == t.totals.trainable_params
    assert sum(r.flops for r in t.rows) == t.totals.flops


def test_depth_two_goes_one_level_deeper():
    t = trace("alexnet", depth=2)
    names = [r.name for r in t.rows]
    assert names[:3] == ["conv.0", "conv.1", "conv.2"]
    assert t.row("conv.0").output_shape == [1, 96, 54, 54]
    assert t.row("conv.0").params == 96 * (121 + 1)
    assert t.row("fc.0").input_shape == [1, 6400]
    assert all(r.depth == 2 for r in t.rows)


def test_batch_and_input_size_options():
    t = trace("lenet", input_size=(8, 1, 28, 28))
    assert t.output_shape == [8, 10]
    assert trace("lenet", batch=4).input_shape == [4, 1, 28, 28]
    assert trace("googlenet", input_size=224).row("b1").output_shape == [1, 64, 56, 56]
    # FLOPs scale with the batch
    assert t.totals.flops == 8 * trace("lenet").totals.flops


class Functional(nn.Module):
    """FLOPs in the parent's forward (matmul, cat) and a parameter of its own."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.proj = nn.Parameter(torch.randn(4 * 8 * 8, 10))
        self.aux = nn.Linear(10, 3)  # never called: still reported

    def forward(self, x):
        y = torch.cat([self.conv(x), self.conv(x)], dim=0)
        return torch.matmul(y.flatten(1), self.proj)


def test_own_forward_flops_and_unexecuted_modules_are_their_own_rows():
    t = trace(Functional(), input_size=(1, 1, 8, 8))
    conv_flops = 2 * (4 * 8 * 8 * 9)
    assert t.row("conv").flops == 2 * conv_flops and t.row("conv").calls == 2
    own = t.row("Functional (self)")
    assert own.kind == "self" and own.flops == 2 * 2 * 256 * 10 and own.params == 2560
    aux = t.row("aux")
    assert aux.calls == 0 and aux.params == 33 and aux.output_shape is None
    assert sum(r.flops for r in t.rows) == t.totals.flops
    assert sum(r.params for r in t.rows) == t.totals.params == 40 + 2560 + 33


def test_shared_parameters_are_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(16, 16, bias=False)
            self.b = nn.Linear(16, 16, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    t = trace(Tied(), input_size=(2, 16))
    assert t.totals.params == 256
    assert [r.params for r in t.rows] == [256, 0]


def test_frozen_parameters_are_reported():
    net = get_model("lenet")
    for p in net[0].parameters():
        p.requires_grad_(False)
    t = trace(net, input_size=28)
    assert t.totals.params - t.totals.trainable_params == 156
    assert t.rows[0].frozen_params == 156


def test_tracing_a_user_model_leaves_it_exactly_as_it_was():
    torch.manual_seed(0)
    net = get_model("alexnet", fc_layers=1)
    net.train()
    net.fc.eval()  # mixed modes must survive
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    for device in ("meta", "cpu"):
        trace(net, input_size=224, depth=2, device=device)
        assert [m.training for m in net.modules()] == modes
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
        assert all(p.device.type == "cpu" for p in net.parameters())
        after = net.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_batchnorm_running_stats_untouched_on_cpu():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).train()
    mean = net[1].running_mean.clone()
    trace(net, input_size=(4, 1, 8, 8), device="cpu")
    assert torch.equal(net[1].running_mean, mean) and net[1].num_batches_tracked.item() == 0


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        y = self.conv(x)
        if y.sum().item() > 1e9:  # data-dependent: impossible on meta
            y = y * 2
        return y


def test_meta_failure_falls_back_to_cpu_and_says_so():
    t = trace(DataDependent(), input_size=(1, 1, 6, 6))
    assert t.device == "cpu"
    assert "meta" in t.note and "CPU" in t.note
    assert t.output_shape == [1, 2, 4, 4]
    assert t.totals.flops == 2 * 2 * 4 * 4 * 9


def test_real_weights_on_cpu():
    t = trace("lenet", device="cpu")
    assert t.device == "cpu" and t.totals.flops == trace("lenet").totals.flops


def test_model_failure_names_the_layer():
    with pytest.raises(ModelFailure) as info:
        trace("alexnet", input_size=227)
    d = info.value.diagnosis
    assert d.layer == "fc.0" and d.layer_type == "Linear" and d.arriving == [1, 9216]


def test_bad_depth_and_device():
    with pytest.raises(UsageError):
        trace("lenet", depth=0)
    with pytest.raises(UsageError):
        trace("lenet", device="tpu")


def test_json_dict_has_the_documented_keys():
    d = trace("lenet").to_dict()
    assert {"model", "options", "input_shape", "device", "flops_convention", "layers", "totals"} <= set(d)
    assert {"name", "type", "depth", "output_shape", "params", "trainable_params", "flops", "macs"} <= set(d["layers"][0])
    assert set(d["totals"]) == {"params", "trainable_params", "flops", "macs"}
    assert "2 x MACs" in d["flops_convention"]


def test_renders_in_jupyter():
    html = trace("lenet")._repr_html_()
    assert "<pre" in html and "Conv2d" in html and "61,706" in html


@pytest.mark.parametrize("where", ["cpu", "meta"])
def test_uninitialised_lazy_model_is_traced_on_meta_as_a_real_forward_counts_it(where):
    """A meta input has every shape a lazy layer needs: traced on meta, built on CPU or on meta,
    equal to FlopCounterMode on a real CPU forward of the same model materialised."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device(where):
        net = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(10), nn.LazyBatchNorm1d())
    t = trace(net, input_size=(2, 1, 8, 8), depth=1)
    reference = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(10), nn.LazyBatchNorm1d()).eval()
    with FlopCounterMode(display=False) as mode, torch.no_grad():
        reference(torch.zeros(2, 1, 8, 8))
    assert t.device == "meta" and "lazy" in t.note
    assert t.totals.flops == mode.get_total_flops()
    assert t.totals.params == sum(p.numel() for p in reference.parameters())
    assert t.row("2").params == 4 * 6 * 6 * 10 + 10 and t.row("2").input_shape == [2, 144]
    assert isinstance(net[2].weight, nn.parameter.UninitializedParameter)  # the user's object is untouched
    assert isinstance(net[3].running_mean, nn.parameter.UninitializedBuffer)


class InPlaceArithmetic(nn.Module):
    """Every in-place product PyTorch has, with shapes chosen so each one's MACs differ."""

    def forward(self, x):  # x: (2, 3, 4)
        a = torch.zeros(3, 5)
        a.addmm_(x[0].t()[:3, :3].contiguous(), torch.ones(3, 5))  # (3x3) @ (3x5): 45 MACs
        b = torch.zeros(2, 3, 6)
        b.baddbmm_(x, torch.ones(2, 4, 6))  # 2 x (3x4) @ (4x6): 144 MACs
        c = torch.zeros(3)
        c.addmv_(x[0], torch.ones(4))  # (3x4) @ 4: 12 MACs
        d = torch.zeros(3, 7)
        d.addbmm_(x, torch.ones(2, 4, 7))  # Σ over 2 of (3x4) @ (4x7): 168 MACs
        return a.sum() + b.sum() + c.sum() + d.sum()


def test_in_place_products_are_counted_as_their_out_of_place_forms():
    t = trace(InPlaceArithmetic(), input_size=(2, 3, 4), device="cpu")
    assert t.totals.macs == 45 + 144 + 12 + 168
    assert not t.uncounted_ops


# --------------------------------------------------------------------------- training-step rows: a parent's own work


class SelfAttention(nn.Module):
    """GPT-2's pattern: the attention matmuls are the parent's own ops, between its two Linears."""

    def __init__(self, d=16):
        super().__init__()
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1)
        return self.proj(weights @ v)


class Block(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.attn, self.mlp = SelfAttention(d), nn.Sequential(nn.Linear(d, 32), nn.GELU(), nn.Linear(32, d))

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x) + torch.einsum("btd,de->bte", x, self.mlp[2].weight[:, :16])  # einsum in the parent


def test_training_rows_charge_a_parents_own_backward_to_it_as_flop_counter_mode_does():
    torch.manual_seed(0)
    model = nn.Sequential(Block(), Block())
    x = torch.randn(2, 6, 16)
    with FlopCounterMode(display=False) as reference:
        model.train()
        model(x).sum().backward()
    counts = {name: sum(ops.values()) for name, ops in reference.get_flop_counts().items()}
    for depth in (1, 2, 3):
        t = trace(model, input_size=(2, 6, 16), train=True, depth=depth)
        assert sum(r.train_flops for r in t.rows) == t.totals.train_flops == counts["Global"]
        assert not any(r.name == "(outside any module)" for r in t.rows)
    t = trace(model, input_size=(2, 6, 16), train=True, depth=2)
    for r in t.rows:
        if r.kind == "module":
            assert r.train_flops == counts[f"Sequential.{r.name}"], r.name


class Scale(torch.autograd.Function):
    """A custom autograd Function whose forward and backward are matrix products."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad @ w.t(), x.transpose(-2, -1) @ grad


class UsesFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 16))
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(Scale.apply(x, self.w))  # the parent's own work, through a custom Function


def test_a_custom_autograd_function_in_a_parent_is_charged_to_its_self_row():
    model = nn.Sequential(nn.Linear(8, 16), UsesFunction())
    x = torch.randn(3, 8)
    with FlopCounterMode(display=False) as reference:
        model(x).sum().backward()
    counts = {name: sum(ops.values()) for name, ops in reference.get_flop_counts().items()}
    t = trace(model, input_size=(3, 8), train=True, depth=2)
    rows = {r.name: r.train_flops for r in t.rows}
    assert rows["1 (self)"] == counts["Sequential.1"] - counts["Sequential.1.out"] == 3 * (2 * 3 * 16 * 16)
    assert "(outside any module)" not in rows and sum(rows.values()) == counts["Global"]


def test_a_small_cpu_model_runs_on_cpu_by_default_and_on_meta_when_asked():
    net = nn.Sequential(nn.Linear(8, 4)).eval()
    default, forced = trace(net, input_size=(2, 8)), trace(net, input_size=(2, 8), device="meta")
    assert (default.device, forced.device) == ("cpu", "meta")
    assert default.totals.flops == forced.totals.flops == 2 * 2 * 8 * 4
