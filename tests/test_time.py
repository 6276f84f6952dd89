"""``archscope time``: bytes, the roofline and measured rows, against values worked out by hand
and against a whole forward timed without hooks."""
import json

import pytest
import torch
from torch import nn

from archscope.analysis.timing import time_model

# A device whose figures make the arithmetic easy: 1 TFLOP/s, 100 GB/s, no per-op overhead.
EASY = "peak=1e12,bandwidth=1e11,overhead=0"


def _row(report, name):
    return next(r for r in report.rows if r.name == name)


def test_conv_bytes_are_input_weight_bias_and_output_at_four_bytes():
    model = nn.Sequential(nn.Conv2d(3, 8, 3))
    r = time_model(model, input_size=(2, 3, 16, 16), hw=EASY)
    x, w, b, out = 2 * 3 * 16 * 16, 8 * 3 * 3 * 3, 8, 2 * 8 * 14 * 14
    assert _row(r, "0").bytes == 4 * (x + w + b + out)
    assert _row(r, "0").flops == 2 * out * 3 * 3 * 3  # and FLOPs by hand: 2 x MACs
    assert _row(r, "0").ops == 1


def test_element_wise_bytes_read_a_broadcast_operand_once():
    class AddBias(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(8, 1, 1))

        def forward(self, x):
            return torch.relu(x) + self.bias  # relu: read + write; add: x, the 8 biases once, the output

    r = time_model(nn.Sequential(AddBias()), input_size=(2, 8, 10, 10), hw=EASY)
    n = 2 * 8 * 10 * 10
    assert _row(r, "0").bytes == 4 * (2 * n) + 4 * (n + 8 + n)
    assert _row(r, "0").ops == 2
    assert _row(r, "0").flops == 0  # element-wise: outside the FLOPs convention, not outside the bytes


@pytest.mark.parametrize("m, k, n, bound", [(1024, 1024, 1024, "compute"), (1, 4096, 4096, "memory")])
def test_roofline_of_a_matmul_by_hand(m, k, n, bound):
    r = time_model(nn.Sequential(nn.Linear(k, n, bias=False)), input_size=(m, k), hw=EASY)
    row = _row(r, "0")
    flops, moved = 2 * m * k * n, 4 * (m * k + k * n + m * n)
    assert (row.flops, row.bytes) == (flops, moved)
    assert row.predicted_s == pytest.approx(max(flops / 1e12, moved / 1e11))
    assert row.bound == bound


def test_overhead_is_paid_per_op_and_a_view_is_not_an_op():
    model = nn.Sequential(nn.Flatten(), nn.ReLU(), nn.ReLU())
    r = time_model(model, input_size=(1, 4), hw="peak=1e12,bandwidth=1e11,overhead=5us")
    assert _row(r, "0").ops == 0 and _row(r, "0").predicted_s == 0  # flatten is a view
    assert _row(r, "1").predicted_s == pytest.approx(5e-6 + 4 * 8 / 1e11)


def test_training_step_has_backward_and_optimizer_rows():
    model = nn.Sequential(nn.Linear(64, 32))
    r = time_model(model, input_size=(16, 64), hw=EASY, train=True, optimizer="sgd")
    row = _row(r, "0")
    assert row.flops == 2 * (2 * 16 * 64 * 32)  # forward and grad weight; the input needs no gradient
    step = _row(r, "(optimizer step)")
    # plain SGD: p.add_(grad, alpha=-lr) reads each parameter and its gradient and writes the parameter
    assert step.bytes == 3 * 4 * (64 * 32 + 32)


# How close the measured rows come to the whole step is a figure of the machine's load, not of
# archscope: benchmarks/bench_measure.py prints it, measured alone. The tests check what holds under any load.

def test_measured_rows_partition_the_hooked_step_and_say_how_steady_it_was():
    r = time_model("vgg", ratio=8, batch=4, hw="cpu", measure=True, repeats=3)
    assert all(x.measured_s is not None and x.measured_s >= 0 for x in r.rows)
    fastest, slowest = r.whole_spread_s
    assert 0 < fastest <= r.whole_measured_s <= slowest and r.repeats >= 3  # quartiles from 4 runs on, else min and max
    assert (r.unsteady is None) == (slowest / fastest <= r.UNSTEADY
                                    and abs(r.total().measured_s / r.whole_measured_s - 1) <= r.DISAGREE)


def test_an_unsteady_measurement_is_said_and_a_share_above_100_is_marked():
    from archscope.report import render

    r = time_model(nn.Sequential(nn.Linear(64, 32)), input_size=(16, 64), hw="cpu", measure=True, repeats=2)
    r.whole_spread_s = [r.whole_measured_s / 2, r.whole_measured_s * 3]  # as a busy machine gives
    r.rows[0].measured_s = r.rows[0].predicted_s / 10  # faster than its roofline: only noise does that
    text = " ".join(render(r, "markdown").split())
    assert "warning: unsteady measurement (the whole step's quartiles are 6.0× apart" in text
    assert "a roofline share above 100%" in text and "%*" in text


def test_a_user_model_is_left_as_it_was():
    model = nn.Sequential(nn.Linear(4, 4))
    before = model[0].weight.detach().clone()
    time_model(model, input_size=(2, 4), hw="cpu", measure=True, train=True, repeats=2)
    assert torch.equal(model[0].weight, before) and model[0].weight.grad is None


def test_cli_json_has_the_documented_fields(cli):
    out = cli("time", "lenet", "--hw", "h100", "-f", "json")
    data = json.loads(out.stdout)
    layer = data["layers"][0]
    for key in ("flops", "bytes", "ops", "intensity", "bound", "predicted_s", "compute_s", "memory_s", "overhead_s"):
        assert key in layer
    assert data["batch"] == 32 and data["epoch"]["images"] == 10_000 and data["hardware"]["name"] == "h100"
    assert data["predicted_step_s"] == pytest.approx(sum(x["predicted_s"] for x in data["layers"]))


def test_cli_hardware_list_and_refusals(cli):
    listed = cli("time", "--hw", "list", "-f", "csv")
    assert listed.exit_code == 0 and "h200" in listed.stdout and "4800000000000" not in listed.stdout
    bad = cli("time", "lenet", "--hw", "h900")
    assert bad.exit_code == 2 and "did you mean 'h200'" in bad.stderr
    no_bf16 = cli("time", "lenet", "--hw", "t4", "--dtype", "bf16")
    assert no_bf16.exit_code == 2 and "no bf16 figure" in no_bf16.stderr


def test_sweep_points_and_ranges():
    from archscope.analysis.sweep import parse_points
    from archscope.errors import UsageError

    assert parse_points("1..256", "--batch") == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert parse_points("1,8,64", "--batch") == [1, 8, 64]
    for bad in ("0,4", "8..2", "x"):
        with pytest.raises(UsageError):
            parse_points(bad, "--batch")


def test_memory_sweep_finds_where_the_capacity_is_crossed(cli, tmp_path):
    from archscope.analysis.memory import memory

    out = cli("memory", "lenet", "-b", "1..4096", "--fit", "8MiB", "--plot", tmp_path / "m.png", "-f", "json")
    assert out.exit_code == 0, out.stderr
    sweep = json.loads(out.stdout)
    fits = [p["batch"] for p in sweep["points"] if p["training_bytes"] <= 8 * 2 ** 20]
    # the largest batch that fits in the sweep brackets the exact answer of --fit
    exact = memory("lenet", fit="8MiB").fit_batch
    assert max(fits) <= exact < 2 * max(fits)
    png = (tmp_path / "m.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_time_sweep_throughput_rises_with_batch_on_a_gpu(cli):
    out = cli("time", "nin", "-b", "1,16,256", "--hw", "a100", "-f", "json")
    points = json.loads(out.stdout)["points"]
    rates = [p["predicted_images_per_s"] for p in points]
    assert rates == sorted(rates) and rates[-1] > 2 * rates[0]  # overhead-bound at batch 1, not at 256


def test_the_stand_ins_archscope_makes_are_not_the_models_work():
    """At another dtype (or for a training step) the meta run goes through stand-ins of every
    parameter; making them is archscope's doing, not an op of the model's, so nothing of their size
    lands outside the model's modules (it once did: 16 ops and 268 MiB, 10% of AlexNet's bf16 step)."""
    import archscope

    report = archscope.time("alexnet", hw="h100", dtype="bf16", train=True)
    outside = next(r for r in report.rows if r.name == "(outside any module)")
    params = archscope.trace("alexnet").totals.params
    assert outside.bytes < params * 2 / 1000  # bf16 weights: 2 bytes each; what is left is the loss's sum
    assert outside.ops <= 4
