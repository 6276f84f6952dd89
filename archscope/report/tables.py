"""A trace as a rich table (terminal and Jupyter), CSV, Markdown: one set of columns for all."""
from __future__ import annotations

import csv
import io

from rich.console import Group
from rich.panel import Panel
from rich.text import Text

from archscope.analysis.records import LayerRow, Trace
from archscope.inputs import shape_text
from archscope.report.columns import caption, columns, header, totals_lines, uncounted_line
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import calls_shape_text

CSV_FIELDS = ["name", "type", "depth", "output_shape", "params", "trainable_params", "flops", "macs", "calls", "kind"]
TRAIN_FIELD = "train_flops"


def total_row(t: Trace) -> LayerRow:
    tot = t.totals
    return LayerRow("total", "", 0, t.output_shape, t.input_shape, tot.params, tot.trainable_params,
                    tot.flops, 1, kind="total", train_flops=tot.train_flops)


def table(t: Trace, view: str = "summary") -> FitTable:
    cols = columns(view, t)
    rows = [[col.cell(row, t) for col in cols] for row in t.rows]
    styles = ["dim" if row.kind not in ("module", "container") or (row.kind == "module" and row.calls == 0) else None
              for row in t.rows]
    if view != "shapes":
        total = total_row(t)
        rows.append([col.cell(total, t) for col in cols])
        styles.append("bold")
    fit = [FitColumn(c.title, c.numeric, c.drop, c.wrap) for c in cols]
    return FitTable(fit, rows, styles, last_is_total=view != "shapes")


@renders(Trace, "table")
def summary_table(t: Trace, view: str = "summary"):
    # Header and convention are lines of their own: a table caption would wrap to the table's width.
    parts = [Text(header(t, view), style="bold")]
    if caption(t, view):
        parts.append(Text(caption(t, view), style="dim"))
    parts.append(table(t, view))
    if view == "summary":
        parts.append(Panel("\n".join(totals_lines(t)), title="totals", expand=False))
    if t.uncounted_ops:
        parts.append(Text(uncounted_line(t), style="yellow"))
    if t.note:
        parts.append(Text.assemble(("note: ", "yellow"), t.note))
    return Group(*parts)


@renders(Trace, "csv")
def to_csv(t: Trace, view: str = "summary") -> str:
    buf = io.StringIO()
    fields = CSV_FIELDS + ([TRAIN_FIELD] if t.totals.train_flops is not None else [])
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in t.rows:
        d = row.to_dict()
        d["output_shape"] = "" if row.output_shape is None else shape_text(row.output_shape) if not row.call_shapes \
            else calls_shape_text(row.output_shape, row.calls, row.call_shapes, shape_text)  # every call's shape
        writer.writerow({k: d[k] for k in fields})
    return buf.getvalue()


@renders(Trace, "markdown")
def to_markdown(t: Trace, view: str = "summary") -> str:
    cols = columns(view, t)
    lines = [f"**{header(t, view)}**", ""] + ([f"_{caption(t, view)}_", ""] if caption(t, view) else [])
    lines.append("| " + " | ".join(c.title for c in cols) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|")
    for row in t.rows:
        cells = [c.cell(row, t).strip().replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"- {line}" for line in totals_lines(t))]
    if t.uncounted_ops:
        lines.append(f"- {uncounted_line(t)}")
    if t.note:
        lines.append(f"- note: {t.note}")
    return "\n".join(lines) + "\n"
