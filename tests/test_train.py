"""Training on the real Fashion-MNIST (installed by .ci/run from Debian's dataset-fashion-mnist)."""
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from archscope.errors import TrainingError, UsageError
from archscope.train import TrainConfig, resume_config, train
from archscope.train import data as fmnist

from conftest import ROOT, quiet_console, skip_without_fashion_mnist

skip_without_fashion_mnist()


def small(tmp_path, **kwargs):
    base = dict(model="lenet", epochs=2, limit_train=3000, limit_test=1000, out=str(tmp_path / "run"))
    base.update(kwargs)
    return TrainConfig(**base)


# --------------------------------------------------------------------------- data

def test_real_data_loads_with_the_official_shapes():
    train_set, test_set = fmnist.load()
    assert tuple(train_set.images.shape) == (60000, 28, 28) and train_set.images.dtype == torch.uint8
    assert tuple(test_set.images.shape) == (10000, 28, 28)
    assert torch.bincount(train_set.labels).tolist() == [6000] * 10  # balanced classes
    x = fmnist.prepare(train_set.images[:8], 224)
    assert tuple(x.shape) == (8, 1, 224, 224) and x.dtype == torch.float32
    assert abs(fmnist.prepare(train_set.images[:2000], 28).mean().item()) < 0.05  # normalised


def write_idx(path, magic, dims, payload, compress=True):
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(raw)


def test_data_search_order_and_torchvision_layout(tmp_path, monkeypatch):
    layout = tmp_path / "FashionMNIST" / "raw"
    layout.mkdir(parents=True)
    for stem in fmnist.FILES.values():
        os.symlink(os.path.join(fmnist.DEBIAN_DIR, stem + ".gz"), layout / (stem + ".gz"))
    monkeypatch.setenv("ARCHSCOPE_DATA", str(tmp_path))
    assert fmnist.find_files()["train_images"] == layout / "train-images-idx3-ubyte.gz"


def test_missing_data_lists_three_ways(tmp_path, monkeypatch, cli):
    monkeypatch.setattr(fmnist, "DEBIAN_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ARCHSCOPE_DATA", raising=False)
    with pytest.raises(TrainingError) as info:
        fmnist.find_files()
    message = str(info.value)
    assert "--download" in message and "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    r = cli("train", "lenet", "--epochs", "1", "--out", str(tmp_path / "r"))
    assert r.exit_code == 1 and "Fashion-MNIST not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("damage, message", [
    ("truncated", "truncated"),
    ("magic", "not an IDX file"),
    ("not gzip", "corrupt"),
])
def test_damaged_files_are_named(tmp_path, cli, damage, message):
    for key, stem in fmnist.FILES.items():
        is_images = "images" in key
        n = 4
        dims = [n, 28, 28] if is_images else [n]
        payload = bytes(n * 28 * 28 if is_images else n)
        write_idx(tmp_path / (stem + ".gz"), 2051 if is_images else 2049, dims, payload)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    if damage == "truncated":
        write_idx(bad, 2049, [60000], bytes(10))
    elif damage == "magic":
        write_idx(bad, 2051, [4], bytes(4))
    else:
        bad.write_bytes(b"this is not gzip data at all")
    r = cli("train", "lenet", "--epochs", "1", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"))
    assert r.exit_code == 1 and message in r.stderr and "train-labels-idx1-ubyte.gz" in r.stderr
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------- training

def test_lenet_three_epochs_reach_084(tmp_path):
    result = train(TrainConfig("lenet", epochs=3, out=str(tmp_path / "run")), console=quiet_console())
    accs = [h["test_acc"] for h in result.history]
    assert accs[-1] >= 0.84, accs
    lines = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
    assert [l["epoch"] for l in lines] == [1, 2, 3] and lines[-1]["test_acc"] == accs[-1]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "time_s", "train_img_per_s", "lr"} <= set(lines[0])
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["best_test_acc"] == max(accs) and best["epoch"] == accs.index(max(accs)) + 1


def _history_numbers(history):
    return [(h["train_loss"], h["train_acc"], h["test_loss"], h["test_acc"]) for h in history]


def test_lenet_ten_epochs_reach_090(tmp_path):
    """D2L's classic result for this chapter: LeNet ≥ 0.90 after 10 epochs, with the default recipe on CPU."""
    result = train(TrainConfig("lenet", epochs=10, device="cpu", out=str(tmp_path / "run")), console=quiet_console())
    assert result.history[-1]["test_acc"] >= 0.90 and result.best_test_acc >= 0.90


@pytest.mark.parametrize("stop_at", [(0, 5), (1, 0), (0, 10)])  # mid-epoch, first step of epoch 2, last step of epoch 1 (11 steps)
def test_resume_equals_uninterrupted(tmp_path, stop_at):
    whole = train(small(tmp_path / "a", epochs=3, limit_train=2816), console=quiet_console())

    def stop(epoch, step, request):
        if (epoch, step) == stop_at:
            request.signal_name = "SIGINT"

    cut = train(small(tmp_path / "b", epochs=3, limit_train=2816), console=quiet_console(), on_step=stop)
    assert cut.interrupted and len(cut.history) == stop_at[0]
    last = str(tmp_path / "b" / "run" / "last.pt")
    resumed = train(resume_config(last, {}), console=quiet_console(), resume=last)
    assert _history_numbers(resumed.history) == _history_numbers(whole.history)
    a = torch.load(tmp_path / "a" / "run" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigint_and_sigterm_leave_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "archscope", "train", "lenet", "--epochs", "500", "--limit-train", "2000",
            "--limit-test", "500", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped by SIGINT" in stderr and f"--resume {out / 'last.pt'}" in stderr and "Traceback" not in stderr
    state = torch.load(out / "last.pt", weights_only=True)
    epochs_done = state["epoch"]
    assert epochs_done >= 1 and state["config"]["epochs"] == 500

    proc = subprocess.Popen(args[:5] + ["--resume", str(out / "last.pt")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines_before = len((out / "metrics.jsonl").read_text().splitlines())
    while len((out / "metrics.jsonl").read_text().splitlines()) <= lines_before and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resuming lenet" in stderr and "stopped by SIGTERM" in stderr
    after = torch.load(out / "last.pt", weights_only=True)
    assert (after["epoch"], after["step"]) > (epochs_done, state["step"])
    epochs = [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, len(epochs) + 1))  # no epoch lost or repeated


@pytest.mark.parametrize("name, kwargs", [("alexnet", {}), ("nin", {}), ("googlenet", {}), ("vgg", {"ratio": 8})])
def test_seed_models_loss_goes_down(tmp_path, name, kwargs):
    cfg = TrainConfig(name, epochs=4, batch_size=16, limit_train=64, limit_test=16, out=str(tmp_path / "run"),
                      model_kwargs=kwargs, schedule="none", **SMALL_RUN[name])
    history = train(cfg, console=quiet_console()).history
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < losses[0], losses


# 16 steps on 64 images with a constant learning rate: enough to see each model learn.
SMALL_RUN = {"alexnet": {"lr": 1e-4}, "nin": {"optimizer": "sgd", "lr": 0.05},
             "googlenet": {"lr": 1e-3}, "vgg": {"lr": 1e-3}}


# --------------------------------------------------------------------------- failures

def test_nan_loss_stops_with_the_step(tmp_path):
    with pytest.raises(TrainingError, match=r"(NaN/inf|diverged).* at epoch 1, step \d+: lower the learning rate"):
        train(small(tmp_path, optimizer="sgd", lr=1e38, schedule="none"), console=quiet_console())


def test_nan_loss_cli_exit_1(tmp_path, cli):
    r = cli("train", "lenet", "--optimizer", "sgd", "--lr", "1e38", "--schedule", "none", "--limit-train", "2000",
            "--epochs", "1", "--out", str(tmp_path / "r"))
    assert r.exit_code == 1 and ("NaN/inf" in r.stderr or "diverged" in r.stderr) and "Traceback" not in r.stderr


def test_cuda_out_of_memory_is_explained(tmp_path):
    def oom(epoch, step, request):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(TrainingError, match="--batch-size 128 or a smaller --resize"):
        train(small(tmp_path), console=quiet_console(), on_step=oom)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(cli, tmp_path):
    r = cli("train", "lenet", "--device", "cuda", "--out", str(tmp_path / "r"))
    assert r.exit_code == 1 and "no CUDA GPU" in r.stderr


def test_checkpoint_mismatch_and_eval(tmp_path, cli):
    train(small(tmp_path, epochs=1), console=quiet_console())
    best = tmp_path / "run" / "best.pt"
    r = cli("eval", "lenet", "--checkpoint", best, "-f", "json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    matrix = data["confusion"]
    assert sum(map(sum, matrix)) == 10000 and data["classes"][9] == "Ankle boot"
    assert data["accuracy"] == sum(matrix[i][i] for i in range(10)) / 10000
    table = cli("eval", "lenet", "--checkpoint", best)
    assert "Ankle boot" in table.stdout and "confusion matrix" in table.stdout
    bad = cli("eval", "alexnet", "--checkpoint", best)
    assert bad.exit_code == 2 and "is a run of 'lenet', not 'alexnet'" in bad.stderr and "Traceback" not in bad.stderr
    resume_other = cli("train", "nin", "--resume", tmp_path / "run" / "last.pt")
    assert resume_other.exit_code == 2 and "is a run of 'lenet'" in resume_other.stderr
    missing = cli("eval", "lenet", "--checkpoint", tmp_path / "nope.pt")
    assert missing.exit_code == 2 and "checkpoint not found" in missing.stderr
    (tmp_path / "junk.pt").write_bytes(b"junk")
    junk = cli("eval", "lenet", "--checkpoint", tmp_path / "junk.pt")
    assert junk.exit_code == 2 and "cannot read checkpoint" in junk.stderr and "weights_only" not in junk.stderr


def test_eval_formats_and_the_checkpoint_alone(tmp_path, cli):
    """``eval -f csv|markdown`` print those formats (they printed the rich table), and
    ``eval CHECKPOINT`` needs no model name: the checkpoint knows it."""
    import csv

    train(small(tmp_path, epochs=1, limit_test=500), console=quiet_console())
    best = tmp_path / "run" / "best.pt"
    data = json.loads(cli("eval", best, "-f", "json", "--limit-test", 500).stdout)
    rows = list(csv.DictReader(io.StringIO(cli("eval", best, "-f", "csv", "--limit-test", 500).stdout)))
    assert [r["class"] for r in rows] == data["classes"]
    for i, row in enumerate(rows):  # each class's images and recall, read back from the confusion matrix
        counts = [int(row[f"predicted_{c}"]) for c in data["classes"]]
        assert counts == data["confusion"][i] and int(row["images"]) == sum(counts)
        assert float(row["recall"]) == pytest.approx(counts[i] / sum(counts), abs=1e-4)
    assert sum(int(r["images"]) for r in rows) == 500
    markdown = cli("eval", "lenet", "--checkpoint", best, "-f", "markdown", "--limit-test", 500).stdout
    assert markdown.startswith(f"**test accuracy {data['accuracy']:.4f}") and "| Ankle boot |" in markdown
    assert "┏" not in markdown and "┃" not in markdown


def test_a_library_models_runs_are_named_after_it():
    assert TrainConfig("tv:resnet18").filled().out.startswith("runs/tv-resnet18-")
    assert TrainConfig("timm:vit_tiny_patch16_224").filled().out.startswith("runs/timm-vit_tiny_patch16_224-")
    assert TrainConfig("samples/custom_cnn.py:build").filled().out.startswith("runs/custom_cnn-")
    assert TrainConfig("lenet").filled().out.startswith("runs/lenet-")


def test_without_matplotlib_the_run_says_how_to_get_the_plot(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = train(small(tmp_path, epochs=1), console=quiet_console())
    assert "archscope[plot]" in result.plot_note and not (tmp_path / "run" / "curves.png").exists()


def test_bad_training_options(tmp_path):
    with pytest.raises(UsageError):
        train(small(tmp_path, optimizer="rmsprop"), console=quiet_console())
    with pytest.raises(UsageError):
        train(small(tmp_path, schedule="step"), console=quiet_console())
    with pytest.raises(UsageError):
        train(small(tmp_path, batch_size=0), console=quiet_console())


def test_resume_can_extend_a_constant_lr_run_exactly(tmp_path):
    whole = train(small(tmp_path / "a", epochs=3, schedule="none"), console=quiet_console())
    train(small(tmp_path / "b", epochs=2, schedule="none"), console=quiet_console())
    last = str(tmp_path / "b" / "run" / "last.pt")
    longer = train(resume_config(last, {"epochs": 3}), console=quiet_console(), resume=last)
    assert _history_numbers(longer.history) == _history_numbers(whole.history)


def test_resume_extends_a_one_cycle_run_along_the_longer_plan(tmp_path):
    from archscope.train.schedule import get_lr

    train(small(tmp_path, epochs=1), console=quiet_console())  # one-cycle by default
    last = str(tmp_path / "run" / "last.pt")
    longer = train(resume_config(last, {"epochs": 2}), console=quiet_console(), resume=last)
    cfg = resume_config(last, {})
    assert cfg.epochs == 2 and len(longer.history) == 2
    steps = 12  # 3000 images in batches of 256
    assert longer.history[1]["lr"] == get_lr(2 * steps - 1, cfg, 2 * steps)



def test_a_short_runs_curves_carry_the_running_loss_of_each_log_point(tmp_path):
    result = train(small(tmp_path, epochs=2, limit_train=3000, batch_size=100), console=quiet_console())
    points = result.points
    per_epoch = 30  # 3000 images / 100: a log point at every step (1/20 epoch rounds down to one step)
    assert [round(x * per_epoch) for x, _, _ in points] == list(range(1, 2 * per_epoch + 1))
    for epoch, h in enumerate(result.history, start=1):  # an epoch's last running figures are its own
        last = [p for p in points if p[0] == epoch][-1]
        assert last[1] == pytest.approx(h["train_loss"]) and last[2] == pytest.approx(h["train_acc"])
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
