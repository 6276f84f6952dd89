import json
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from archscope.analysis.check import check, parse_sizes, scan_sizes
from archscope.analysis.diagnose.solver import smallest_side
from archscope.errors import UsageError

from models import ALEXNET, alexnet_final_side, conv_side


def test_seed_checks_hold():
    alex = check("alexnet")
    assert alex.ok and alex.first_linear().arriving == alex.first_linear().expected == 6400
    vgg = check("vgg", ratio=8)
    assert vgg.ok and vgg.first_linear().arriving == 3136
    goog = check("googlenet")
    assert goog.ok and goog.first_linear().arriving == 1024


def test_alexnet_at_227():
    report = check("alexnet", input_size=227)
    assert not report.ok
    fc = report.first_linear()
    final = alexnet_final_side(227)
    assert fc.arriving == 256 * final * final == 9216 and fc.expected == 6400 and fc.ok is False
    d = report.diagnosis
    assert d.layer == "fc.0" and d.kind == "width" and d.arriving == [1, 9216]
    assert "in_features=9216" in d.fix and "224×224" in d.fix
    assert [c.ok for c in report.layers if c.field == "in_features"] == [False, None, None]


def test_alexnet_at_32_names_the_layer_and_the_smallest_side():
    report = check("alexnet", input_size=32)
    d = report.diagnosis
    # Where does the side fall below the kernel? Walk AlexNet's layers independently.
    side, failing_index = 32, None
    for i, (k, s, p) in enumerate(ALEXNET):
        if side + 2 * p < k:
            failing_index = i
            break
        side = conv_side(side, k, s, p)
    module_index = [0, 2, 3, 5, 6, 8, 10, 12][failing_index]  # positions inside AlexNet.conv
    assert d.kind == "spatial" and d.layer == f"conv.{module_index}" and d.layer_type == "MaxPool2d"
    assert d.arriving == [1, 256, side, side]
    smallest = next(s for s in range(1, 400) if alexnet_final_side(s) is not None)
    assert f"at least {smallest}×{smallest}" in d.fix
    assert smallest_side(trace_model("alexnet"), (1, 1, 32, 32)) == smallest


def trace_model(name, **kwargs):
    from archscope.models import get_model
    with torch.device("meta"):
        return get_model(name, **kwargs)


def test_vgg_with_three_channels_fed_one():
    report = check("vgg", input_size=(1, 1, 224, 224), in_channels=3, ratio=8)
    d = report.diagnosis
    assert d.kind == "channels" and d.layer == "vgg_block_1.0" and d.arriving == [1, 1, 224, 224]
    assert "in_channels=3" in d.problem and "1x3x224x224" in d.fix
    assert report.layers[0].ok is False


def test_user_model_sized_for_28_fed_224(cli):
    report = check("samples/custom_cnn.py:build", input_size=224)
    d = report.diagnosis
    side = 224 // 2 // 2  # two 2×2 pools after 'same' convs
    assert d.kind == "width" and d.arriving == [1, 64 * side * side] and "in_features=3136" in d.problem
    assert f"in_features={64 * side * side}" in d.fix and "28..31 (e.g. 28×28)" in d.fix  # 28..31 all pool to 7×7
    r = cli("check", "samples/custom_cnn.py:build", "--size", "224")
    assert r.exit_code == 1 and "fix: set in_features=200704" in r.stdout


def test_alexnet_size_scan_matches_the_arithmetic():
    start = time.perf_counter()
    result = scan_sizes("alexnet", 32, 511)
    elapsed = time.perf_counter() - start
    expected_valid = [s for s in range(32, 512) if alexnet_final_side(s) == 5]
    assert result.valid_for("fc.0") == expected_valid
    assert expected_valid == list(range(expected_valid[0], expected_valid[-1] + 1))  # contiguous
    assert expected_valid[0] <= 224 <= expected_valid[-1]
    assert result.running == expected_valid and result.smallest_running == expected_valid[0]
    spatial = [p.side for p in result.probes if p.kind == "spatial"]
    assert spatial == [s for s in range(32, 512) if alexnet_final_side(s) is None]
    assert len(result.probes) == 480
    print(f"480 AlexNet sizes scanned in {elapsed:.2f} s")  # the benchmark measures it; no timing assertion


def test_check_cli_exit_codes_and_json(cli):
    assert cli("check", "alexnet").exit_code == 0
    assert cli("check", "vgg", "--ratio", "8").exit_code == 0
    ok = cli("check", "googlenet")
    assert ok.exit_code == 0 and "1024" in ok.stdout and "✓" in ok.stdout
    bad = cli("check", "alexnet", "--size", "227", "-f", "json")
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["ok"] is False and data["diagnosis"]["layer"] == "fc.0"
    assert data["layers"][5] == {**data["layers"][5], "name": "fc.0", "expected": 6400, "arriving": 9216, "ok": False}


def test_check_sizes_cli(cli):
    r = cli("check", "alexnet", "--sizes", "32..511", "-f", "json")
    data = json.loads(r.stdout)["sizes"]
    lo = min(s for s in range(32, 512) if alexnet_final_side(s) == 5)
    hi = max(s for s in range(32, 512) if alexnet_final_side(s) == 5)
    assert data["linears"]["fc.0"] == {"in_features": 6400, "valid_sides": [[lo, hi]]}
    assert data["smallest_running"] == lo
    table = cli("check", "alexnet", "--sizes", "200..230")
    assert f"fc.0 keeps in_features=6400 at sides: 200..{hi}" in table.stdout  # the scan starts at 200


@pytest.mark.parametrize("text", ["32-512", "a..b", "0..5", "9..3"])
def test_bad_sizes(cli, text):
    r = cli("check", "alexnet", "--sizes", text)
    assert r.exit_code == 2 and "malformed --sizes" in r.stderr
    with pytest.raises(UsageError, match="malformed --sizes"):
        parse_sizes(text)


@pytest.mark.parametrize("command", ["shapes", "params", "flops", "summary"])
def test_views_show_the_diagnosis_not_a_traceback(cli, command):
    r = cli(command, "alexnet", "--size", "32")
    assert r.exit_code == 2 and "conv.5 (MaxPool2d) failed" in r.stderr and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- property test

layer = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 7), st.integers(1, 3), st.integers(0, 3)),
    st.tuples(st.just("max"), st.integers(2, 4), st.integers(1, 3), st.integers(0, 2)),
    st.tuples(st.just("avg"), st.integers(2, 4), st.integers(1, 3), st.integers(0, 2)),
)


def build_stack(spec):
    layers, channels = [], 1
    for kind, k, s, p in spec:
        if kind == "conv":
            p = min(p, k - 1)
            layers.append(nn.Conv2d(channels, 2, k, stride=s, padding=p))
            channels = 2
        else:
            p = min(p, k // 2)  # PyTorch requires pooling padding <= kernel / 2
            layers.append((nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(k, stride=s, padding=p))
    return nn.Sequential(*layers)


def runs(model, side):
    try:
        model(torch.empty(1, 1, side, side, device="meta"))
        return True
    except RuntimeError:
        return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(layer, min_size=1, max_size=6))
def test_smallest_side_really_runs_and_one_less_fails(spec):
    with torch.device("meta"):
        model = build_stack(spec)
    side = smallest_side(model, (1, 1, 8, 8))
    assert side is not None
    assert runs(model, side)
    assert side == 1 or not runs(model, side - 1)


def test_check_csv_and_markdown(cli):
    rows = cli("check", "alexnet", "--size", "227", "-f", "csv").stdout.splitlines()
    assert rows[0] == "name,type,field,expected,arriving,ok"
    assert "fc.0,Linear,in_features,6400,9216,False" in rows and "fc.3,Linear,in_features,4096,," in rows  # not reached: both empty
    md = cli("check", "alexnet", "--size", "227", "-f", "markdown").stdout
    assert "| fc.0 | Linear | in_features=6400 | 9216 | 1×9216 | ✗ |" in md and "- fix: set in_features=9216" in md


def test_a_linear_shared_by_two_sequentials_is_checked_where_it_is_called():
    """The Linear is held by ``a`` and ``b`` and called through ``b``: it is reached (as ``b.fc``, the
    row's name), the model is correct at 4×4 (1 × 4 × 4 = 16 features), and at 5×5 the fix names 4×4."""
    fc = nn.Linear(16, 4)

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Flatten())
            self.a.add_module("fc", fc)
            self.b = nn.Sequential(nn.Flatten())
            self.b.add_module("fc", fc)

        def forward(self, x):
            return self.b(x)

    report = check(Shared(), input_size=(1, 1, 4, 4))
    assert report.ok and [(c.name, c.arriving) for c in report.layers] == [("b.fc", 16)]
    wrong = check(Shared(), input_size=(1, 1, 5, 5), sizes=(1, 8))
    assert not wrong.ok and wrong.diagnosis.fix == "set in_features=25, or feed 4×4"
    assert wrong.scan.to_dict()["linears"] == {"b.fc": {"in_features": 16, "valid_sides": [[4, 4]]}}


@pytest.mark.parametrize("layer, side", [
    (nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), 1),
    (nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1), 7),
    (nn.ConvTranspose2d(8, 4, 5, stride=3, dilation=2), 2),
    (nn.ConvTranspose1d(8, 4, 4, stride=2), 5),
])
def test_transposed_convs_grow_their_input_as_pytorch_does(layer, side):
    from archscope.analysis.diagnose.arithmetic import output_sides
    from archscope.analysis.diagnose.blame import classify

    rank = 1 if isinstance(layer, nn.ConvTranspose1d) else 2
    shape = [1, 8] + [side] * rank
    real = list(layer(torch.zeros(shape)).shape[2:])
    assert output_sides(layer, shape[2:]) == real
    assert classify(layer, shape) is None  # a decoder's small input is not a "spatial" failure
