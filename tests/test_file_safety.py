"""A file never chooses code to run: a checkpoint naming ``os:system`` (it loads cleanly under
``weights_only=True``) is refused by ``eval`` and ``train --resume``, and the command never runs;
a spec the user types still works, as does a zoo name the file gives."""
import os
import subprocess
import sys

import torch

from conftest import ROOT, one_line, quiet_console, skip_without_fashion_mnist

skip_without_fashion_mnist()


def malicious_checkpoint(path, marker, model="os:system", kwargs=None):
    state = {"model": {}, "config": {"model": model, "model_kwargs": kwargs or {"command": f"touch {marker}"}},
             "epoch": 0, "step": 0, "history": [], "best_test_acc": 0.0, "rng": {}}
    torch.save(state, path)
    torch.load(path, weights_only=True)  # it is a "safe" file as far as PyTorch can tell
    return path


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "archscope", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": ROOT})


def test_eval_refuses_a_checkpoint_that_names_code_and_runs_nothing(tmp_path):
    marker = tmp_path / "x"
    ckpt = malicious_checkpoint(tmp_path / "evil.pt", marker)
    r = run("eval", ckpt, cwd=tmp_path)
    line = one_line(r.stderr)
    assert r.returncode == 2 and "'os:system'" in line and "archscope eval os:system" in line, r.stderr
    assert not marker.exists()
    r = run("train", "lenet", "--resume", ckpt, cwd=tmp_path)  # another name typed: refused as a mismatch
    assert r.returncode == 2 and not marker.exists(), r.stderr
    one_line(r.stderr)


def test_a_file_spec_from_a_checkpoint_is_refused_remote_code_too(tmp_path, cli):
    from archscope.errors import UsageError
    from archscope.train import resume_config

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\ndef build():\n    raise SystemExit('ran')\n")
    ckpt = malicious_checkpoint(tmp_path / "file.pt", marker, model=f"{evil}:build", kwargs={})
    r = cli("eval", ckpt)
    assert r.exit_code == 2 and f"archscope eval {evil}:build {ckpt}" in one_line(r.stderr)
    try:
        resume_config(str(ckpt), {})
        raise AssertionError("resume_config took a file spec from the checkpoint")
    except UsageError as error:
        assert "code to import" in str(error)
    remote = malicious_checkpoint(tmp_path / "remote.pt", marker, model="hf:llama", kwargs={"trust_remote_code": True})
    r = cli("eval", remote)
    assert r.exit_code == 2 and "trust_remote_code" in one_line(r.stderr)
    assert not marker.exists()


def test_a_zoo_checkpoint_still_evaluates_without_naming_the_model(tmp_path, cli):
    from archscope.train import TrainConfig, train

    train(TrainConfig(model="lenet", epochs=1, batch_size=64, limit_train=64, limit_test=64, out=str(tmp_path / "r"),
                      device="cpu"), console=quiet_console())
    r = cli("eval", tmp_path / "r" / "best.pt", "--limit-test", "64", "-f", "json")
    assert r.exit_code == 0, r.stderr


def test_a_configs_architectures_may_name_only_a_transformers_model_class(tmp_path, monkeypatch):
    """config.json's ``architectures[0]`` is looked up in transformers: a name of something else it
    holds (a function) is not called; the base model is built, as for a config naming no head."""
    import json

    import pytest

    transformers = pytest.importorskip("transformers")
    import archscope

    called = []
    monkeypatch.setattr(transformers, "not_a_model", lambda *a, **k: called.append(a), raising=False)
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=64).to_dict()
    config["architectures"] = ["not_a_model"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    t = archscope.trace(f"hf:{tmp_path / 'config.json'}")
    assert not called and "base model" in t.note
    assert t.totals.params == transformers.GPT2Model(transformers.GPT2Config(**config)).num_parameters()
