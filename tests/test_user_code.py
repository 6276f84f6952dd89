"""User code that misbehaves, and models that come wrapped: one clear line or the right numbers,
and machine output that stays machine-readable."""
import json

import pytest
import torch
from torch import nn

from archscope import memory, trace
from archscope.errors import ModelFailure

from conftest import one_line, run_cli

NOISY = '''
import argparse
import torch
from torch import nn
print("importing noisy.py")
options = argparse.ArgumentParser().parse_args()  # a script's habit: parses its own command line

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
    def forward(self, x):
        print("forward of Net")
        return self.fc(x)

def build():
    print("building Net")
    return Net()

def leaves():
    raise SystemExit(3)
'''


@pytest.fixture
def noisy(tmp_path):
    path = tmp_path / "noisy.py"
    path.write_text(NOISY)
    return path


def test_what_user_code_prints_goes_to_stderr_and_json_stays_json(noisy):
    r = run_cli("shapes", f"{noisy}:build", "--input", "1x4", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["flops"] == 2 * 4 * 2  # a Linear(4, 2) on one row
    for line in ("importing noisy.py", "building Net", "forward of Net"):
        assert line in r.stderr and line not in r.stdout
    csv = run_cli("params", f"{noisy}:build", "--input", "1x4", "-f", "csv").stdout
    assert csv.splitlines()[0].startswith("name,type,depth")


def test_sys_exit_in_a_factory_is_one_line(noisy):
    r = run_cli("shapes", f"{noisy}:leaves", "--input", "1x4")
    assert r.returncode == 2
    line = one_line(r.stderr.replace("importing noisy.py\n", ""))
    assert "noisy.py:leaves called sys.exit(3) while building the model" in line


def test_a_pickled_input_file_is_one_line_without_torchs_warning(tmp_path):
    path = tmp_path / "batch.pt"
    torch.save({"x": torch.zeros(1, 1, 28, 28), "extra": nn.Linear(2, 2)}, path)  # a module: not weights-only
    r = run_cli("shapes", "lenet", "--input-data", path)
    assert r.returncode == 2 and "is not a tensor, tuple or dict" in one_line(r.stderr)


def test_a_users_error_mentioning_metadata_is_not_blamed_on_meta():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            raise ValueError("bad metadata in the batch")

    with pytest.raises(ModelFailure) as info:
        trace(Picky(), input_size=(1, 4))
    assert "bad metadata in the batch" in str(info.value) and "CPU" not in str(info.value)


def test_memory_takes_the_batch_of_the_input():
    eight = memory("lenet", input_size="8x1x28x28")
    assert eight.batch == 8 and eight.input_shape == [8, 1, 28, 28]
    one = memory("lenet")
    assert eight.activations_bytes == 8 * one.activations_bytes  # LeNet's activations grow with the batch
    assert memory("lenet", batch=2, input_size="8x1x28x28").batch == 2  # an explicit --batch wins


@pytest.mark.parametrize("wrap", [nn.DataParallel])
def test_a_wrapped_model_is_unwrapped(wrap):
    inner = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    t = trace(wrap(inner), input_size=(2, 4))
    assert [r.name for r in t.rows] == ["0", "1", "2"] and "DataParallel" in t.note
    assert t.totals.flops == 2 * 2 * (4 * 3 + 3 * 2)  # two rows through both Linears
