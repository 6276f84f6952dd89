"""Render results: rich tables for people, JSON / CSV / Markdown for machines and docs.

Importing this package registers every renderer and plugs ``render(..., "table")`` into the
analysis layer's ``Result`` (see ``render.py``)."""
from archscope.report import check, compare, diagram, listing, memory, sweep, tables, timing, training  # noqa: F401 - they register
from archscope.report.render import FORMATS, check_format, render

__all__ = ["FORMATS", "check_format", "render"]
