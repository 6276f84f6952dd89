"""What a newcomer sees in the first minutes: tables that fit 80 and 120 columns without cutting a
number, results that print as tables in a plain shell, one vocabulary, honest first estimates."""
import io
import os
import re
import types

import pytest
import torch
from rich.console import Console

import archscope
from archscope.analysis.listing import list_rows
from archscope.report import render
from archscope.train import progress

from conftest import run_cli


def at_width(renderable, width):
    console = Console(width=width, file=io.StringIO(), color_system=None, force_terminal=False)
    console.print(renderable)
    return console.file.getvalue()


def numbers_in(text):
    return set(re.findall(r"\d[\d,]*(?:\.\d+)?", text))


CASES = [
    ("summary googlenet", lambda: archscope.trace("googlenet")),
    ("summary tv:resnet50 depth 3", lambda: archscope.trace("tv:resnet50", depth=3)),
    ("params googlenet", lambda: (archscope.trace("googlenet"), "params")),
    ("summary --train --rf", lambda: archscope.trace("resnet18", train=True, rf=True)),
    ("compare", lambda: archscope.compare(["lenet", "alexnet", "googlenet"])),
    ("list tv:", lambda: list_rows("tv:res*")),
    ("list", lambda: list_rows("*")),
    ("check", lambda: archscope.check("alexnet", input_size=227)),
    ("memory", lambda: archscope.memory("vgg", batch=64)),
]


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_tables_fit_and_never_cut_a_number(name, make, width):
    made = make()
    result, view = made if isinstance(made, tuple) else (made, None)
    text = at_width(render(result, "table", view), width)
    assert all(len(line) <= width for line in text.splitlines()), text
    assert "…" not in text, text  # rich's mark of a cut cell
    # Every number a shown cell holds appears whole: the wide rendering's numbers of the rows kept.
    wide = at_width(render(result, "table", view), 400)
    for line in text.splitlines():
        for cell in re.findall(r"│\s*([\d,.]+(?: [kMGT])?)\s*(?=│)", line):
            assert cell.split()[0] in numbers_in(wide), (cell, line)


def test_narrow_tables_leave_out_the_least_useful_columns_first():
    t = archscope.trace("googlenet")
    narrow, wide = at_width(render(t), 80), at_width(render(t), 160)
    assert "┃     MACs ┃" in wide and "┃     MACs ┃" not in narrow  # MACs are FLOPs / 2: the first to go
    assert "Params" in narrow and "FLOPs" in narrow and "5,977,530" in narrow  # GoogLeNet-for-Fashion-MNIST's params


def test_piped_output_honours_columns():
    narrow = run_cli("summary", "googlenet", env={**os.environ, "COLUMNS": "80"}).stdout
    assert max(len(line) for line in narrow.splitlines()) <= 80
    wide = run_cli("summary", "googlenet", env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert max(len(line) for line in wide.stdout.splitlines()) > 80  # piped without COLUMNS: 160 wide


def test_the_flops_convention_shows_where_flops_are_shown_once():
    t = archscope.trace("lenet")
    assert "FLOPs = 2 × MACs" in at_width(render(t, "table", "flops"), 120)
    assert "FLOPs = 2 × MACs" not in at_width(render(t, "table", "shapes"), 120)
    assert "FLOPs = 2 × MACs" not in at_width(render(t, "table", "params"), 120)
    assert at_width(render(t, "table", "summary"), 120).count("FLOPs = 2 × MACs") == 1


def test_results_print_as_tables_and_repr_in_one_line():
    t = archscope.trace("lenet")
    assert "\n" not in repr(t) and len(repr(t)) < 200 and "61,706 params" in repr(t)
    assert str(t).startswith("lenet — summary") and "61,706" in str(t)
    for result in (archscope.check("nin"), archscope.memory("lenet"), archscope.compare(["lenet"]), list_rows("le*")):
        assert "\n" not in repr(result) and len(repr(result)) < 200
        assert "┃" in str(result) or "has no Linear" in str(result)


def test_one_unit_system_for_bytes():
    t = archscope.trace("alexnet")
    text = at_width(render(t), 160)
    assert "178.39 MiB at float32" in text  # 46,764,746 × 4 B / 2**20, the same figure memory prints
    assert "MB" not in text.replace("MiB", "")
    assert "178.39 MiB" in at_width(render(archscope.memory("alexnet")), 120)


def test_library_listings_have_their_own_titles_and_googlenets_note():
    text = at_width(render(list_rows("tv:googlenet")), 120)
    assert "torchvision models" in text and "archscope zoo" not in text
    assert "6,624,904 *" in text and "without the two auxiliary heads" in text


def test_layer_names_that_are_numbers_read_as_names():
    r = run_cli("shapes", "lenet", "--size", "20")
    assert "layer '7' (Linear) failed" in r.stderr and "check what 7" not in r.stderr
    assert "has no Linear layers to check" in run_cli("check", "nin").stdout


def test_compare_help_and_one_model(cli):
    assert "One or more models" in cli("compare", "--help").stdout
    assert cli("compare", "lenet").exit_code == 0


def test_the_first_estimate_leaves_the_warm_up_out(monkeypatch):
    """A 10 s first step and 1 s steps after it: an epoch of 60 steps is ≈ 60 s, not ≈ 120 s."""
    said = []
    run = types.SimpleNamespace(dist=types.SimpleNamespace(main=True), console=Console(file=io.StringIO()),
                                cfg=types.SimpleNamespace(epochs=1, batch_size=32, model="lenet"), steps_per_epoch=60,
                                total_steps=60, device=types.SimpleNamespace(type="cuda"), side=28,
                                say=said.append)
    clock = iter([0.0, 10.0] + [10.0 + i for i in range(1, 100)])  # the start, then one reading per refresh
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    bar = progress.EpochProgress(run, 0, 0)
    sums = {"seen": torch.tensor(32.0), "loss": torch.tensor(1.0),
            "correct": torch.tensor(3)}
    for done in range(1, 8):
        bar.update(done, sums)
    assert said[0] == "measured 32 img/s after warm-up: ≈ 60 s an epoch, ≈ 60 s for 1 epoch on cuda"
    assert len(said) == 2 and said[1].startswith("no time prediction")  # this fake run has no model to time


@pytest.mark.parametrize("script", sorted(f for f in os.listdir(os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
                                          if f.endswith(".py")))
def test_each_benchmark_explains_itself_without_running(script):
    import subprocess
    import sys

    from conftest import ROOT

    done = subprocess.run([sys.executable, os.path.join("benchmarks", script), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.startswith("usage:") and len(done.stdout.splitlines()) > 2
    # --help printed its usage and stopped: no model line (the 92-model run, the sweep) was printed
    assert not any(line.startswith(("resnet", "alexnet", "lenet", "model ")) for line in done.stdout.splitlines())


def test_a_narrow_table_says_what_it_left_out_and_keeps_what_its_total_adds():
    r = archscope.memory("nin", depth=1)
    narrow = at_width(render(r, "table"), 80)
    header = next(line for line in narrow.splitlines() if "Activations" in line)
    for column in ("Activations", "Params", "Grads", "Optimizer", "Total"):  # Total is their sum
        assert column in header, column
    assert "left out at 80 columns: Type, Input (kept if checkpointed), Peak" in " ".join(narrow.split())
    assert "left out" not in at_width(render(r, "table"), 400)


def test_curves_have_whole_epoch_ticks_and_a_title(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    from archscope.train.plot import plot_curves

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    history = [{"epoch": 1, "train_loss": 0.9, "test_loss": 1.0, "train_acc": 0.7, "test_acc": 0.65}]
    assert plot_curves(history, tmp_path / "curves.png", "lenet on Fashion-MNIST, 1 epoch") is None
    fig = figures[0]
    assert all(list(ax.get_xticks()) == [1] for ax in fig.axes)
    assert fig._suptitle.get_text() == "lenet on Fashion-MNIST, 1 epoch"
    assert (tmp_path / "curves.png").stat().st_size > 0
