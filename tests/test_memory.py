"""archscope memory against PyTorch's profiler on a real CPU step, and hand formulas."""
import json
import math

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from archscope.analysis.memory import memory, parse_bytes
from archscope.errors import UsageError
from archscope.models import get_entry, get_model


def profiled_peak(fn) -> int:
    """The most CPU memory held at once while ``fn`` runs, from the profiler's allocation events."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


def seeded(name, batch):
    """(model, input, fp32 parameter bytes) for a real CPU step."""
    torch.manual_seed(0)
    model = get_model(name)
    side = get_entry(name).default_side
    return model, torch.randn(batch, 1, side, side), sum(p.numel() * 4 for p in model.parameters())


def real_step(name, batch):
    """(training peak, inference peak) of a real CPU step, each with what is held before it."""
    model, x, params = seeded(name, batch)
    model.eval()
    with torch.no_grad():
        inference = params + x.numel() * 4 + profiled_peak(lambda: model(x))
    model.train()
    opt = torch.optim.Adam(model.parameters())
    model(x).sum().backward()
    opt.step()  # Adam's two state tensors per parameter now exist
    opt.zero_grad(set_to_none=True)
    training = 3 * params + x.numel() * 4 + profiled_peak(lambda: model(x).sum().backward())
    return training, inference


@pytest.mark.parametrize("name", ["lenet", "alexnet", "googlenet"])
def test_within_ten_percent_of_a_real_cpu_step(name):
    report = memory(name, batch=8)
    training, inference = real_step(name, 8)
    assert abs(report.training_bytes / training - 1) < 0.10
    assert abs(report.inference_bytes / inference - 1) < 0.10


def test_parts_by_hand():
    net = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))
    params = (100 * 50 + 50 + 50 * 10 + 10) * 4
    r = memory(net, batch=4, input_size=(4, 100), optimizer="sgd-momentum")
    assert (r.params_bytes, r.grads_bytes, r.optimizer_bytes) == (params, params, params)
    # Saved for backward: the input (for the first weight's gradient), ReLU's output (for its own
    # backward and the second Linear's weight gradient; one storage), no parameters.
    assert r.activations_bytes == 4 * 100 * 4 + 4 * 50 * 4
    assert memory(net, batch=4, input_size=(4, 100), optimizer="sgd").optimizer_bytes == 0
    assert memory(net, batch=4, input_size=(4, 100), optimizer="adam").optimizer_bytes == 2 * params
    with pytest.raises(UsageError):
        memory(net, optimizer="lion")


def test_fit_finds_the_largest_batch():
    r = memory("lenet", batch=1, fit="64MiB")
    fixed = r.params_bytes + r.optimizer_bytes

    def step(b):
        return memory("lenet", batch=b).training_bytes

    assert step(r.fit_batch) <= parse_bytes("64MiB") < step(r.fit_batch + 1)
    assert fixed < parse_bytes("64MiB")


def test_parse_bytes():
    assert parse_bytes("16GiB") == 16 * 2 ** 30 and parse_bytes("500MB") == 500_000_000
    with pytest.raises(UsageError):
        parse_bytes("lots")


def test_cli(cli):
    r = cli("memory", "alexnet", "--batch", "8", "-f", "json")
    d = json.loads(r.stdout)
    assert d["params_bytes"] == 46764746 * 4 and d["grads_bytes"] == d["params_bytes"]
    assert d["training_bytes"] > d["inference_bytes"]
    assert "largest batch" in cli("memory", "lenet", "--fit", "1GiB").stdout
    assert cli("memory", "lenet", "--fit", "lots").exit_code == 2


def real_bf16_step(name, batch):
    """The training peak of a real CPU step under bf16 autocast, with what is held before it."""
    model, x, params = seeded(name, batch)
    opt = torch.optim.Adam(model.parameters())

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        out.float().sum().backward()

    step()
    opt.step()  # Adam's two state tensors per parameter now exist
    opt.zero_grad(set_to_none=True)
    return 3 * params + x.numel() * 4 + profiled_peak(step)


@pytest.mark.parametrize("name", ["lenet", "alexnet", "googlenet"])
def test_amp_estimate_against_a_real_cpu_bf16_step(name):
    """--amp keeps the inputs of convolutions and matrix products at 2 bytes: within 5% of the
    profiler's peak of a real bf16 autocast step (the fp32 estimate is 5-8% over it for LeNet and
    GoogLeNet, whose activations weigh more than their parameters)."""
    amp, fp32 = memory(name, batch=8, amp=True), memory(name, batch=8)
    real = real_bf16_step(name, 8)
    assert abs(amp.training_bytes / real - 1) < 0.05
    assert amp.activations_bytes < fp32.activations_bytes
    assert abs(amp.training_bytes - real) <= abs(fp32.training_bytes - real)


# --------------------------------------------------------------------------- per layer, checkpointing, sharding


def test_per_layer_memory_adds_up_to_the_totals_and_marks_the_peak():


    for name, depth in (("googlenet", 1), ("alexnet", 2), ("tv:resnet18", 2)):
        r = memory(name, batch=4, depth=depth)
        assert sum(x.activations_bytes for x in r.rows) == r.activations_bytes
        assert sum(x.params_bytes for x in r.rows) == r.params_bytes
        assert sum(x.grads_bytes for x in r.rows) == r.grads_bytes
        assert sum(x.optimizer_bytes for x in r.rows) == r.optimizer_bytes
        assert sum(x.peak for x in r.rows) == 1


def test_per_layer_activations_of_a_small_net_by_hand():


    # Linear saves its input; ReLU saves its output; the second Linear's input is that same output.
    net = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))
    r = memory(net, batch=4, input_size=(4, 100), optimizer="sgd", depth=1)
    acts = {x.name: x.activations_bytes for x in r.rows}
    assert acts == {"0": 4 * 100 * 4, "1": 4 * 50 * 4, "2": 0}
    assert {x.name: x.params_bytes for x in r.rows} == {"0": 4 * (100 * 50 + 50), "1": 0, "2": 4 * (50 * 10 + 10)}


def test_checkpointing_keeps_only_the_rows_inputs_and_recomputes_their_forward():
    from archscope.analysis.api import trace


    r = memory("googlenet", batch=8, depth=1, checkpointing=True)
    c = r.checkpointed
    inputs = trace("googlenet", batch=8)
    kept = sum(4 * math.prod(x.input_shape) for x in inputs.rows if x.kind == "module")
    assert c.activations_bytes == kept  # googlenet saves nothing outside its rows
    assert c.extra_flops == inputs.totals.flops  # every row's forward runs again
    assert c.activations_bytes < r.activations_bytes / 10


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_sharded_states_follow_the_zero_paper(stage):


    psi = 1_000_000  # a model whose Ψ we choose: Linear(999, 1000) + bias = 999,000 + 1,000
    net = nn.Sequential(nn.Linear(999, 1000))
    n, k = 8, 12
    z = memory(net, input_size=(1, 999), shard=n, zero=stage).sharding
    expected = {0: (2 + 2 + k) * psi, 1: 2 * psi + 2 * psi + k * psi / n, 2: 2 * psi + (2 + k) * psi / n,
                3: (2 + 2 + k) * psi / n}[stage]
    assert z.params == psi and z.states_bytes == pytest.approx(expected, abs=3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_a_half_precision_model_has_its_whole_psi(dtype):
    """Ψ counts parameters, not fp32 bytes: a bf16 model's per-rank states are a float32 one's."""
    net = nn.Sequential(nn.Linear(999, 1000, dtype=dtype))
    z = memory(net, input_size="1x999:" + str(dtype).removeprefix("torch."), shard=8, zero=3).sharding
    assert z.params == 1_000_000 and z.states_bytes == 16 * 1_000_000 // 8


def _deepspeed_zero2_gpu(total_params, num_gpus_per_node=1, num_nodes=1):
    # DeepSpeed's stage_1_and_2.estimate_zero2_model_states_mem_needs, cpu_offload=False: its GPU figure
    total_gpus = num_nodes * num_gpus_per_node
    return int(4 * total_params + int(16 * total_params / total_gpus))


def _deepspeed_zero3_gpu(total_params, largest_layer_params, num_gpus_per_node=1, num_nodes=1):
    # DeepSpeed's stage3.estimate_zero3_model_states_mem_needs, cpu_offload=False: its GPU figure
    total_gpus = num_nodes * num_gpus_per_node
    return int(4 * largest_layer_params + int(18 * total_params / total_gpus))


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_deepspeeds_own_estimate_is_given_beside_the_papers(stage):
    net = nn.Sequential(nn.Linear(999, 1000), nn.ReLU(), nn.Linear(1000, 10))
    psi = sum(p.numel() for p in net.parameters())
    r = memory(net, input_size=(1, 999), shard=4, zero=stage)
    expected = _deepspeed_zero3_gpu(psi, 999 * 1000 + 1000, 4) if stage == 3 else _deepspeed_zero2_gpu(psi, 4)
    assert r.sharding.deepspeed_bytes == expected
    from archscope.report import render

    text = " ".join(str(render(r, "markdown")).split())
    assert f"DeepSpeed's own estimator (estimate_zero{3 if stage == 3 else 2}_model_states_mem_needs" in text
    assert "the ZeRO paper's convention" in text


def test_unsharded_fp32_adam_holds_16_bytes_a_parameter():


    net = nn.Sequential(nn.Linear(999, 1000))
    r = memory(net, input_size=(1, 999))
    assert r.params_bytes + r.grads_bytes + r.optimizer_bytes == 16 * 1_000_000


def test_fit_per_rank_batch_grows_with_sharding(cli):


    alone = memory("alexnet", fit="1GiB", shard=1, zero=0).fit_batch
    sharded = memory("alexnet", fit="1GiB", shard=8, zero=3).fit_batch
    assert sharded > alone > 0
    bad = cli("memory", "lenet", "--zero", "2")
    assert bad.exit_code == 2 and "--shard" in bad.stderr


def _ddp_rank(rank, world, port, out):
    import torch.distributed as dist

    from archscope.models import get_model

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)
        model = torch.nn.parallel.DistributedDataParallel(get_model("lenet"))
        opt = torch.optim.Adam(model.parameters())
        loss = model(torch.randn(4, 1, 28, 28)).sum()
        loss.backward()
        opt.step()
        params = list(model.module.parameters())
        held = sum(p.numel() * p.element_size() for p in params)
        held += sum(p.grad.numel() * p.grad.element_size() for p in params)
        held += sum(t.numel() * t.element_size() for state in opt.state.values() for key, t in state.items()
                    if key != "step")
        out[rank] = held
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_hold_what_zero_stage_0_says():
    """A real 2-process DDP step on CPU (gloo): each rank's parameters, gradients and Adam state."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_ddp_rank, args=(2, port, out), nprocs=2, join=True)
    z = memory("lenet", shard=2, zero=0).sharding
    assert out[0] == out[1] == z.states_bytes  # 16 bytes a parameter, fp32 or mixed precision alike
