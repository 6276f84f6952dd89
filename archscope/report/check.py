"""``archscope check`` reports: a table, CSV, Markdown."""
from __future__ import annotations

import csv
import io
from typing import List, Tuple

from rich.console import Group
from rich.table import Table
from rich.text import Text

from archscope.analysis.check import CheckReport, LayerCheck
from archscope.inputs import shape_text
from archscope.report.render import renders
from archscope.report.text import ranges_text

TITLES = ("Layer", "Type", "Expects", "Arriving", "Arriving shape", "OK")


def _mark(ok) -> str:
    return "✓" if ok else ("not reached" if ok is None else "✗")


def scan_lines(report: CheckReport) -> List[str]:
    d = report.scan.to_dict()
    lo, hi = d["range"]
    lines = [f"sizes {lo}..{hi}: smallest side that runs: {d['smallest_running'] or 'none'}",
             f"sides that run: {ranges_text(d['running'])}"]
    for name, info in d["linears"].items():
        lines.append(f"{name} keeps in_features={info['in_features']} at sides: {ranges_text(info['valid_sides'])}")
    for kind, pairs in d["failures"].items():
        lines.append(f"fails ({kind}) at sides: {ranges_text(pairs)}")
    return lines


def _shown(report: CheckReport) -> List[LayerCheck]:
    # Every Linear is shown; a conv only when its in_channels check fails (a deep net has dozens).
    return [c for c in report.layers if c.field == "in_features" or c.ok is False]


def _rows(report: CheckReport) -> List[Tuple[str, ...]]:
    return [(c.name, c.type, f"{c.field}={c.expected}", "—" if c.arriving is None else str(c.arriving),
             shape_text(c.arriving_shape), _mark(c.ok)) for c in _shown(report)]


def _head(report: CheckReport) -> str:
    return f"{report.model} — check — input {shape_text(report.input_shape)} on {report.device}"


def _tail(report: CheckReport) -> List[str]:
    convs_ok = sum(1 for c in report.layers if c.field == "in_channels" and c.ok)
    tail = [f"{convs_ok} conv in_channels checks hold"] if convs_ok else []
    if report.diagnosis:
        d = report.diagnosis
        where = f" at {d.layer or '(model)'} ({d.layer_type})" if d.layer_type else ""
        tail += [f"FAILED{where}: {d.problem}", f"fix: {d.fix}"]
    if report.scan:
        tail += scan_lines(report)
    if report.note:
        tail.append(f"note: {report.note}")
    tail.append("all checks hold" if report.ok else "some checks fail")
    return tail


@renders(CheckReport, "csv")
def check_csv(report: CheckReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "type", "field", "expected", "arriving", "ok"])
    for c in report.layers:
        w.writerow([c.name, c.type, c.field, c.expected, "" if c.arriving is None else c.arriving, c.ok])
    return buf.getvalue()


@renders(CheckReport, "markdown")
def check_markdown(report: CheckReport) -> str:
    lines = [f"**{_head(report)}**", "", "| " + " | ".join(TITLES) + " |", "|---|---|---|---:|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    return "\n".join(lines + [""] + [f"- {t}" for t in _tail(report)]) + "\n"


@renders(CheckReport, "table")
def check_table(report: CheckReport):
    tbl = Table(header_style="bold")
    for i, t in enumerate(TITLES):
        tbl.add_column(t, justify="right" if i == 3 else "left", no_wrap=True)
    for r, c in zip(_rows(report), _shown(report)):
        tbl.add_row(*r, style="red" if c.ok is False else ("dim" if c.ok is None else None))
    styled = [Text(t, style="red" if t.startswith(("FAILED", "fix", "some")) else "green" if t.startswith("all") else "")
              for t in _tail(report)]
    return Group(Text(_head(report), style="bold"), tbl, *styled)
