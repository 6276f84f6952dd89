"""Machine and document formats: JSON (one object), CSV (one line per row), Markdown."""
from __future__ import annotations

import csv
import io
import json

from archscope.report.columns import caption, columns, header, shape_text, totals_lines, uncounted_line
from archscope.trace.records import Trace

CSV_FIELDS = ["name", "type", "depth", "output_shape", "params", "trainable_params", "flops", "macs", "calls", "kind"]
TRAIN_FIELD = "train_flops"


def to_json(t: Trace) -> str:
    return json.dumps(t.to_dict(), indent=2)


def to_csv(t: Trace) -> str:
    buf = io.StringIO()
    fields = CSV_FIELDS + ([TRAIN_FIELD] if t.totals.train_flops is not None else [])
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in t.rows:
        d = row.to_dict()
        d["output_shape"] = shape_text(row.output_shape) if row.output_shape is not None else ""
        writer.writerow({k: d[k] for k in fields})
    return buf.getvalue()


def to_markdown(t: Trace, view: str = "summary") -> str:
    cols = columns(view, t)
    lines = [f"**{header(t, view)}**", "", f"_{caption(t)}_", ""]
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


FORMATS = ("table", "json", "csv", "markdown")


def render(t: Trace, fmt: str = "table", view: str = "summary"):
    """A string for json/csv/markdown, a rich renderable for table."""
    if fmt == "json":
        return to_json(t)
    if fmt == "csv":
        return to_csv(t)
    if fmt == "markdown":
        return to_markdown(t, view)
    from archscope.report.tables import summary_table
    return summary_table(t, view)
