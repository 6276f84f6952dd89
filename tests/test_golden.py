"""Golden files: the rendered summary table and Markdown of every zoo model. A change in how
they look (or in any number) is a visible diff. After an intended change, regenerate with

    ARCHSCOPE_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""
import io
import os

import pytest
from rich.console import Console

from archscope import trace
from archscope.report import render
from archscope.models import list_models

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
UPDATE = os.environ.get("ARCHSCOPE_UPDATE_GOLDEN") == "1"


def table_text(t) -> str:
    console = Console(width=150, file=io.StringIO(), color_system=None, force_terminal=False, force_jupyter=False)
    console.print(render(t, "table", "summary"))
    return console.file.getvalue()


def check_golden(filename: str, text: str):
    path = os.path.join(GOLDEN, filename)
    if UPDATE:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    with open(path, encoding="utf-8") as f:
        expected = f.read()
    assert text == expected, f"{filename} changed; if intended, regenerate with ARCHSCOPE_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", list_models())
def test_summary_table_and_markdown(name):
    t = trace(name, depth=2)
    check_golden(f"{name}.txt", table_text(t))
    check_golden(f"{name}.md", render(t, "markdown", "summary"))
