"""Rendering of ``archscope compare``: one row per model."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from archscope.analysis.compare import Comparison, Comparisons
from archscope.inputs import shape_text
from archscope.report.render import renders
from archscope.report.text import csv_of, human, human_bytes

TITLES = ("Model", "Input", "Params", "FLOPs", "Train-step FLOPs", "Train memory", "Smallest side",
          "First FC in", "Output RF")


def _cells(c: Comparison):
    dash = "—"
    rf = dash if not c.output_rf else (str(c.output_rf[0]) if len(set(c.output_rf)) == 1 else "×".join(map(str, c.output_rf)))
    return (c.model, shape_text(c.input_shape), f"{c.params:,}", human(c.flops),
            human(c.train_flops) if c.train_flops is not None else dash,
            human_bytes(c.memory_bytes) if c.memory_bytes is not None else dash,
            str(c.smallest_side) if c.smallest_side is not None else dash,
            f"{c.first_fc_width:,}" if c.first_fc_width is not None else dash, rf)


def _caption(rows: Comparisons) -> str:
    batch = rows[0].batch
    return f"train-step FLOPs and memory at batch {batch} (Adam); FLOPs per forward pass at batch {batch}"


def _notes(rows: Comparisons):
    return [f"{r.model}: {r.note}" for r in rows if r.note]


@renders(Comparisons, "csv")
def compare_csv(rows: Comparisons) -> str:
    return csv_of(rows, lambda r: {**r.to_dict(), "input_shape": shape_text(r.input_shape).replace("×", "x"),
                                   "output_rf": "x".join(map(str, r.output_rf)) if r.output_rf else ""})


@renders(Comparisons, "markdown")
def compare_markdown(rows: Comparisons) -> str:
    lines = ["| " + " | ".join(TITLES) + " |", "|---|---|" + "---:|" * (len(TITLES) - 2)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    lines += ["", f"_{_caption(rows)}_"] + [f"- {n}" for n in _notes(rows)]
    return "\n".join(lines) + "\n"


@renders(Comparisons, "table")
def compare_table(rows: Comparisons):
    tbl = Table(title="archscope compare", header_style="bold", caption=_caption(rows))
    for i, title in enumerate(TITLES):
        tbl.add_column(title, justify="left" if i < 2 else "right")
    for r in rows:
        tbl.add_row(*_cells(r))
    return Group(tbl, *(Text(f"note: {n}", style="yellow") for n in _notes(rows)))
