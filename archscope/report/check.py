"""``archscope check`` reports: a table, CSV, Markdown."""
from __future__ import annotations

import csv
import io
from typing import List, Tuple

from rich.console import Group
from rich.text import Text

from archscope.analysis.check import CheckReport, LayerCheck
from archscope.inputs import layer_name, shape_text
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import ranges_text

COLUMNS = (FitColumn("Layer", wrap=True), FitColumn("Type", drop=3, wrap=True), FitColumn("Expects"),
           FitColumn("Arriving", True), FitColumn("Arriving shape", drop=2), FitColumn("OK"))
TITLES = tuple(c.title for c in COLUMNS)


def _mark(ok) -> str:
    return "✓" if ok else ("not reached" if ok is None else "✗")


def scan_lines(report: CheckReport) -> List[str]:
    d = report.scan.to_dict()
    lo, hi = d["range"]
    lines = [f"sizes {lo}..{hi}: smallest side that runs: {d['smallest_running'] or 'none'}",
             f"sides that run: {ranges_text(d['running'])}"]
    for name, info in d["linears"].items():
        lines.append(f"{layer_name(name)} keeps in_features={info['in_features']} at sides: {ranges_text(info['valid_sides'])}")
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


def _no_linear(report: CheckReport) -> bool:
    return not any(c.field == "in_features" for c in report.layers)


def _tail(report: CheckReport) -> List[str]:
    convs_ok = sum(1 for c in report.layers if c.field == "in_channels" and c.ok)
    tail = [f"{report.model} has no Linear layers to check"] if _no_linear(report) else []
    tail += [f"{convs_ok} conv in_channels checks hold"] if convs_ok else []
    if report.diagnosis:
        d = report.diagnosis
        where = f" at {layer_name(d.layer) or '(model)'} ({d.layer_type})" if d.layer_type else ""
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
    lines = [f"**{_head(report)}**", ""]
    if _rows(report):
        lines += ["| " + " | ".join(TITLES) + " |", "|---|---|---|---:|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    return "\n".join(lines + [""] + [f"- {t}" for t in _tail(report)]) + "\n"


@renders(CheckReport, "table")
def check_table(report: CheckReport):
    shown = _shown(report)
    styles = ["red" if c.ok is False else ("dim" if c.ok is None else None) for c in shown]
    tbl = FitTable(COLUMNS, _rows(report), styles)
    styled = [Text(t, style="red" if t.startswith(("FAILED", "fix", "some")) else "green" if t.startswith("all") else "")
              for t in _tail(report)]
    return Group(Text(_head(report), style="bold"), *([tbl] if shown else []), *styled)
