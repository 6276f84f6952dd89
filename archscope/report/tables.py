"""rich tables (terminal and Jupyter)."""
from __future__ import annotations

import io

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from rich.text import Text

from archscope.report.columns import caption, columns, header, totals_lines, uncounted_line
from archscope.trace.records import LayerRow, Trace


def total_row(t: Trace) -> LayerRow:
    tot = t.totals
    return LayerRow("total", "", 0, t.output_shape, t.input_shape, tot.params, tot.trainable_params,
                    tot.flops, 1, kind="total", train_flops=tot.train_flops)


def table(t: Trace, view: str = "summary") -> Table:
    tbl = Table(header_style="bold")
    cols = columns(view, t)
    for col in cols:
        tbl.add_column(col.title, justify="right" if col.numeric else "left", no_wrap=True)
    for row in t.rows:
        style = "dim" if row.kind not in ("module", "container") or (row.kind == "module" and row.calls == 0) else None
        tbl.add_row(*(col.cell(row, t) for col in cols), style=style)
    if view != "shapes":
        total = total_row(t)
        tbl.add_row(*(col.cell(total, t) for col in cols), style="bold", end_section=True)
    return tbl


def summary_table(t: Trace, view: str = "summary"):
    # Header and convention are lines of their own: a table caption would wrap to the table's width.
    parts = [Text(header(t, view), style="bold"), Text(caption(t), style="dim"), table(t, view)]
    if view == "summary":
        parts.append(Panel("\n".join(totals_lines(t)), title="totals", expand=False))
    if t.uncounted_ops:
        parts.append(Text(uncounted_line(t), style="yellow"))
    if t.note:
        parts.append(Text.assemble(("note: ", "yellow"), t.note))
    return Group(*parts)


def html_of(renderable, width: int = 140) -> str:
    """Any rich renderable as an HTML <pre> block with inline styles (what Jupyter shows)."""
    console = Console(record=True, width=width, file=io.StringIO(), force_jupyter=False)
    console.print(renderable)
    return console.export_html(inline_styles=True, code_format="<pre style=\"font-family:monospace\">{code}</pre>")


def to_html(t: Trace, view: str = "summary") -> str:
    return html_of(summary_table(t, view))

