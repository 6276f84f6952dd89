"""Rendering of ``archscope compare``: one row per model."""
from __future__ import annotations

from rich.console import Group
from rich.text import Text

from archscope.analysis.compare import Comparison, Comparisons
from archscope.inputs import shape_text
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import csv_of, human, human_bytes

COLUMNS = (FitColumn("Model", wrap=True), FitColumn("Input"), FitColumn("Params", True), FitColumn("FLOPs", True),
           FitColumn("Train-step FLOPs", True, 3), FitColumn("Train memory", True, 2),
           FitColumn("Smallest side", True, 4), FitColumn("First FC in", True, 5), FitColumn("Output RF", True, 6))
TITLES = tuple(c.title for c in COLUMNS)


def _cells(c: Comparison):
    dash = "—"
    rf = dash if not c.output_rf else (str(c.output_rf[0]) if len(set(c.output_rf)) == 1 else "×".join(map(str, c.output_rf)))
    rf += " (whole)" if c.output_rf and c.output_rf_whole else ""
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
    tbl = FitTable(COLUMNS, [_cells(r) for r in rows], title="archscope compare")
    return Group(tbl, Text(_caption(rows), style="dim"), *(Text(f"note: {n}", style="yellow") for n in _notes(rows)))
