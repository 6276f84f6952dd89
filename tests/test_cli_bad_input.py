"""Bad input on the inspection side: each one clear line, the right exit code, nothing left behind."""
import os
import shutil

import pytest

from conftest import SAMPLES, one_line, run_cli


def test_typer_parse_errors_are_one_line_exit_2():
    r = run_cli("shapes", "lenet", "--size", "abc")
    assert r.returncode == 2 and "--size" in one_line(r.stderr)
    r = run_cli("shapes", "lenet", "--bogus")
    assert r.returncode == 2 and "--bogus" in one_line(r.stderr)


def test_version():
    from archscope import __version__

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"archscope {__version__}"


@pytest.mark.parametrize("args, code, words", [
    (["shapes", "lenet", "--input", "1x1x100000x100000", "--device", "cpu"], 2, "could not allocate the input"),
    (["shapes", "lenet", "--arg", "num_classes=-1"], 2, "num_classes=-1"),
    (["check", "lenet", "--sizes", "1..100000"], 2, "at most 4096 sides"),
    (["shapes", os.path.join(SAMPLES, "residual.py")], 2, "residual.py:build"),
    (["shapes", "lenet", "--input", "1x1x28x28:float7"], 2, "unknown dtype"),
])
def test_mistakes_are_one_line(cli, args, code, words):
    r = cli(*args)
    assert r.exit_code == code
    assert words in one_line(r.stderr)


@pytest.mark.parametrize("args", [["shapes", "vgg", "--ratio", "128"], ["shapes", "lenet", "--arg", "in_channels=0"]])
def test_pytorch_warnings_do_not_leak(args):
    r = run_cli(*args)
    assert "Warning" not in r.stderr
    one_line(r.stderr)


def test_syntax_error_location_once(tmp_path, cli):
    bad = tmp_path / "net.py"
    bad.write_text("import torch\ndef build(:\n    pass\n")
    r = cli("shapes", f"{bad}:build")
    line = one_line(r.stderr)
    assert r.exit_code == 2 and line.count("line 2") == 1


def test_loading_a_user_file_writes_no_pycache(tmp_path, cli):
    for name in ("residual.py",):
        shutil.copy(os.path.join(SAMPLES, name), tmp_path / name)
    before = sorted(os.listdir(tmp_path))
    r = cli("shapes", f"{tmp_path / 'residual.py'}:build")
    assert r.exit_code == 0
    assert sorted(os.listdir(tmp_path)) == before


def test_multi_input_and_dtype_on_the_command_line(tmp_path):
    model = tmp_path / "two.py"
    model.write_text(
        "import torch\nfrom torch import nn\n"
        "class Two(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.embed = nn.Embedding(50, 8)\n        self.fc = nn.Linear(8 + 3, 2)\n"
        "    def forward(self, ids, extra):\n"
        "        return self.fc(torch.cat([self.embed(ids).mean(1), extra], 1))\n")
    r = run_cli("summary", f"{model}:Two", "--input", "1x12:int64", "--input", "1x3", "-f", "json")
    assert r.returncode == 0, r.stderr
    import json
    d = json.loads(r.stdout)
    assert d["input_shape"] == [[1, 12], [1, 3]] and d["input_dtypes"] == ["int64", "float32"]
    assert d["totals"]["flops"] == 2 * 11 * 2


def test_input_data_file(tmp_path):
    import torch

    path = tmp_path / "x.pt"
    torch.save(torch.zeros(2, 1, 28, 28), path)
    r = run_cli("shapes", "lenet", "--input-data", str(path), "-f", "json")
    assert r.returncode == 0, r.stderr
    import json
    assert json.loads(r.stdout)["input_shape"] == [2, 1, 28, 28]
    (tmp_path / "junk.pt").write_text("not a tensor")
    r = run_cli("shapes", "lenet", "--input-data", str(tmp_path / "junk.pt"))
    assert r.returncode == 2 and "weights_only=False" not in r.stderr
    one_line(r.stderr)


def test_bad_configs_and_outputs_are_one_line_exit_2_before_any_work(tmp_path, cli):
    """Each of these was an internal error (exit 1) or failed only after the model was traced."""
    pytest.importorskip("transformers")
    import json

    import transformers

    (tmp_path / "list.json").write_text("[1, 2]")
    config = transformers.GPT2Config(n_layer=1).to_dict()
    config["n_embd"] = "big"
    (tmp_path / "typed.json").write_text(json.dumps(config))
    (tmp_path / "weights.pt").write_bytes(b"not python")
    cases = [
        (["flops", f"hf:{tmp_path / 'list.json'}"], "JSON list"),
        (["flops", f"hf:{tmp_path / 'typed.json'}"], "n_embd"),
        (["flops", "hf:llama", "--arg", "num_attention_heads=0", "--arg", "num_hidden_layers=1"],
         "num_attention_heads=0"),
        (["graph", "lenet", "-o", tmp_path / "missing" / "x.svg"], "does not exist"),
        (["report", "lenet", "-o", tmp_path / "missing" / "x.html"], "does not exist"),
        (["flops", f"{tmp_path / 'weights.pt'}:build"], "not a Python file"),
        (["time", "lenet", "--hw", "peak=0,bandwidth=1e12"], "above zero"),
    ]
    for args, words in cases:
        r = cli(*args)
        assert r.exit_code == 2 and words in one_line(r.stderr), (args, r.stderr)
    assert not (tmp_path / "missing").exists()


def test_help_shows_no_value_on_a_flag_and_names_every_source():
    import re

    for command in ("flops", "train", "memory", "graph", "list", "compare"):
        r = run_cli(command, "--help")
        flags = [line for line in r.stdout.splitlines() if "<bool>" in line]
        assert r.returncode == 0 and not flags, (command, flags)  # --help itself included
        assert "hf:" in r.stdout, command
    r = run_cli("flops", "lenet", "--train", "true")  # a flag takes no value: one line saying so
    assert r.returncode == 2 and re.search(r"true", one_line(r.stderr))
