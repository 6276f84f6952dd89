"""The CUDA path, right by construction and exercised on CPU where PyTorch allows: collectives on
the training device, no host sync per step, the earliest bad step under DDP, a rank that dies,
bf16 autocast / channels_last / torch.compile on CPU, and the GPU check's dry run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from archscope.train import TrainConfig, distributed, loop, resume_config, train

from conftest import ROOT, quiet_console, skip_without_fashion_mnist

skip_without_fashion_mnist()


def tiny(out, **kwargs):
    return TrainConfig(**{"model": "lenet", "epochs": 1, "limit_train": 1024, "limit_test": 256, "out": str(out),
                          **kwargs})


# --------------------------------------------------------------------------- collectives

def test_the_stop_flag_is_reduced_on_the_training_device(monkeypatch):
    """NCCL reduces CUDA tensors only: the flag must be built on the run's device (here meta, a
    device no CPU-side default could be mistaken for)."""
    seen = []

    def fake_reduce(t, dist, op="sum"):
        seen.append((t.device.type, op))
        return torch.ones(1) if t.shape == (1,) else t.clone()  # the flag is read on the host

    monkeypatch.setattr(distributed, "reduce", fake_reduce)
    assert loop._agree_on_stop(loop.StopRequest(), distributed.Dist(0, 2, 0), torch.device("meta"))
    sums = loop._zero_sums(torch.device("meta"))
    loop._reduced(sums, distributed.Dist(0, 2, 0))
    assert seen and {device for device, _ in seen} == {"meta"}


def _first_bad_over_two_ranks(rank, values, port, out):
    import torch.distributed as td

    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    sums = loop._zero_sums(torch.device("cpu"))
    sums["first_bad"] = torch.tensor(values[rank])
    result = loop._reduced(sums, distributed.Dist(rank, 2, rank))["first_bad"].item()
    td.destroy_process_group()
    if rank == 0:
        with open(out, "w") as f:
            f.write(str(result))


@pytest.mark.parametrize("values, earliest", [((7, 3), 3), ((-1, 5), 5), ((4, -1), 4), ((-1, -1), -1)])
def test_divergence_names_the_earliest_bad_step_of_any_rank(tmp_path, values, earliest):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_first_bad_over_two_ranks, args=(values, port, str(tmp_path / "out")), nprocs=2)
    assert int((tmp_path / "out").read_text()) == earliest


PROBE = """
import json, os, sys, traceback
import torch, torch.distributed as td
log = open(os.environ["PROBE_OUT"] + "." + os.environ["RANK"], "w")
for name in ("all_reduce", "broadcast", "all_gather", "reduce", "all_gather_into_tensor"):
    original = getattr(td, name)
    def wrapped(tensor, *args, _original=original, _name=name, **kwargs):
        t = tensor[0] if isinstance(tensor, (list, tuple)) else tensor
        callers = [f.name for f in traceback.extract_stack()[:-1] if "archscope" in f.filename]
        log.write(json.dumps([_name, t.device.type, callers]) + "\\n"); log.flush()
        return _original(tensor, *args, **kwargs)
    setattr(td, name, wrapped)
sys.argv = ["archscope"] + sys.argv[1:]
from archscope.cli import main
main()
"""


def test_every_collective_of_a_two_process_run_is_on_the_training_device(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "PROBE_OUT": str(tmp_path / "calls"), "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                        str(probe), "train", "lenet", "--epochs", "1", "--limit-train", "4096", "--limit-test", "256",
                        "--batch-size", "32", "--device", "cpu", "--out", str(tmp_path / "run")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    calls = [json.loads(line) for rank in (0, 1) for line in open(f"{tmp_path / 'calls'}.{rank}")]
    assert calls and {device for _, device, _ in calls} == {"cpu"}  # the training device of this run
    steps = 4096 // 32  # 128 steps; the host syncs at the first, every 6th and the last: 23 log points
    agreements = [c for c in calls if "_agree_on_stop" in c[2]]
    assert 0 < len(agreements) // 2 <= 23 < steps  # the ranks agree on a stop at log points, not every step


def test_host_syncs_per_epoch_do_not_grow_with_its_steps(tmp_path, monkeypatch):
    """The loop syncs at its log points (first step, every 1/20 epoch, last step), never per step:
    an epoch of 40 steps and one of 80 make the same number of .item()/.tolist()/.cpu() calls from
    archscope's code (PyTorch's Adam reads its CPU step counters with .item(): not a device sync)."""
    import sys as _sys

    package = os.path.join(ROOT, "archscope")
    counts = {"n": 0}
    for name in ("item", "tolist", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if _sys._getframe(1).f_code.co_filename.startswith(package):
                counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def syncs(steps):
        calls = []

        def on_step(epoch, step, stop):
            calls.append(counts["n"])

        train(tiny(tmp_path / f"s{steps}", batch_size=16, limit_train=16 * steps, schedule="none", lr=0.01),
              console=quiet_console(), on_step=on_step)
        return calls[-1] - calls[0]  # from the first step to the last, inside the epoch

    assert syncs(40) == syncs(80)


# --------------------------------------------------------------------------- a rank that dies

def test_a_killed_rank_stops_the_group_and_the_checkpoint_resumes_in_one_process(tmp_path, cli):
    out = tmp_path / "run"
    launcher = subprocess.Popen([sys.executable, "-m", "archscope", "train", "lenet", "--nproc", "2", "--device", "cpu",
                                 "--epochs", "4", "--limit-train", "16384", "--limit-test", "256", "--out", str(out)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (out / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.2)  # the first epoch is saved: last.pt, then its metrics row
        assert (out / "metrics.jsonl").exists(), launcher.stderr.read() if launcher.poll() is not None else "timeout"
        time.sleep(1.0)  # well inside the second epoch
        workers = subprocess.run(["pgrep", "-f", "archscope train lenet"], capture_output=True, text=True).stdout.split()
        ranks = [int(p) for p in workers if int(p) != launcher.pid and _has_env(int(p), "LOCAL_RANK=1")]
        assert ranks, workers
        os.kill(ranks[0], signal.SIGKILL)
        killed = time.time()
        _, stderr = launcher.communicate(timeout=60)
        assert time.time() - killed < 30  # the group stopped, it did not hang
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode != 0
    assert "training processes failed" in stderr and "--resume" in stderr, stderr[-2000:]
    r = cli("train", "lenet", "--resume", out / "last.pt", "--device", "cpu")
    assert r.exit_code == 0, r.stderr
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(row)["epoch"] for row in rows] == list(range(1, 5))


def _has_env(pid, entry):
    try:
        return entry.encode() in open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    except OSError:
        return False


# --------------------------------------------------------------------------- CUDA features on CPU

def test_bf16_autocast_channels_last_and_its_checkpoint_resume_exactly_on_cpu(tmp_path):
    """--amp on CPU runs bf16 autocast (training and evaluation); at 96×96 the CPU path uses
    channels_last (ResNet-18's default side); a run stopped mid-epoch and resumed ends bit for bit
    where the uninterrupted one does."""
    import io

    from rich.console import Console

    options = dict(model="resnet18", amp=True, limit_train=96, limit_test=32, batch_size=32, schedule="none",
                   lr=0.001, epochs=1)
    said = io.StringIO()
    whole = train(tiny(tmp_path / "a", **options), console=Console(file=said, width=300))
    assert "(bf16 autocast)" in said.getvalue()
    correct = whole.history[-1]["test_acc"] * 32  # an accuracy over 32 test images: a whole number of them
    assert 0 <= correct <= 32 and correct == pytest.approx(round(correct), abs=1e-6)

    def stop(epoch, step, request):
        if epoch == 0 and step == 1:
            request.signal_name = "SIGTERM"

    cut = train(tiny(tmp_path / "b", **options), console=quiet_console(), on_step=stop)
    assert cut.interrupted
    last = str(tmp_path / "b" / "last.pt")
    resumed = train(resume_config(last, {}), console=quiet_console(), resume=last)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    assert resumed.history[-1]["test_acc"] == whole.history[-1]["test_acc"]
    assert a["b1.0.weight"].is_contiguous(memory_format=torch.channels_last)  # the CPU path at 96×96


def test_evaluation_under_autocast_on_cpu():
    from archscope.models import get_model
    from archscope.train.data import Split
    from archscope.train.evaluate import evaluate

    torch.manual_seed(0)
    model = get_model("lenet")
    split = Split(torch.randint(0, 255, (64, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (64,)))
    plain, bf16 = evaluate(model, split, 28, 32), evaluate(model, split, 28, 32, amp=True)
    assert sum(map(sum, bf16.confusion)) == 64
    assert abs(plain.loss - bf16.loss) < 0.05  # bf16 keeps ~3 significant digits


def test_torch_compile_on_cpu(tmp_path):
    pytest.importorskip("torch._inductor")
    result = train(tiny(tmp_path / "c", compile=True, limit_train=256, limit_test=64, batch_size=64),
                   console=quiet_console())
    assert result.history and result.history[0]["train_loss"] > 0


# --------------------------------------------------------------------------- the GPU check

def test_gpu_check_dry_run_needs_nothing_the_gpu_machine_lacks(tmp_path):
    blocked = tmp_path / "blocked" / "torchinfo"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('the GPU machine has no torchinfo')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "blocked"), "OUT": str(tmp_path)}
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--models", "lenet,googlenet"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [m["model"] for m in data["models"]] == ["lenet", "googlenet"] and data["dry_run"]
    assert all(m["estimated_memory_bytes"] > 0 and m["epoch_s"] > 0 for m in data["models"])


def test_gpu_predict_dry_run_needs_nothing_the_gpu_machine_lacks(tmp_path):
    blocked = tmp_path / "blocked" / "torchinfo"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('the GPU machine has no torchinfo')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'blocked'}:{ROOT}", "OUT": str(tmp_path)}
    r = subprocess.run([sys.executable, "benchmarks/gpu_predict.py", "--dry-run", "--models", "lenet"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu_predict.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["lenet"]
    assert [t["step"] for t in rows[0]["time"]] == ["forward", "train"]
    assert all(t["predicted_ms"] > 0 and t["measured_ms"] > 0 for t in rows[0]["time"])
    assert rows[0]["memory"]["estimated_bytes"] > 0
