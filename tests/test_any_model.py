"""Any model, right numbers: input specs, rows in every structure, FLOPs that do not depend on
the device, uncounted ops, the user's model untouched. Expected values are hand formulas or
PyTorch's own counter on a model without fast paths, never archscope against itself."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archscope import trace
from archscope.errors import ModelFailure

from models import BLOCK_FLOPS, BLOCK_PARAMS, Block, SharedStages, linear_flops

# --------------------------------------------------------------------------- input specs

class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 4)
        self.b = nn.Linear(5, 4)

    def forward(self, x, y):
        return self.a(x) + self.b(y)


def test_one_input_per_positional_argument():
    t = trace(TwoInputs(), input_size=[(3, 8), (3, 5)])
    assert t.input_shape == [[3, 8], [3, 5]] and t.output_shape == [3, 4]
    assert t.totals.flops == linear_flops(3, 8, 4) + linear_flops(3, 5, 4)
    assert t.row("b").input_shape == [3, 5]


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.head = nn.Linear(32, 2)

    def forward(self, ids):
        return self.head(self.embed(ids).mean(1))


def test_integer_inputs_feed_an_embedding():
    t = trace(Tokens(), input_size="1x128:int64")
    assert t.input_dtypes == ["int64"] and t.row("embed").output_shape == [1, 128, 32]
    assert t.totals.flops == linear_flops(1, 32, 2)
    with pytest.raises(ModelFailure):  # a float input is what breaks an embedding
        trace(Tokens(), input_size=(1, 128))
    assert trace(Tokens(), input_size=(1, 16), dtypes=[torch.int32]).input_dtypes == ["int32"]


@pytest.mark.parametrize("conv, shape", [
    (nn.Conv1d(2, 4, 3), [1, 2, 50]),
    (nn.Conv3d(2, 4, 3), [1, 2, 50, 50, 50]),
])
def test_size_builds_an_input_of_the_first_layers_rank(conv, shape):
    t = trace(nn.Sequential(conv), input_size=50)
    assert t.input_shape == shape
    out_side = 48
    out_elems = 4 * out_side ** (len(shape) - 2)
    assert t.totals.flops == 2 * out_elems * 2 * 3 ** (len(shape) - 2)


def test_input_data_tensor_tuple_and_keywords():
    x, y = torch.randn(2, 8), torch.randn(2, 5)
    assert trace(TwoInputs(), input_data=(x, y)).output_shape == [2, 4]
    assert trace(TwoInputs(), input_data={"x": x, "y": y}).input_shape == {"x": [2, 8], "y": [2, 5]}
    assert trace(nn.Linear(8, 3), input_data=x).totals.flops == linear_flops(2, 8, 3)


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return {"out": y, "aux": y.mean((2, 3))}


def test_dict_outputs_keep_their_keys():
    t = trace(DictOut(), input_size=(1, 3, 8, 8))
    assert t.output_shape == {"out": [1, 4, 8, 8], "aux": [1, 4]}
    assert json.loads(json.dumps(t.to_dict()))["output_shape"]["out"] == [1, 4, 8, 8]


# --------------------------------------------------------------------------- rows partition

def assert_partition(model, input_size, depths=(1, 2, 3)):
    for depth in depths:
        t = trace(model, input_size=input_size, depth=depth)
        assert sum(r.flops for r in t.rows) == t.totals.flops
        assert sum(r.params for r in t.rows) == t.totals.params


def test_module_list_row_is_its_childrens_calls():
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(3))

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return x

    t = trace(Stack(), input_size=(1, 16))
    row = t.row("blocks")
    assert row.kind == "container"
    assert row.flops == 3 * BLOCK_FLOPS and row.params == 3 * BLOCK_PARAMS
    assert row.input_shape == [1, 16] and row.output_shape == [1, 16]
    assert_partition(Stack(), (1, 16))


def test_block_shared_by_two_stages_is_charged_to_each_caller():
    t = trace(SharedStages(), input_size=(1, 16))
    assert t.row("stage1").flops == BLOCK_FLOPS
    assert t.row("stage2").flops == BLOCK_FLOPS + linear_flops(1, 16, 4)
    assert t.row("stage1").params == BLOCK_PARAMS  # the shared block's weights, counted once
    assert t.row("stage2").params == 16 * 4 + 4
    assert t.totals.flops == 2 * BLOCK_FLOPS + linear_flops(1, 16, 4)
    t2 = trace(SharedStages(), input_size=(1, 16), depth=2)
    assert t2.row("stage1.block").calls == 1 and t2.row("stage2.block").calls == 1
    assert t2.row("stage2.block").flops == BLOCK_FLOPS and t2.row("stage2.block").params == 0
    assert_partition(SharedStages(), (1, 16))


def test_block_called_three_times():
    class Thrice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()

        def forward(self, x):
            return self.block(self.block(self.block(x)))

    t = trace(Thrice(), input_size=(1, 16))
    assert t.row("block").calls == 3 and t.row("block").flops == 3 * BLOCK_FLOPS
    assert_partition(Thrice(), (1, 16))


def test_tied_weights_counted_once_flops_per_use():
    class TiedLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(100, 16)
            self.out = nn.Linear(16, 100, bias=False)
            self.out.weight = self.embed.weight

        def forward(self, ids):
            return self.out(self.embed(ids))

    t = trace(TiedLM(), input_size="1x7:int64")
    assert t.totals.params == 1600 and [r.params for r in t.rows] == [1600, 0]
    assert t.totals.flops == linear_flops(7, 16, 100)
    assert_partition(TiedLM(), "1x7:int64")


def test_grandparent_calling_a_grandchild_directly_never_goes_negative():
    class Reach(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(Block(), Block())

        def forward(self, x):
            return self.inner[1](self.inner(x))  # inner.1 also called from outside inner

    t = trace(Reach(), input_size=(1, 16), depth=2)
    assert t.row("inner.1").calls == 2 and t.row("inner.1").flops == 2 * BLOCK_FLOPS
    assert_partition(Reach(), (1, 16))


# --------------------------------------------------------------------------- FLOPs anywhere

def mha_flops(batch, length, embed):
    return 2 * batch * 3 * length * embed * embed + 4 * batch * length * length * embed + \
        2 * batch * length * embed * embed


class SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


FAST_PATHS = [
    # name, builder, input shapes, hand formula
    ("multi-head attention", lambda: nn.MultiheadAttention(64, 4, batch_first=True), [(2, 10, 64)] * 3,
     mha_flops(2, 10, 64)),
    ("encoder layer", lambda: nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), [(2, 10, 64)],
     mha_flops(2, 10, 64) + 2 * linear_flops(20, 64, 128)),
    ("2-layer LSTM", lambda: nn.LSTM(32, 64, num_layers=2), [(5, 2, 32)],
     2 * 10 * (4 * 64 * 32 + 4 * 64 * 64) + 2 * 10 * (4 * 64 * 64 * 2)),
    ("bidirectional GRU", lambda: nn.GRU(32, 64, bidirectional=True), [(5, 2, 32)],
     2 * 2 * 10 * (3 * 64 * 32 + 3 * 64 * 64)),
    ("scaled dot-product attention", SDPA, [(2, 4, 10, 16)] * 3, 2 * 2 * (2 * 4 * 10 * 10 * 16)),
]


@pytest.mark.parametrize("name, build, shapes, expected", FAST_PATHS, ids=[c[0] for c in FAST_PATHS])
def test_flops_do_not_depend_on_the_device(name, build, shapes, expected):
    for device in ("meta", "cpu"):
        t = trace(build(), input_size=shapes, device=device)
        assert t.totals.flops == expected, device
        assert t.uncounted_ops == {}, device


def test_fallback_counts_the_same_flops_as_meta():
    class DataDependentAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(64, 4, batch_first=True)

        def forward(self, x):
            if x.sum().item() >= 0:  # impossible on meta: falls back to CPU (fast path there)
                x = self.attn(x, x, x, need_weights=False)[0]
            return x

    t = trace(DataDependentAttention(), input_size=(2, 10, 64))
    assert t.device == "cpu" and t.totals.flops == mha_flops(2, 10, 64)


def test_ops_without_a_formula_are_reported():
    class Spectral(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(33, 4)

        def forward(self, x):
            return self.fc(torch.fft.rfft(x).abs())

    t = trace(Spectral(), input_size=(2, 64))
    assert t.uncounted_ops == {"aten._fft_r2c": 1}
    assert t.totals.flops == linear_flops(2, 33, 4)
    assert t.to_dict()["uncounted_ops"] == {"aten._fft_r2c": 1}
    from archscope.report import render
    assert "not counted: aten._fft_r2c ×1" in render(t, "markdown")


def test_cnn_has_nothing_uncounted_and_matches_pytorchs_counter():
    # torchvision's resnet18 (no fast paths) on a real CPU forward, counted by PyTorch itself.
    import torchvision

    model = torchvision.models.resnet18().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    t = trace(model, input_size=(1, 3, 64, 64))
    assert t.totals.flops == counter.get_total_flops() and t.uncounted_ops == {}


# --------------------------------------------------------------------------- untouched model

class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        self.seen += 1
        if self.fc.weight.sum().item() > 1e9:  # reads its weights' values: falls back to CPU when traced on meta
            x = x * 2
        return self.fc(x)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_the_users_model_keeps_its_buffers_modes_and_hooks(device):
    net = Counting().train()
    calls = []
    net.register_forward_hook(lambda *a: calls.append(1))
    t = trace(net, input_size=(1, 4), device=device)
    assert t.device == "cpu" and "zeros" in t.note  # the note says which values were used
    assert net.seen.item() == 0 and net.training
    assert len(net._forward_hooks) == 1
    net(torch.zeros(1, 4))
    assert net.seen.item() == 1


def test_input_data_chooses_the_branch(tmp_path):
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.small = nn.Linear(4, 2)
            self.big = nn.Linear(4, 100)

        def forward(self, x):
            return self.big(x) if x.sum().item() > 0 else self.small(x)

    assert trace(Branchy(), input_size=(1, 4)).output_shape == [1, 2]
    path = tmp_path / "x.pt"
    torch.save(torch.ones(1, 4), path)
    from archscope.inputs import load_input_data
    t = trace(Branchy(), input_data=load_input_data(str(path)))
    assert t.output_shape == [1, 100] and "real data" in t.note


def test_a_model_without_forward_is_a_real_error_not_a_meta_limitation():
    class NoForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

    with pytest.raises(ModelFailure) as info:
        trace(NoForward(), input_size=(1, 2))
    assert "forward" in str(info.value) and "CPU" not in str(info.value)


def test_errors_inside_the_fallback_are_one_line():
    class BadAfterItem(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            self.fc.weight.sum().item()  # weights' values: meta cannot answer, so the run falls back to CPU
            return self.fc(x.view(3, 7))

    with pytest.raises(ModelFailure) as info:
        trace(BadAfterItem(), input_size=(1, 4))
    assert "\n" not in str(info.value) and "CPU" in str(info.value)


# --------------------------------------------------------------------------- tidy

def test_tracer_does_not_import_report():
    import subprocess
    import sys

    code = "import sys, archscope.analysis.api, archscope.analysis.check, archscope.analysis.memory, archscope.analysis.compare; print('archscope.report' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- builders that need CPU

def test_user_factory_that_cannot_build_on_meta_is_built_on_cpu(tmp_path):
    path = tmp_path / "widths.py"
    path.write_text(
        "import torch\nfrom torch import nn\n"
        "def build():\n"
        "    widths = torch.linspace(8, 32, 3).round().int().tolist()  # needs real values\n"
        "    layers, c = [], 1\n"
        "    for w in widths:\n"
        "        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]\n"
        "        c = w\n"
        "    return nn.Sequential(*layers)\n")
    t = trace(f"{path}:build", input_size=(1, 1, 8, 8))
    assert "built on CPU" in t.note and t.device == "meta"
    widths = [1, 8, 20, 32]
    assert t.totals.params == sum(o * (i * 9 + 1) for i, o in zip(widths, widths[1:]))
    assert t.totals.flops == sum(2 * o * 64 * i * 9 for i, o in zip(widths, widths[1:]))


def test_lazy_model_that_fails_is_one_line():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.LazyLinear(10), nn.Linear(5, 2))
    with pytest.raises(ModelFailure) as info:
        trace(net, input_size=(1, 1, 8, 8))
    assert "\n" not in str(info.value) and "lazy" in str(info.value)


# --------------------------------------------------------------------------- a module that looks at its hooks

def _encoder(layers=2, d=32, heads=4, ff=64):
    layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).eval()


class _Nested(nn.Module):
    """Encoder layers two containers down: the outer row's shapes come from every call below it."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.ModuleList([nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
                                                    for _ in range(2)])])

    def forward(self, x):
        for layer in self.blocks[0]:
            x = layer(x)
        return x


class _ReachesIn(nn.Module):
    """Calls a Linear inside an encoder layer from outside that layer."""

    def __init__(self):
        super().__init__()
        self.enc = _encoder()

    def forward(self, x):
        return self.enc.layers[0].linear1(self.enc(x))


def _fused_calls(monkeypatch):
    calls = []
    fused = torch._transformer_encoder_layer_fwd

    def counted(*args, **kwargs):
        calls.append(1)
        return fused(*args, **kwargs)

    monkeypatch.setattr(torch, "_transformer_encoder_layer_fwd", counted)
    return calls


def test_an_encoder_layer_below_the_rows_runs_its_own_fused_kernel(monkeypatch):
    """nn.TransformerEncoderLayer in eval takes its fused kernel only when no module of its tree has a
    hook: archscope's hooks would send it down the other path. Where its children are not rows, it
    runs as it does without archscope, and every row is the one the unfused path gives (on meta there
    is no fused kernel: the rows there are the reference)."""
    from archscope.analysis.hooks import reads_its_hooks

    assert reads_its_hooks(nn.TransformerEncoderLayer) and not reads_its_hooks(nn.Linear)
    calls = _fused_calls(monkeypatch)
    torch.manual_seed(0)
    model, x = _encoder(), torch.randn(2, 10, 32)
    expected = 2 * (mha_flops(2, 10, 32) + 2 * linear_flops(20, 32, 64))  # by hand, two layers
    with torch.no_grad():
        model(x)
    assert len(calls) == 2  # PyTorch's own eval forward is fused
    for depth, fused in ((1, 2), (2, 2), (3, 0)):  # at depth 3 the layers' children are rows: hooked as ever
        del calls[:]
        cpu, meta = trace(model, input_size=(2, 10, 32), depth=depth), trace(model, input_size=(2, 10, 32),
                                                                                depth=depth, device="meta")
        assert len(calls) == fused and cpu.device == "cpu", depth
        assert cpu.totals.flops == expected and cpu.uncounted_ops == {}
        assert [(r.name, r.input_shape, r.output_shape, r.flops, r.calls, r.kind) for r in cpu.rows] == \
            [(r.name, r.input_shape, r.output_shape, r.flops, r.calls, r.kind) for r in meta.rows], depth
    assert [r.name for r in trace(model, input_size=(2, 10, 32), depth=2).rows] == ["layers.0", "layers.1"]


@pytest.mark.parametrize("model", [_Nested, _ReachesIn], ids=["two containers down", "reached into"])
def test_a_record_the_fused_kernel_would_change_runs_again_with_every_layer_hooked(model, monkeypatch):
    calls = _fused_calls(monkeypatch)
    torch.manual_seed(0)
    m = model().eval()
    for depth in (1, 2):
        cpu, meta = trace(m, input_size=(2, 10, 32), depth=depth), trace(m, input_size=(2, 10, 32), depth=depth,
                                                                          device="meta")
        assert [(r.name, r.input_shape, r.output_shape, r.flops, r.calls) for r in cpu.rows] == \
            [(r.name, r.input_shape, r.output_shape, r.flops, r.calls) for r in meta.rows], depth
    assert calls  # the first run of each was fused, then it ran again hooked
