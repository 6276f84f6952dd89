"""Render traces: rich tables for people, JSON / CSV / Markdown for machines and docs."""
from archscope.report.formats import FORMATS, render

__all__ = ["FORMATS", "render"]
