"""User code that misbehaves, and models that come wrapped: one clear line or the right numbers,
and machine output that stays machine-readable."""
import json

import pytest
import torch
from torch import nn

from archscope import memory, trace
from archscope.errors import ModelFailure, UsageError

from conftest import one_line, run_cli

NOISY = '''
import argparse
import torch
from torch import nn
print("importing noisy.py")
options = argparse.ArgumentParser().parse_args()  # a script's habit: parses its own command line

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
    def forward(self, x):
        print("forward of Net")
        return self.fc(x)

def build():
    print("building Net")
    return Net()

def leaves():
    raise SystemExit(3)
'''


@pytest.fixture
def noisy(tmp_path):
    path = tmp_path / "noisy.py"
    path.write_text(NOISY)
    return path


def test_what_user_code_prints_goes_to_stderr_and_json_stays_json(noisy):
    r = run_cli("shapes", f"{noisy}:build", "--input", "1x4", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["flops"] == 2 * 4 * 2  # a Linear(4, 2) on one row
    for line in ("importing noisy.py", "building Net", "forward of Net"):
        assert line in r.stderr and line not in r.stdout
    csv = run_cli("params", f"{noisy}:build", "--input", "1x4", "-f", "csv").stdout
    assert csv.splitlines()[0].startswith("name,type,depth")


def test_sys_exit_in_a_factory_is_one_line(noisy):
    r = run_cli("shapes", f"{noisy}:leaves", "--input", "1x4")
    assert r.returncode == 2
    line = one_line(r.stderr.replace("importing noisy.py\n", ""))
    assert "noisy.py:leaves called sys.exit(3) while building the model" in line


def test_a_pickled_input_file_is_one_line_without_torchs_warning(tmp_path):
    path = tmp_path / "batch.pt"
    torch.save({"x": torch.zeros(1, 1, 28, 28), "extra": nn.Linear(2, 2)}, path)  # a module: not weights-only
    r = run_cli("shapes", "lenet", "--input-data", path)
    assert r.returncode == 2 and "is not a tensor, tuple or dict" in one_line(r.stderr)


def test_a_users_error_mentioning_metadata_is_not_blamed_on_meta():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            raise ValueError("bad metadata in the batch")

    with pytest.raises(ModelFailure) as info:
        trace(Picky(), input_size=(1, 4))
    assert "bad metadata in the batch" in str(info.value) and "CPU" not in str(info.value)


def test_memory_takes_the_batch_of_the_input():
    eight = memory("lenet", input_size="8x1x28x28")
    assert eight.batch == 8 and eight.input_shape == [8, 1, 28, 28]
    one = memory("lenet")
    assert eight.activations_bytes == 8 * one.activations_bytes  # LeNet's activations grow with the batch
    assert memory("lenet", batch=2, input_size="8x1x28x28").batch == 2  # an explicit --batch wins


@pytest.mark.parametrize("wrap", [nn.DataParallel])
def test_a_wrapped_model_is_unwrapped(wrap):
    inner = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    t = trace(wrap(inner), input_size=(2, 4))
    assert [r.name for r in t.rows] == ["0", "1", "2"] and "DataParallel" in t.note
    assert t.totals.flops == 2 * 2 * (4 * 3 + 3 * 2)  # two rows through both Linears


# --------------------------------------------------------------------------- an explicit --input is never refused on a guess


class ReshapesItsInput(nn.Module):
    """D2L's idiom: a flat 784 vector becomes a 1x28x28 image inside forward."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(self.conv(x.reshape(-1, 1, 28, 28)).flatten(1))


class HeadDefinedFirst(nn.Module):
    """A Conv1d head defined before the Conv2d stem that runs first."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv1d(8, 2, 1)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return self.head(self.stem(x).mean(dim=3))


@pytest.mark.parametrize("model, shape", [(ReshapesItsInput(), (2, 784)), (HeadDefinedFirst(), (2, 3, 16, 16))])
def test_an_explicit_input_runs_as_given(model, shape):
    from archscope.analysis.api import trace

    t = trace(model, input_size="x".join(map(str, shape)))
    assert t.output_shape == list(model(torch.zeros(shape)).shape)


def test_a_side_says_what_it_assumed():
    from archscope.analysis.api import trace
    from archscope.errors import ModelFailure

    with pytest.raises(ModelFailure) as failed:
        trace(HeadDefinedFirst(), input_size=16)  # read through the Conv1d: 1x8x16, which the stem refuses
    assert "--size 16 was read as 1x8x16 from the model's first-defined conv (Conv1d" in str(failed.value)
    t = trace(ReshapesItsInput(), input_size=28)
    assert "--size 28 was read as 1x1x28x28" in t.note


def test_a_compiled_module_shows_the_original_rows():
    from archscope.analysis.api import trace

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    compiled = torch.compile(net)  # compiling is lazy: nothing runs until it is called
    t = trace(compiled, input_size=(1, 1, 8, 8))
    assert [r.name for r in t.rows] == ["0", "1", "2", "3"]
    assert t.totals.flops == 2 * (4 * 6 * 6 * 9 + 4 * 6 * 6 * 3)  # conv and linear MACs by hand, x 2
    assert "torch.compile wrapper was unwrapped" in t.note


def test_a_lazy_model_on_meta_traces_there():
    """A meta input has every shape a lazy layer needs (it used to be refused on meta)."""
    from archscope.analysis.api import trace

    with torch.device("meta"):
        lazy = nn.Sequential(nn.LazyLinear(4), nn.ReLU())
    t = trace(lazy, input_size=(2, 8))
    assert t.totals.params == 8 * 4 + 4 and t.totals.flops == 2 * 2 * 8 * 4 and t.device == "meta"
    eager = nn.Sequential(nn.LazyLinear(4), nn.ReLU())  # built on CPU: the same
    assert trace(eager, input_size=(2, 8)).totals.params == 8 * 4 + 4


# --------------------------------------------------------------------------- outputs that are dataclasses and NamedTuples

from dataclasses import dataclass  # noqa: E402
from typing import NamedTuple  # noqa: E402


@dataclass
class Prediction:
    logits: torch.Tensor
    features: torch.Tensor
    label: str = "unused"


class Pair(NamedTuple):
    logits: torch.Tensor
    features: torch.Tensor


class Returns(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind, self.body, self.head = kind, nn.Linear(6, 4), nn.Linear(4, 3)

    def forward(self, x):
        features = self.body(x)
        return self.kind(self.head(features), features)


@pytest.mark.parametrize("kind", [Prediction, Pair])
def test_dataclass_and_namedtuple_outputs_show_their_fields_and_train(kind):
    from archscope.analysis.api import trace

    t = trace(Returns(kind), input_size=(2, 6), train=True)
    assert t.output_shape == {"logits": [2, 3], "features": [2, 4]}
    assert json.loads(t.to_json())["output_shape"] == {"logits": [2, 3], "features": [2, 4]}
    # a real step: d(sum of both outputs) reaches both Linears; forward + grad weight (+ grad input for head)
    assert t.totals.train_flops == 2 * (2 * 2 * 6 * 4) + 3 * (2 * 2 * 4 * 3)


def test_a_transformer_encoder_with_a_padding_mask_traces_its_ragged_fast_path():
    from archscope.analysis.api import trace

    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True), 2).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])  # lengths 5 and 3
    t = trace(enc, input_data={"src": x, "src_key_padding_mask": mask}, depth=3)
    assert t.output_shape == list(enc(x, src_key_padding_mask=mask).shape) == [2, 5, 16]
    # By hand, per layer: only the 8 real tokens are computed; each sequence attends within itself.
    d, ff, tokens, pairs = 16, 32, 5 + 3, 5 * 5 + 3 * 3
    per_layer = 2 * tokens * 4 * d * d + 2 * 2 * pairs * d + 2 * 2 * tokens * d * ff
    assert t.totals.flops == 2 * per_layer
    assert not t.uncounted_ops


def test_a_half_model_fed_float32_is_refused_on_meta_as_a_real_kernel_would():
    from archscope.errors import UsageError

    half = nn.Sequential(nn.Linear(8, 4)).half()
    with pytest.raises(RuntimeError):  # the real kernel's own refusal: nobody here wrote it
        half(torch.zeros(2, 8))
    with pytest.raises(ModelFailure) as refused:
        trace(half, input_size=(2, 8))
    assert "different dtypes (float16 and float32)" in str(refused.value) and "layer '0'" in str(refused.value)
    with pytest.raises(UsageError) as memory_refused:
        memory(half, input_size=(2, 8))
    assert "different dtypes" in str(memory_refused.value)
    assert trace(half, input_size="2x8:float16").totals.flops == 2 * 2 * 8 * 4  # the right dtype runs


class Attends(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 3 * 8)

    def forward(self, x):  # (2, 16, 8) → heads of 2 x 4
        q, k, v = (t.unflatten(-1, (2, 4)).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_sdpa_training_flops_are_the_same_on_meta_and_cpu_and_match_the_hand_formula():
    meta = trace(Attends(), input_size=(2, 16, 8), train=True)
    cpu = trace(Attends(), input_size=(2, 16, 8), train=True, device="cpu")
    linear = 2 * 2 * 16 * 8 * 24  # forward; its backward is the weight gradient only (the input needs none)
    attention = 2 * 2 * (2 * 2 * 16 * 16 * 4)  # q·kᵀ and weights·v, batch 2, 2 heads, 16 x 16, head size 4
    assert meta.totals.train_flops == cpu.totals.train_flops == 2 * linear + attention + 2 * attention  # 4 in backward


def test_a_dynamically_quantized_model_counts_its_int8_weights_and_their_products():
    from archscope.analysis.api import trace

    float_model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    quantized = torch.ao.quantization.quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)
    assert sum(p.numel() for p in quantized.parameters()) == 0  # what PyTorch itself says
    t = trace(quantized, input_size=(3, 16))
    assert t.totals.params == sum(p.numel() for p in float_model.parameters()) == 16 * 8 + 8 + 8 * 4 + 4
    assert t.totals.trainable_params == 0
    assert t.totals.flops == 2 * 3 * (16 * 8 + 8 * 4)  # the float layers' multiply-adds, by hand
    assert [r.params for r in t.rows] == [16 * 8 + 8, 0, 8 * 4 + 4]
    assert "int8" in t.note and not t.uncounted_ops


@pytest.mark.parametrize("compile_", ["script", "trace"])
def test_a_torchscript_module_is_counted_at_dispatch_level_and_says_what_is_lost(compile_):
    from torch.utils.flop_counter import FlopCounterMode

    from archscope.analysis.api import trace as archscope_trace

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.zeros(1, 1, 8, 8)
    scripted = torch.jit.script(net) if compile_ == "script" else torch.jit.trace(net, x)
    with FlopCounterMode(display=False) as reference, torch.no_grad():
        scripted(x)
    t = archscope_trace(scripted, input_size=(1, 1, 8, 8))
    assert t.totals.flops == reference.get_total_flops() == 2 * (4 * 6 * 6 * 9 + 3 * 4 * 6 * 6)
    assert t.totals.params == sum(p.numel() for p in net.parameters())
    assert t.output_shape == [1, 3] and "TorchScript" in t.note and "per-layer shapes are lost" in t.note


class Branches(nn.Module):
    """Reads its input's values: zeros take one branch, anything else the other."""

    def __init__(self):
        super().__init__()
        self.zeros, self.other = nn.Linear(8, 4), nn.Linear(8, 16)

    def forward(self, x):
        if (x == 0).all():
            return self.zeros(x)
        return self.other(x)


class WritesThenReads(Branches):
    def forward(self, x):
        y = x.clone()
        y.add_(1)  # written in place: its values are no longer the input's known zeros
        return self.zeros(x) if bool(y.sum() == 0) else self.other(x)


def test_a_branch_on_the_inputs_values_follows_the_zeros_archscope_made_as_a_real_run_does():
    t = trace(Branches(), input_size=(2, 8), device="meta")
    assert t.device == "meta" and "read its input's values" in t.note
    assert t.output_shape == list(Branches()(torch.zeros(2, 8)).shape) == [2, 4]
    assert t.totals.flops == 2 * 2 * 8 * 4
    # A value written in place is forgotten, not guessed: the run falls back to CPU and takes the real branch.
    t = trace(WritesThenReads(), input_size=(2, 8), device="meta")
    assert t.device == "cpu" and t.output_shape == [2, 16]


class BigReader(nn.Module):
    """4.5 GiB of float32 weights whose forward reads one of their values (meta cannot answer it)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40_000, 30_000)

    def forward(self, x):
        if self.fc.weight.sum().item() > 0:
            x = x * 2
        return self.fc(x)


def test_a_model_too_big_for_the_cpu_fallback_is_refused_in_one_line_not_allocated():
    with torch.device("meta"):
        big = BigReader()
    assert 4 * sum(p.numel() for p in big.parameters()) > 4 * 2**30  # over the fallback's 4 GiB
    with pytest.raises(UsageError, match=r"would need 4\.5 GiB of weights") as info:
        trace(big, input_size=(1, 40_000))
    assert "\n" not in str(info.value)
