import csv
import io
import json
import sys

import pytest

from archscope import trace

from conftest import run_cli

COMMANDS = ["shapes", "params", "flops", "summary"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_in_every_format(cli, command):
    t = trace("vgg", ratio=8)
    table = cli(command, "vgg", "--ratio", "8")
    assert table.exit_code == 0, table.stderr
    shows_flops = command in ("flops", "summary")
    assert "vgg_block_5" in table.stdout
    assert ("2 × MACs" in table.stdout) == shows_flops  # the convention where FLOPs are shown, and only there

    data = json.loads(cli(command, "vgg", "--ratio", "8", "--format", "json").stdout)
    assert data["model"] == "vgg" and data["options"] == {"ratio": 8}
    assert data["input_shape"] == [1, 1, 224, 224] and data["device"] == "meta"
    assert [l["output_shape"] for l in data["layers"]] == [r.output_shape for r in t.rows]
    assert data["totals"] == t.totals.to_dict()

    rows = list(csv.DictReader(io.StringIO(cli(command, "vgg", "-r", "8", "-f", "csv").stdout)))
    assert [r["name"] for r in rows] == [r.name for r in t.rows]
    assert sum(int(r["flops"]) for r in rows) == t.totals.flops
    assert rows[4]["output_shape"] == "1×64×7×7"

    md = cli(command, "vgg", "-r", "8", "-f", "markdown").stdout
    assert md.count("\n| vgg_block_") == 5 and ("2 × MACs" in md) == shows_flops


def test_shapes_table_shows_the_seed_shapes(cli):
    out = cli("shapes", "vgg", "--ratio", "8").stdout
    for shape in ("1×8×112×112", "1×16×56×56", "1×32×28×28", "1×64×14×14", "1×64×7×7", "1×10"):
        assert shape in out


def test_params_columns(cli):
    out = cli("params", "lenet").stdout
    assert "61,706" in out  # the total row
    data = json.loads(cli("params", "lenet", "-f", "json").stdout)
    assert data["totals"]["params"] == 61706
    assert "Frozen" in out and "fp32 bytes" in out and "% params" in out


def test_summary_has_a_totals_panel(cli):
    out = cli("summary", "alexnet").stdout
    assert "totals" in out and "46,764,746" in out and "1,876,292,352" in out


def test_depth_batch_size_and_arg_options(cli):
    data = json.loads(cli("shapes", "googlenet", "--size", "224", "--batch", "2", "--depth", "2", "-f", "json").stdout)
    assert data["input_shape"] == [2, 1, 224, 224]
    assert data["layers"][0]["name"] == "b1.0" and data["layers"][0]["output_shape"] == [2, 64, 112, 112]
    data = json.loads(cli("params", "alexnet", "--arg", "fc_layers=1", "-f", "json").stdout)
    assert data["options"] == {"fc_layers": 1}
    assert data["totals"]["params"] == trace("alexnet", fc_layers=1).totals.params
    data = json.loads(cli("shapes", "lenet", "--input", "3x1x28x28", "-f", "json").stdout)
    assert data["layers"][-1]["output_shape"] == [3, 10]


def test_cpu_device(cli):
    data = json.loads(cli("flops", "lenet", "--device", "cpu", "-f", "json").stdout)
    assert data["device"] == "cpu" and data["totals"]["flops"] == trace("lenet").totals.flops


def test_list(cli):
    out = cli("list").stdout
    for name in ("alexnet", "vgg", "nin", "googlenet", "lenet"):
        assert name in out
    data = json.loads(cli("list", "vgg*", "-f", "json").stdout)
    assert [d["name"] for d in data] == ["vgg"] and data[0]["params"] == trace("vgg").totals.params
    assert data[0]["input_shape"] == [1, 1, 224, 224]


@pytest.mark.parametrize("args, message", [
    (["shapes", "alexnt"], "did you mean 'alexnet'"),
    (["shapes", "alexnet", "-i", "1x1x224"], "1×1×224 arrives with 3 sizes, but a Conv2d takes 4"),
    (["shapes", "alexnet", "-i", "axb"], "malformed --input 'axb'"),
    (["shapes", "alexnet", "-i", "0x1x2x2"], "positive"),
    (["shapes", "alexnet", "-i", "1x1x-224x224"], "positive"),
    (["shapes", "alexnet", "--arg", "depth=3"], "no option 'depth'"),
    (["shapes", "alexnet", "--arg", "nonsense"], "malformed --arg"),
    (["shapes", "alexnet", "--size", "227"], "fc.0 (Linear) failed"),
    (["shapes", "alexnet", "--size", "0"], "positive"),
    (["shapes", "alexnet", "--format", "xml"], "unknown --format"),
    (["shapes", "alexnet", "--device", "tpu"], "unknown --device"),
    (["shapes", "alexnet", "--depth", "0"], "--depth"),
    (["shapes", "alexnet", "--size", "96", "--input", "1x1x96x96"], "either --input or --size"),
    (["list", "mobilenet*"], "no model matches"),
])
def test_bad_input_is_one_line_exit_2(cli, args, message):
    r = cli(*args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback(cli):
    r = cli("shapes", "alexnet", "--size", "227", "--debug")
    assert r.exit_code == 2 and "Traceback" in r.stderr


def test_python_dash_m_and_no_torchvision_on_start_up():
    r = run_cli("shapes", "lenet", "-f", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["output_shape"] == [1, 10]
    code = ("import sys; from typer.testing import CliRunner; from archscope.cli import app; "
            "r = CliRunner().invoke(app, ['summary', 'googlenet']); assert r.exit_code == 0, r.output; "
            "print('torchvision' in sys.modules)")
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_usage_error_from_typer_is_exit_2():
    r = run_cli("shapes")
    assert r.returncode == 2


def test_list_in_csv_and_markdown(cli):
    rows = cli("list", "*net", "-f", "csv").stdout.splitlines()
    assert rows[0] == "name,input_shape,params,flops,description"
    assert rows[1].startswith(f"alexnet,1x1x224x224,46764746,{trace('alexnet').totals.flops},")
    md = cli("list", "-f", "markdown").stdout
    assert "| lenet | 1×1×28×28 | 61,706 |" in md and md.count("\n| ") == 8  # eight models after the header rows
