"""Rendering of ``archscope compare``: one row per model."""
from __future__ import annotations

import csv
import io
import json
from typing import List

from archscope.report.columns import human
from archscope.trace.compare import Comparison
from archscope.trace.memory import human_bytes
from archscope.trace.records import shape_text

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


def render_compare(rows: List[Comparison], fmt: str):
    batch = rows[0].batch
    if fmt == "json":
        return json.dumps([r.to_dict() for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].to_dict()), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            d = r.to_dict()
            d["input_shape"] = shape_text(r.input_shape).replace("×", "x")
            d["output_rf"] = "x".join(map(str, r.output_rf)) if r.output_rf else ""
            writer.writerow(d)
        return buf.getvalue()
    cells = [_cells(r) for r in rows]
    notes = [f"{r.model}: {r.note}" for r in rows if r.note]
    caption = f"train-step FLOPs and memory at batch {batch} (Adam); FLOPs per forward pass at batch {batch}"
    if fmt == "markdown":
        lines = ["| " + " | ".join(TITLES) + " |", "|---|---|" + "---:|" * (len(TITLES) - 2)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        lines += ["", f"_{caption}_"] + [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    tbl = Table(title="archscope compare", header_style="bold", caption=caption)
    for i, title in enumerate(TITLES):
        tbl.add_column(title, justify="left" if i < 2 else "right")
    for c in cells:
        tbl.add_row(*c)
    return Group(tbl, *(Text(f"note: {n}", style="yellow") for n in notes))
