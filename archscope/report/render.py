"""The one output-format switch: ``render(result, fmt)`` for every result of every command.

Each renderer module registers, per result type, the functions that turn it into a rich
renderable (``table``), CSV or Markdown text; JSON is the same for all (``to_json()``).
Importing ``archscope.report`` also plugs ``render(..., "table")`` into ``Result``, so every
result shows its table in a terminal and in Jupyter without importing this layer itself.
"""
from __future__ import annotations

import io
import shutil
from typing import Any, Callable, Dict, Optional

from rich.console import Console

from archscope.analysis.records import Result
from archscope.errors import UsageError

FORMATS = ("table", "json", "csv", "markdown")

_RENDERERS: Dict[type, Dict[str, Callable[..., Any]]] = {}


def renders(kind: type, *formats: str):
    """Register the decorated function as ``kind``'s renderer for ``formats``."""

    def register(function):
        for fmt in formats:
            _RENDERERS.setdefault(kind, {})[fmt] = function
        return function

    return register


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format '{fmt}': use one of {', '.join(FORMATS)}")
    return fmt


def render(result: Result, fmt: str = "table", view: Optional[str] = None):
    """A string for json/csv/markdown, a rich renderable for table. ``view`` picks a trace's
    columns: shapes | params | flops | summary (the default)."""
    check_format(fmt)
    if fmt == "json":
        return result.to_json()
    for kind in type(result).__mro__:
        function = _RENDERERS.get(kind, {}).get(fmt)
        if function is not None:
            return function(result) if view is None else function(result, view=view)
    raise UsageError(f"a {type(result).__name__} has no {fmt} form: use one of "
                     f"{', '.join(['json', *_RENDERERS.get(type(result), {})])}")


def html_of(renderable, width: int = 140) -> str:
    """Any rich renderable as an HTML <pre> block with inline styles (what Jupyter shows)."""
    console = Console(record=True, width=width, file=io.StringIO(), force_jupyter=False)
    console.print(renderable)
    return console.export_html(inline_styles=True, code_format="<pre style=\"font-family:monospace\">{code}</pre>")


def text_of(renderable) -> str:
    """Any rich renderable as plain text at the terminal's width (``str()`` of a result)."""
    console = Console(file=io.StringIO(), width=shutil.get_terminal_size((100, 24)).columns, color_system=None,
                      force_terminal=False, force_jupyter=False)
    console.print(renderable)
    return console.file.getvalue().rstrip("\n")


Result.show = staticmethod(lambda result: render(result, "table"))
Result.html = staticmethod(html_of)
Result.text = staticmethod(text_of)
