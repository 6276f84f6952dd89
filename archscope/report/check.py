"""Rendering of ``archscope check`` reports."""
from __future__ import annotations

import csv
import io
import json
from typing import List

from archscope.report.columns import shape_text
from archscope.trace.check import CheckReport


def _mark(ok) -> str:
    return "✓" if ok else ("not reached" if ok is None else "✗")


def _ranges(pairs: List[List[int]]) -> str:
    if not pairs:
        return "none"
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in pairs)


def scan_lines(report: CheckReport) -> List[str]:
    d = report.scan.to_dict()
    lo, hi = d["range"]
    lines = [f"sizes {lo}..{hi}: smallest side that runs: {d['smallest_running'] or 'none'}",
             f"sides that run: {_ranges(d['running'])}"]
    for name, info in d["linears"].items():
        lines.append(f"{name} keeps in_features={info['in_features']} at sides: {_ranges(info['valid_sides'])}")
    for kind, pairs in d["failures"].items():
        lines.append(f"fails ({kind}) at sides: {_ranges(pairs)}")
    return lines


def _csv(report: CheckReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "type", "field", "expected", "arriving", "ok"])
    for c in report.layers:
        w.writerow([c.name, c.type, c.field, c.expected, "" if c.arriving is None else c.arriving, c.ok])
    return buf.getvalue()


def render_check(report: CheckReport, fmt: str = "table"):
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    # Every Linear is shown; a conv only when its in_channels check fails (a deep net has dozens).
    shown = [c for c in report.layers if c.field == "in_features" or c.ok is False]
    convs_ok = sum(1 for c in report.layers if c.field == "in_channels" and c.ok)
    rows = [(c.name, c.type, f"{c.field}={c.expected}", "—" if c.arriving is None else str(c.arriving),
             shape_text(c.arriving_shape), _mark(c.ok)) for c in shown]
    titles = ("Layer", "Type", "Expects", "Arriving", "Arriving shape", "OK")
    head = f"{report.model} — check — input {shape_text(report.input_shape)} on {report.device}"
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
    if fmt == "csv":
        return _csv(report)
    if fmt == "markdown":
        lines = [f"**{head}**", "", "| " + " | ".join(titles) + " |", "|---|---|---|---:|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + [""] + [f"- {t}" for t in tail]) + "\n"
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    tbl = Table(header_style="bold")
    for i, t in enumerate(titles):
        tbl.add_column(t, justify="right" if i == 3 else "left", no_wrap=True)
    for r, c in zip(rows, shown):
        tbl.add_row(*r, style="red" if c.ok is False else ("dim" if c.ok is None else None))
    styled = [Text(t, style="red" if t.startswith(("FAILED", "fix", "some")) else "green" if t.startswith("all") else "")
              for t in tail]
    return Group(Text(head, style="bold"), tbl, *styled)
