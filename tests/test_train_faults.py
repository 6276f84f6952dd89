"""Training under faults and mistakes: nothing lost, nothing mixed, every mistake one line
before any work, scale-out through torchrun."""
import io
import json
import math
import os
import signal
import subprocess
import sys

import pytest
import torch
from rich.console import Console

from archscope.errors import TrainingError, UsageError
from archscope.train import TrainConfig, resume_config, train
from archscope.train import data as fmnist
from archscope.train.schedule import get_lr

from conftest import ROOT, one_line, quiet_console, skip_without_fashion_mnist

skip_without_fashion_mnist()


def tiny(out, **kwargs):
    base = dict(model="lenet", epochs=1, limit_train=1024, limit_test=256, out=str(out))
    base.update(kwargs)
    return TrainConfig(**base)


# --------------------------------------------------------------------------- a run owns its folder

def test_a_second_run_in_the_same_folder_is_refused(tmp_path, cli):
    train(tiny(tmp_path / "run"), console=quiet_console())
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and len(rows[0]["run_id"]) == 12
    r = cli("train", "lenet", "--epochs", "1", "--limit-train", "1024", "--out", tmp_path / "run")
    assert r.exit_code == 2 and "already holds another run" in one_line(r.stderr) and "--resume" in r.stderr
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1  # nothing mixed in


def test_a_folder_locked_by_a_live_process_is_refused_a_stale_lock_is_taken_over(tmp_path):
    import socket

    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / ".lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(UsageError, match=f"in use by another archscope run \\(pid {os.getpid()}"):
        train(tiny(folder), console=quiet_console())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    train(tiny(folder), console=quiet_console())
    assert not lock.exists() and (folder / "last.pt").exists()


def test_out_that_is_a_file_or_cannot_be_written_fails_before_loading_data(tmp_path, cli):
    (tmp_path / "file").write_text("x")
    # --data-dir points nowhere: had the data been looked for first, that would be the error.
    r = cli("train", "lenet", "--out", tmp_path / "file", "--data-dir", tmp_path / "nowhere")
    assert r.exit_code == 2 and "is a file" in one_line(r.stderr)
    r = cli("train", "lenet", "--out", "/proc/archscope-run", "--data-dir", tmp_path / "nowhere")
    assert r.exit_code == 1 and "/proc/archscope-run" in one_line(r.stderr)


def test_a_failed_run_leaves_no_empty_folder(tmp_path, cli):
    r = cli("train", "lenet", "--resize", "10", "--out", tmp_path / "never")
    assert r.exit_code == 2 and not (tmp_path / "never").exists()


def test_a_full_disk_keeps_the_previous_checkpoint_and_writes_no_row(tmp_path, monkeypatch):
    import errno

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1 writes best.pt and last.pt; epoch 2's first write fails
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(TrainingError, match=r"No space left on device.*previous (best|last)\.pt is intact"):
        train(tiny(tmp_path / "run", epochs=2), console=quiet_console())
    folder = tmp_path / "run"
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 1
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1


# --------------------------------------------------------------------------- resume

def test_resume_refuses_options_that_differ_from_the_run(tmp_path, cli):
    train(tiny(tmp_path / "run", epochs=2, schedule="none", lr=0.01), console=quiet_console())
    last = tmp_path / "run" / "last.pt"
    r = cli("train", "lenet", "--resume", last, "--lr", "0.5")
    assert r.exit_code == 2 and "--lr 0.5 differs from the run" in one_line(r.stderr) and "lr=0.01" in r.stderr
    r = cli("train", "lenet", "--resume", last, "--batch-size", "64")
    assert r.exit_code == 2 and "batch_size=256" in r.stderr
    r = cli("train", "lenet", "--resume", last, "--arg", "num_classes=5")
    assert r.exit_code == 2 and "--arg/--ratio" in r.stderr
    assert cli("train", "lenet", "--resume", last, "--lr", "0.01", "--epochs", "2").exit_code == 0  # same value: fine


def test_a_resumed_epoch_reports_its_real_throughput(tmp_path):
    def stop(epoch, step, request):
        if step == 2:
            request.signal_name = "SIGINT"

    train(tiny(tmp_path / "run"), console=quiet_console(), on_step=stop)
    last = str(tmp_path / "run" / "last.pt")
    resumed = train(resume_config(last, {}), console=quiet_console(), resume=last)
    assert resumed.history[0]["train_img_per_s"] > 0


def test_the_learning_rate_is_pytorchs_one_cycle_as_a_function_of_the_step():
    cfg = TrainConfig("lenet", lr=0.02, schedule="onecycle")
    total = 50
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.02)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.02, total_steps=total, pct_start=0.2)
    for step in range(total):
        assert math.isclose(get_lr(step, cfg, total), opt.param_groups[0]["lr"], rel_tol=1e-9), step
        opt.step()
        sched.step()
    cosine = TrainConfig("lenet", lr=0.1, schedule="cosine")
    assert get_lr(0, cosine, 10) == 0.1 and math.isclose(get_lr(5, cosine, 10), 0.05)


# --------------------------------------------------------------------------- divergence

def test_a_loss_that_explodes_without_nan_stops_the_run(tmp_path):
    with pytest.raises(TrainingError, match="diverged|NaN") as info:
        train(tiny(tmp_path / "a", optimizer="sgd", lr=1e30, schedule="none"), console=quiet_console())
    assert "--lr 1e+29" in str(info.value) and "--schedule onecycle" in str(info.value)
    with pytest.raises(TrainingError) as info:
        train(tiny(tmp_path / "b", optimizer="sgd", lr=1e30, schedule="onecycle"), console=quiet_console())
    assert "--schedule onecycle" not in str(info.value)  # it is already in use


# --------------------------------------------------------------------------- mistakes, before any work

@pytest.mark.parametrize("args, words", [
    (["--resize", "10"], "accepts side"),
    (["--label-smoothing", "2"], "--label-smoothing"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--lr", "0"], "--lr"),
])
def test_bad_training_options_are_one_line_exit_2(tmp_path, cli, args, words):
    r = cli("train", "lenet", *args, "--out", tmp_path / "r", "--data-dir", tmp_path / "nowhere")
    assert r.exit_code == 2 and words in one_line(r.stderr)


def test_lenet_accepts_only_the_sides_its_linear_allows(tmp_path, cli):
    # LeNet's 5×5 pad-2 conv, 2×2 pool, 5×5 conv, 2×2 pool must leave 5×5 for its Linear(400):
    sides = [s for s in range(1, 64) if ((s // 2) - 4) // 2 == 5]
    r = cli("train", "lenet", "--resize", "10", "--out", tmp_path / "r")
    assert f"sides {sides[0]}..{sides[-1]}" in r.stderr


def test_checkpoint_mistakes_are_one_line_exit_2(tmp_path, cli):
    train(tiny(tmp_path / "run"), console=quiet_console())
    best = tmp_path / "run" / "best.pt"
    (tmp_path / "empty.pt").write_bytes(b"")
    r = cli("eval", "lenet", "--checkpoint", tmp_path / "empty.pt")
    assert r.exit_code == 2 and "empty" in one_line(r.stderr)
    torch.save(torch.load(best, weights_only=True)["model"], tmp_path / "weights.pt")
    r = cli("eval", "lenet", "--checkpoint", tmp_path / "weights.pt")
    assert r.exit_code == 2 and "holds only weights" in one_line(r.stderr)
    r = cli("train", "lenet", "--resume", tmp_path / "weights.pt")
    assert r.exit_code == 2 and "holds only weights" in one_line(r.stderr)
    for args in (["--batch-size", "0"], ["--limit-test", "0"], ["--resize", "10"]):
        r = cli("eval", "lenet", "--checkpoint", best, *args)
        assert r.exit_code == 2, args
        one_line(r.stderr)


def test_eval_rebuilds_the_model_from_the_checkpoint(tmp_path, cli):
    train(tiny(tmp_path / "run", model="vgg", model_kwargs={"ratio": 16}, limit_train=32, batch_size=16,
               limit_test=16), console=quiet_console())
    r = cli("eval", "vgg", "--checkpoint", tmp_path / "run" / "best.pt", "--limit-test", "32", "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert sum(map(sum, json.loads(r.stdout)["confusion"])) == 32


# --------------------------------------------------------------------------- a library call

def test_train_from_python_installs_no_handlers_and_leaves_the_config_alone(tmp_path):
    cfg = tiny(None)
    cfg.out = str(tmp_path / "run")
    before = signal.getsignal(signal.SIGINT)
    seen = []
    train(cfg, console=quiet_console(), on_step=lambda e, s, r: seen.append(signal.getsignal(signal.SIGINT)))
    assert seen and all(h is before for h in seen)
    assert cfg.lr is None and cfg.run_id is None and cfg.batch_size is None


def test_the_run_says_what_it_will_take(tmp_path):
    buf = io.StringIO()
    train(tiny(tmp_path / "run"), console=Console(file=buf, width=200))
    assert "img/s after warm-up: ≈" in buf.getvalue() and "for 1 epoch on cpu" in buf.getvalue()


# --------------------------------------------------------------------------- torchrun

def run_torchrun(args, nproc=2, timeout=300):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "archscope", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_torchrun_two_processes_match_one_and_resume_with_any_number(tmp_path, cli):
    common = ["--epochs", "1", "--limit-train", "2048", "--limit-test", "512", "--schedule", "none", "--lr", "0.01"]
    single = train(tiny(tmp_path / "one", limit_train=2048, limit_test=512, schedule="none", lr=0.01),
                   console=quiet_console())
    r = run_torchrun(["train", "lenet", *common, "--out", tmp_path / "two"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(l) for l in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1  # rank 0 alone writes
    ref = single.history[0]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert math.isclose(rows[0][key], ref[key], rel_tol=1e-4, abs_tol=1e-6), key
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4) for k in a)  # Adam magnifies float-order noise
    # The two-process checkpoint continues in one process.
    r = cli("train", "lenet", "--resume", tmp_path / "two" / "last.pt", "--epochs", "2")
    assert r.exit_code == 0, r.stderr
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2


def test_nproc_launches_torchrun(tmp_path):
    r = subprocess.run([sys.executable, "-m", "archscope", "train", "lenet", "--nproc", "2", "--epochs", "1",
                        "--limit-train", "512", "--limit-test", "128", "--out", str(tmp_path / "run")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "launching: torchrun --standalone --nproc-per-node=2" in r.stderr
    assert "× 2 processes" in r.stderr


def test_a_failing_rank_stops_the_group_with_one_message(tmp_path):
    # Rank 0 refuses a folder that holds another run; the other rank must not hang.
    train(tiny(tmp_path / "run"), console=quiet_console())
    r = run_torchrun(["train", "lenet", "--epochs", "1", "--out", tmp_path / "run"], timeout=120)
    assert r.returncode != 0 and "already holds another run" in r.stderr


def test_download_without_network_leaves_no_empty_cache_folders(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, root, train=True, download=False):
            os.makedirs(os.path.join(root, "FashionMNIST", "raw"), exist_ok=True)  # as torchvision does first
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: [Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    root = tmp_path / "cache" / "archscope"
    with pytest.raises(TrainingError, match="download of Fashion-MNIST failed"):
        fmnist.download(root)
    assert not root.exists() and (tmp_path / "cache").exists() is False


def test_a_rank_with_an_empty_shard_of_the_last_batch_keeps_the_group_in_step(tmp_path):
    """257 images in global batches of 256 over 2 ranks: the last batch has 1 image, so rank 1's shard
    of it is empty. It used to skip DDP's backward and the log point's reductions, and the group hung
    until gloo's timeout. Now it finishes, and matches one process on the same 257 images."""
    common = ["--epochs", "1", "--limit-train", "257", "--limit-test", "64", "--batch-size", "256",
              "--schedule", "none", "--lr", "0.01", "--device", "cpu"]
    single = train(tiny(tmp_path / "one", limit_train=257, limit_test=64, batch_size=256, schedule="none", lr=0.01),
                   console=quiet_console())
    r = run_torchrun(["train", "lenet", *common, "--out", tmp_path / "two"], timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert math.isclose(row[key], single.history[0][key], rel_tol=1e-4, abs_tol=1e-6), key


def test_a_failed_group_launched_with_nproc_ends_in_one_line_not_torchruns_traceback(tmp_path):
    train(tiny(tmp_path / "run"), console=quiet_console())  # the folder now holds another run: rank 0 refuses it
    r = subprocess.run([sys.executable, "-m", "archscope", "train", "lenet", "--nproc", "2", "--epochs", "1",
                        "--limit-train", "512", "--limit-test", "128", "--out", str(tmp_path / "run")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "already holds another run" in r.stderr and "training processes failed" in r.stderr
    assert "Traceback" not in r.stderr and "ChildFailedError" not in r.stderr, r.stderr[-3000:]
