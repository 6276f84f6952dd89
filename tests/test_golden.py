"""Golden files: how every zoo model's summary (table and Markdown) looks, and the check, memory
and compare reports of the seed models. A change in how they look (or in any number) is a
visible diff. After an intended change, regenerate with

    ARCHSCOPE_UPDATE_GOLDEN=1 pytest tests/test_golden.py

then review the diff and run once more without the flag. A run with the flag fails every test
whose file changed (so an update is never a silent green run), and any golden test that
compared nothing.
"""
import io
import os

import pytest
from rich.console import Console

from archscope import check, compare, memory, trace
from archscope.models import list_models
from archscope.report import render

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
UPDATE = os.environ.get("ARCHSCOPE_UPDATE_GOLDEN") == "1"


def as_text(renderable) -> str:
    console = Console(width=150, file=io.StringIO(), color_system=None, force_terminal=False, force_jupyter=False)
    console.print(renderable)
    return console.file.getvalue()


@pytest.fixture
def golden():
    """``golden(filename, text)`` compares with tests/golden/filename. Under the flag it rewrites
    every file that changed and the test then fails, naming them."""
    compared, rewritten = [], []

    def check_golden(filename: str, text: str):
        path = os.path.join(GOLDEN, filename)
        expected = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        compared.append(filename)
        if UPDATE:
            if text != expected:
                os.makedirs(GOLDEN, exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                rewritten.append(filename)
            return
        assert expected is not None, f"{filename} is missing: generate it with ARCHSCOPE_UPDATE_GOLDEN=1"
        assert text == expected, f"{filename} changed; if intended, regenerate with ARCHSCOPE_UPDATE_GOLDEN=1"

    yield check_golden
    assert compared, "this golden test compared nothing"
    if rewritten:
        pytest.fail(f"regenerated {', '.join(rewritten)}: review the diff, then rerun without ARCHSCOPE_UPDATE_GOLDEN")


@pytest.mark.parametrize("name", list_models())
def test_summary_table_and_markdown(name, golden):
    t = trace(name, depth=2)
    golden(f"{name}.txt", as_text(render(t, "table", "summary")))
    golden(f"{name}.md", render(t, "markdown", "summary"))


@pytest.mark.parametrize("name, kwargs", [("alexnet", {}), ("vgg", {"ratio": 8}), ("googlenet", {}),
                                          ("alexnet", {"input_size": 32})])
def test_check_report(name, kwargs, golden):
    report = check(name, **kwargs)
    stem = f"check-{name}" + "".join(f"-{k}{v}" for k, v in kwargs.items())
    golden(f"{stem}.txt", as_text(render(report, "table")))
    golden(f"{stem}.md", render(report, "markdown"))


@pytest.mark.parametrize("name", ["lenet", "alexnet"])
def test_memory_report(name, golden):
    report = memory(name, batch=32, fit="16GiB")
    golden(f"memory-{name}.txt", as_text(render(report, "table")))
    golden(f"memory-{name}.md", render(report, "markdown"))


def test_compare_report(golden):
    rows = compare(["lenet", "alexnet", "vgg"], model_kwargs={"ratio": 8})
    golden("compare-lenet-alexnet-vgg.txt", as_text(render(rows, "table")))
    golden("compare-lenet-alexnet-vgg.md", render(rows, "markdown"))
