"""Rendering of ``archscope memory``: a table of what a training step and inference hold."""
from __future__ import annotations

import csv
import io

from rich.console import Group
from rich.table import Table
from rich.text import Text

from archscope.analysis.memory import MemoryReport
from archscope.inputs import shape_text
from archscope.report.render import renders
from archscope.report.text import human_bytes


def _title(r: MemoryReport) -> str:
    return f"{r.model} — memory — input {shape_text(r.input_shape)} (batch {r.batch}), optimizer {r.optimizer}"


def _fit_line(r: MemoryReport) -> str:
    if r.fit_budget is None:
        return ""
    if r.fit_batch == 0:
        return f"a training step does not fit in {human_bytes(r.fit_budget)} even at batch 1"
    return f"largest batch whose training step fits in {human_bytes(r.fit_budget)}: {r.fit_batch}"


@renders(MemoryReport, "table")
def memory_view(r: MemoryReport):
    tbl = Table(header_style="bold")
    tbl.add_column("Memory")
    tbl.add_column("Bytes", justify="right")
    tbl.add_column("", justify="right")
    for label, value in r.lines():
        bold = "total" in label
        tbl.add_row(label, f"{value:,}", human_bytes(value), style="bold" if bold else None)
    parts = [Text(_title(r), style="bold"), tbl]
    if r.fit_budget is not None:
        parts.append(Text(_fit_line(r)))
    if r.note:
        parts.append(Text.assemble(("note: ", "yellow"), r.note))
    return Group(*parts)


@renders(MemoryReport, "csv")
def memory_csv(r: MemoryReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["item", "bytes"])
    writer.writerows(r.lines())
    return buf.getvalue()


@renders(MemoryReport, "markdown")
def memory_markdown(r: MemoryReport) -> str:
    lines = [f"**{_title(r)}**", "", "| Memory | Bytes | |", "|---|---:|---:|"]
    lines += [f"| {label} | {value:,} | {human_bytes(value)} |" for label, value in r.lines()]
    if r.fit_budget is not None:
        lines += ["", _fit_line(r)]
    return "\n".join(lines) + "\n"
