"""The zoo listing (``archscope list``): one row per registered model, traced on meta."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from typing import List

from archscope.report.columns import human


@dataclass
class ZooRow:
    name: str
    input_shape: List[int]
    params: int
    flops: int
    description: str

    def to_dict(self):
        return asdict(self)


def zoo_rows(pattern: str = "*") -> List[ZooRow]:
    from archscope.errors import UsageError
    from archscope.trace import trace
    from archscope.zoo import get_entry, list_models

    names = list_models(pattern)
    if not names:
        raise UsageError(f"no model matches '{pattern}': known models: {', '.join(list_models())}")
    rows = []
    for name in names:
        t = trace(name)
        rows.append(ZooRow(name, t.input_shape, t.totals.params, t.totals.flops, get_entry(name).description))
    return rows


def render_zoo(rows: List[ZooRow], fmt: str):
    if fmt == "json":
        return json.dumps([r.to_dict() for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0].to_dict()), lineterminator="\n")
        w.writeheader()
        for r in rows:
            d = r.to_dict()
            d["input_shape"] = "x".join(map(str, r.input_shape))
            w.writerow(d)
        return buf.getvalue()
    cells = [(r.name, "×".join(map(str, r.input_shape)), f"{r.params:,}", human(r.flops), r.description) for r in rows]
    titles = ("Model", "Default input", "Params", "FLOPs", "Description")
    if fmt == "markdown":
        lines = ["| " + " | ".join(titles) + " |", "|---|---|---:|---:|---|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines) + "\n"
    from rich.table import Table

    tbl = Table(title="archscope zoo", header_style="bold")
    for i, t in enumerate(titles):
        tbl.add_column(t, justify="right" if i in (2, 3) else "left")
    for c in cells:
        tbl.add_row(*c)
    return tbl
