"""Numbers that used to be silently wrong, and refusals that used to be internal errors; each
against a value archscope did not produce (a hand formula, PyTorch's FlopCounterMode, the data)."""
import pytest
import torch
from torch import nn

import archscope
from archscope.errors import UsageError

from conftest import one_line


def test_time_takes_the_batch_real_data_holds():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    r = archscope.time(net, input_data=torch.rand(64, 1, 28, 28), hw="h100")
    assert r.batch == 64 and r.steps_per_epoch == -(-10_000 // 64)  # a forward: the 10,000 test images


def test_parse_hardware_hands_out_a_copy():
    first = archscope.hardware("h100")
    first.bandwidth = 1.0
    first.peak["fp32"] = 1.0
    again = archscope.hardware("h100")
    assert again.bandwidth > 1e12 and again.peak["fp32"] > 1e12


def test_a_formula_added_after_a_first_trace_counts(monkeypatch):
    """EXTRA_FORMULAS is read per counter, not memoised for the process."""
    from archscope.analysis import counter

    net = nn.Sequential(nn.Linear(8, 8), nn.GELU())
    before = archscope.trace(net, (1, 8)).totals.flops
    assert before == 2 * 8 * 8  # the Linear; GELU is element-wise: no FLOPs by the convention
    monkeypatch.setitem(counter.EXTRA_FORMULAS, torch.ops.aten.gelu, lambda x, *a, **k: 7 * x.numel())
    assert archscope.trace(net, (1, 8)).totals.flops == before + 7 * 8


@pytest.mark.parametrize("spec", ["peak=0,bandwidth=1e12", "peak=1e12,bandwidth=0", "peak=-1,bandwidth=1e12",
                                  "peak=1.2.3,bandwidth=1e12", "peak=1e12,bandwidth=1e12,memory=0"])
def test_hardware_figures_must_be_positive_numbers(spec, cli):
    r = cli("time", "lenet", "--hw", spec)
    assert r.exit_code == 2 and "internal error" not in one_line(r.stderr)


def test_one_set_of_dtype_names():
    t = archscope.trace(nn.Sequential(nn.Linear(1000, 4, dtype=torch.bfloat16)), "4x1000:bf16")
    assert t.input_dtypes == ["bfloat16"] and t.totals.flops == 2 * 4 * 1000 * 4
    assert archscope.time("lenet", dtype="bfloat16", hw="h100").dtype == "bf16"


@pytest.mark.parametrize("batch", [0, -3])
def test_a_batch_below_one_is_refused(batch):
    from archscope.inputs import Inputs

    named = Inputs(shapes=[(1, 128)], dtypes=[torch.int64], names=["input_ids"])
    with pytest.raises(UsageError, match="positive"):
        named.resized(["1x64"], batch)


def test_the_cpu_calibration_keeps_the_best_run_refuses_a_busy_one_and_says_when(tmp_path, monkeypatch):
    """The cache is the suite's own (conftest points ARCHSCOPE_CACHE at a temporary folder)."""
    import json
    import os

    from archscope.analysis import hardware
    from archscope.errors import ArchscopeError

    assert os.environ["ARCHSCOPE_CACHE"].startswith(__import__("tempfile").gettempdir())
    monkeypatch.setenv("ARCHSCOPE_CACHE", str(tmp_path))
    stamps = iter([0, 5, 5, 6, 6, 9])  # runs of 5, 1 and 3 seconds
    monkeypatch.setattr(hardware.time, "perf_counter", lambda: next(stamps))
    assert hardware._best_seconds(lambda: None, 3) == 1
    monkeypatch.undo()

    monkeypatch.setenv("ARCHSCOPE_CACHE", str(tmp_path))
    monkeypatch.setattr(hardware, "_measure_peak", lambda dtype: 1.4e9)  # a busy machine's figure
    with pytest.raises(ArchscopeError, match="implausible"):
        hardware.calibrate_cpu(recalibrate=True)
    assert not list(tmp_path.iterdir())  # nothing cached, no temporary file left
    monkeypatch.undo()

    monkeypatch.setenv("ARCHSCOPE_CACHE", str(tmp_path))
    hw = hardware.calibrate_cpu(recalibrate=True)
    saved = json.loads(hardware._cache_file().read_text())
    assert saved["taken_at"] and "load" in saved and saved["peak"]["fp32"] >= hardware.PLAUSIBLE["peak"]
    assert f"on {saved['taken_at']}" in hw.source and "--recalibrate" in hw.source
    assert [p.name for p in tmp_path.iterdir()] == [hardware._cache_file().name]


def test_a_module_called_several_times_shows_every_calls_shape_as_forward_hooks_see_them(cli):
    """torchvision's Bottleneck calls one ReLU three times: twice at 64 channels, once at 256."""
    import csv
    import io
    import json

    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet50()
    seen = {}
    hooks = [m.register_forward_hook(lambda m, a, out, name=name: seen.setdefault(name, []).append(list(out.shape)))
             for name, m in model.named_modules() if name.startswith("layer1.0.")]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert seen["layer1.0.relu"] == [[1, 64, 56, 56], [1, 64, 56, 56], [1, 256, 56, 56]]
    rows = {r.name: r for r in archscope.trace("tv:resnet50", depth=3).rows}
    for name, shapes in seen.items():
        if name.count(".") == 2:
            row = rows[name]
            assert (row.call_shapes or [row.output_shape] * row.calls) == shapes, name
    text = "1×64×56×56 ×2, 1×256×56×56 (3 calls)"
    assert text in cli("shapes", "tv:resnet50", "--depth", "3").stdout
    data = json.loads(cli("shapes", "tv:resnet50", "--depth", "3", "-f", "json").stdout)
    assert next(r for r in data["layers"] if r["name"] == "layer1.0.relu")["call_shapes"] == seen["layer1.0.relu"]
    table = csv.DictReader(io.StringIO(cli("summary", "tv:resnet50", "--depth", "3", "-f", "csv").stdout))
    assert next(r for r in table if r["name"] == "layer1.0.relu")["output_shape"] == text


class Looped(nn.Module):
    """One block called four times in a loop: one set of parameters."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        for _ in range(4):
            x = self.block(x)
        return self.head(x)


def test_a_collapsed_node_of_one_module_called_n_times_counts_its_parameters_once():
    model = Looped()
    g = archscope.graph(model, input_size=(1, 16)).graph
    block = next(n for n in g.nodes if n.kind == "module" and n.name.startswith("block"))
    assert block.count == 4
    assert block.params == sum(p.numel() for p in set(model.block.parameters())) == 16 * 16 + 16
    assert block.flops == 4 * 2 * 16 * 16
    assert sum(n.params for n in g.nodes if n.kind == "module") == sum(p.numel() for p in set(model.parameters()))


def test_torchscript_at_bf16_casts_a_copy_of_the_module_with_its_inputs():
    """It used to cast the inputs only, and then blamed the model for a dtype mismatch."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(nn.Sequential(nn.Linear(64, 32), nn.ReLU()))
    bf16 = archscope.time(scripted, input_size=(8, 64), dtype="bf16", hw="h100")
    fp32 = archscope.time(scripted, input_size=(8, 64), dtype="fp32", hw="h100")
    assert bf16.total().flops == fp32.total().flops == 2 * 8 * 64 * 32
    # input, weight, bias and output of the Linear, at 2 bytes instead of 4 (the ReLU's bytes halve too)
    assert bf16.total().bytes * 2 == fp32.total().bytes
    assert scripted[0].weight.dtype == torch.float32  # the user's module is untouched


def test_blocks_inside_a_module_list_are_nodes_of_the_graph_holding_all_their_flops():
    """GPT-2's blocks live in an nn.ModuleList that is never called itself: they used to be drawn as
    raw aten ops. Each block's FLOPs equal FlopCounterMode's for that block on a real CPU forward."""
    transformers = pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    small = dict(n_layer=3, n_embd=64, n_head=2, vocab_size=500, n_positions=128)
    g = archscope.graph("hf:gpt2", collapse=False, **small).graph
    blocks = [n for n in g.nodes if n.kind == "module" and n.type == "GPT2Block"]
    assert [n.name for n in blocks] == ["h.0", "h.1", "h.2"]
    assert sum(n.flops for n in g.nodes if n.kind == "op") == 0  # no FLOPs outside the blocks

    config = transformers.GPT2Config(**small, attn_implementation="eager")
    model = transformers.GPT2Model(config).eval()
    with FlopCounterMode(display=False) as mode, torch.no_grad():
        model(input_ids=torch.zeros(1, 128, dtype=torch.long), attention_mask=torch.ones(1, 128, dtype=torch.long))
    per_module = mode.get_flop_counts()
    for node in blocks:
        assert node.flops == sum(per_module[f"GPT2Model.{node.name}"].values()), node.name
    collapsed = archscope.graph("hf:gpt2", **small).graph
    assert [(n.name, n.count) for n in collapsed.nodes if n.type == "GPT2Block"] == [("h.0", 3)]


def test_the_recorder_tells_its_listeners_every_call_forward_hooks_see():
    """§9: the recorder owns the current call path; a listener hears each call as forward hooks do."""
    import torchvision

    from archscope.analysis.run import STRATEGIES, forward

    model = torchvision.models.resnet18().eval()
    names = {m: n for n, m in model.named_modules()}
    seen_by_hooks = []
    handles = [m.register_forward_pre_hook(lambda m, a: seen_by_hooks.append(names[m])) for m in model.modules()]

    class Listener:
        def __init__(self):
            self.paths = []

        def path_changed(self, path):
            self.paths.append(path)

    listener = Listener()
    with torch.no_grad():
        forward(model, (torch.zeros(1, 3, 64, 64),), {}, "cpu", listeners=(listener,))
    for h in handles:
        h.remove()
    entered = [p for i, p in enumerate(listener.paths) if p is not None and (i == 0 or listener.paths[i - 1] != p)]
    assert set(entered) == set(seen_by_hooks)  # every call path, and only those
    assert listener.paths[-1] is None  # back outside any module when the forward is over
    assert [name for name, _ in STRATEGIES] == ["scripted", "lazy", "real device", "small on CPU", "meta",
                                                "meta with known values", "CPU rebuild"]


def test_costs_add_as_their_ops_do():
    from archscope.analysis.counter import OpCost
    from archscope.analysis.hardware import parse_hardware
    from archscope.analysis.timing import Cost, op_cost, op_terms

    hw = parse_hardware("h100")
    ops = [OpCost("a", "forward", "mm", 2 * 64 ** 3, 3 * 64 * 64 * 4, "float32", "gemm", 64),
           OpCost("a", "forward", "add", 0, 3 * 4096 * 4, "float32", "other", 0)]
    total = sum((op_cost(op, hw, "fp32") for op in ops), Cost())
    terms = [op_terms(op, hw, "fp32") for op in ops]
    assert total.flops == 2 * 64 ** 3 and total.ops == 2 and total.bytes == sum(op.bytes for op in ops)
    assert total.overhead_s == pytest.approx(sum(t[3] for t in terms))
    assert total.compute_s + total.memory_s + total.kernel_s == pytest.approx(sum(max(t[:3]) for t in terms))
