import json
import os
import textwrap

import pytest

from archscope.analysis import trace
from archscope.errors import UsageError
from archscope.models import load_model, parse_args

from conftest import SAMPLES


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_parse_args():
    assert parse_args(["ratio=8", "name=abc", "arch=((1,64),)", "p=0.5"]) == {
        "ratio": 8, "name": "abc", "arch": ((1, 64),), "p": 0.5}
    with pytest.raises(UsageError):
        parse_args(["novalue"])


def test_file_factory_gets_args_and_builds_on_meta(tmp_path):
    path = write(tmp_path, "net.py", """
        from torch import nn
        def build(width: int = 4):
            return nn.Sequential(nn.Conv2d(1, width, 3), nn.Flatten(), nn.LazyLinear(10))
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)
            def forward(self, x):
                return self.fc(x)
        instance = Net()
    """)
    loaded = load_model(f"{path}:build", device="meta", width=6)
    assert loaded.module[0].out_channels == 6 and loaded.module[0].weight.device.type == "meta"
    assert load_model(f"{path}:Net").module.fc.in_features == 8
    assert trace(f"{path}:instance", input_size=(2, 8)).totals.params == 18


def test_importable_module_attr():
    t = trace("archscope.models.zoo.lenet:lenet", input_size=28)
    assert t.totals.params == 61706 and t.model == "archscope.models.zoo.lenet:lenet"


@pytest.mark.parametrize("body, spec, message", [
    (None, "missing.py:build", "missing.py"),
    ("from torch import nn\ndef build():\n    return nn.Linear(2, 2)\nclass Net(nn.Module):\n    pass\nx = 3\n",
     "net.py:buld", "no attribute 'buld'; candidates that give a model: Net, build"),
    ("import torch\n\n\nraise ValueError('bad config in user file')\n", "net.py:build",
     "ValueError: bad config in user file (net.py, line 4)"),
    ("def build(:\n", "net.py:build", "SyntaxError"),
    ("def build():\n    return [1, 2]\n", "net.py:build", "returned a list, not an nn.Module"),
    ("def build():\n    x = 1\n    return undefined_name\n", "net.py:build", "NameError: name 'undefined_name' is not defined (net.py, line 3)"),
    ("def build(width=2):\n    return None\n", "net.py:build --arg depth=3", "has no option 'depth'"),
    ("value = 5\n", "net.py:value", "is a int, not a function or class"),
])
def test_user_model_errors_are_one_line_exit_2(cli, tmp_path, body, spec, message):
    if body is not None:
        write(tmp_path, "net.py", body)
    target, *extra = spec.split(" ")
    r = cli("shapes", os.path.join(tmp_path, target), "--size", "8", *extra)
    assert r.exit_code == 2, r.stdout
    assert message in r.stderr
    assert body is not None or "file not found" in r.stderr
    assert "Traceback" not in r.stderr and "archscope/" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_module():
    with pytest.raises(UsageError, match="no module named 'nonexistent_pkg.models'"):
        load_model("nonexistent_pkg.models:build")


def test_help_says_loading_a_file_runs_it(cli):
    assert "run as Python code" in " ".join(cli("summary", "--help").stdout.split())


# --------------------------------------------------------------------------- samples through the CLI

def sample(name):
    return os.path.join(SAMPLES, name) + ":build"


def test_sample_custom_cnn(cli):
    data = json.loads(cli("summary", sample("custom_cnn.py"), "-f", "json").stdout)
    assert data["input_shape"] == [1, 1, 28, 28] and data["output_shape"] == [1, 10]
    w = 32
    expected = (w * 10 + 2 * w) + (2 * w * (9 * w + 1) + 4 * w) + (2 * w * 49 + 1) * 128 + 129 * 10
    assert data["totals"]["params"] == expected
    assert cli("check", sample("custom_cnn.py")).exit_code == 0


def test_sample_broken_alexnet(cli):
    r = cli("check", sample("broken_alexnet.py"))
    assert r.exit_code == 1
    assert "classifier.0" in r.stdout and "9216" in r.stdout and "6400" in r.stdout
    assert "fix: set in_features=6400" in r.stdout


def test_sample_functional_ops_flops_are_counted(cli):
    data = json.loads(cli("flops", sample("functional_ops.py"), "-f", "json").stdout)
    rows = {l["name"]: l for l in data["layers"]}
    assert rows["TwoTower (self)"]["flops"] == 2 * 512 * 64  # the matmul in forward
    assert rows["TwoTower (self)"]["params"] == 512 * 64
    assert rows["left"]["flops"] == 2 * 16 * 28 * 28 * 9 and rows["right"]["flops"] == 2 * 16 * 28 * 28 * 25
    assert sum(l["flops"] for l in data["layers"]) == data["totals"]["flops"]


def test_sample_residual(cli):
    data = json.loads(cli("shapes", sample("residual.py"), "--depth", "2", "-f", "json").stdout)
    shapes = {l["name"]: l["output_shape"] for l in data["layers"]}
    assert shapes["stage1.1"] == [1, 32, 24, 24]
    assert shapes["stage2.0"] == [1, 64, 12, 12]
    assert shapes["stage3.1"] == [1, 128, 6, 6]
    assert data["output_shape"] == [1, 10]


def test_sample_huge_model_on_meta(cli):
    data = json.loads(cli("params", sample("huge_model.py"), "-f", "json").stdout)
    width, blocks = 32768, 9
    stem = 256 * (1 * 9 + 1) + 512 * (256 * 9 + 1)
    expected = stem + (512 * 16 + 1) * width + blocks * (width + 1) * width + (width + 1) * 10
    assert data["totals"]["params"] == expected and expected > 9.9e9
    assert data["device"] == "meta"


def test_sample_two_inputs_by_hand_on_meta_and_cpu(cli):
    spec = os.path.join(SAMPLES, "two_inputs.py") + ":TextAndImage"
    lstm = 2 * 128 * (4 * 64 * 64 + 4 * 64 * 64)  # input and hidden matmuls, 128 steps
    conv = 2 * 64 * 15 * 15 * 3 * 9
    head = 2 * 128 * 10
    for device in ("meta", "cpu"):
        r = cli("summary", spec, "--input", "1x128:int64", "--input", "1x3x32x32", "--device", device, "-f", "json")
        assert r.exit_code == 0, r.stderr
        data = json.loads(r.stdout)
        rows = {l["name"]: l for l in data["layers"]}
        assert rows["lstm"]["flops"] == lstm and rows["conv"]["flops"] == conv
        assert data["totals"]["flops"] == lstm + conv + head
