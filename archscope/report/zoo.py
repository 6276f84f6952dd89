"""The zoo listing (``archscope list``): one row per registered model, traced on meta."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from typing import List, Optional

from archscope.report.columns import human


@dataclass
class ZooRow:
    name: str
    input_shape: object  # a shape, or several
    params: Optional[int]  # None: the model could not be traced (description says why)
    flops: Optional[int]
    description: str
    published_params: Optional[int] = None  # torchvision's weights.meta["num_params"]
    published_gmacs: Optional[float] = None  # torchvision's weights.meta["_ops"]

    @property
    def macs_g(self) -> Optional[float]:
        return None if self.flops is None else self.flops / 2e9

    def to_dict(self):
        d = asdict(self)
        if self.published_params is None and self.published_gmacs is None:
            del d["published_params"], d["published_gmacs"]
        return d


def zoo_rows(pattern: str = "*") -> List[ZooRow]:
    """Rows for the zoo, or for ``tv:PATTERN`` / ``timm:PATTERN`` (every model traced on meta)."""
    from archscope.errors import UsageError
    from archscope.zoo import get_entry, list_models

    source, sep, rest = pattern.partition(":")
    if sep and source in ("tv", "timm"):
        return _external_rows(source, rest or "*")
    names = list_models(pattern)
    if not names:
        raise UsageError(f"no model matches '{pattern}': known models: {', '.join(list_models())}")
    return [_row(name, get_entry(name).description) for name in names]


def _row(spec: str, description: str) -> ZooRow:
    from archscope.errors import ArchscopeError, first_line
    from archscope.trace import trace

    try:
        t = trace(spec)
    except ArchscopeError as error:
        return ZooRow(spec, None, None, None, f"cannot be traced: {first_line(error)}")
    return ZooRow(spec, t.input_shape, t.totals.params, t.totals.flops, description)


def _external_rows(source: str, pattern: str) -> List[ZooRow]:
    from archscope.errors import UsageError
    from archscope.zoo import external

    names = external.names(source, pattern)
    if not names:
        raise UsageError(f"no {source} model matches '{pattern}' (try '{source}:*')")
    rows = []
    for name in names:
        if source == "tv":
            row = _row(f"tv:{name}", f"torchvision {external.tv_task(name)}")
            weights = external.tv_weights(name)
            if weights is not None:
                row.published_params = weights.meta.get("num_params")
                row.published_gmacs = weights.meta.get("_ops")
        else:
            row = _row(f"timm:{name}", "timm")
        rows.append(row)
    return rows


def _shape(shape) -> str:
    from archscope.trace.records import shape_text
    return shape_text(shape).replace(", ", " + ")


def _cells(r: ZooRow, published: bool):
    cells = [r.name, _shape(r.input_shape), f"{r.params:,}" if r.params is not None else "—",
             human(r.flops) if r.flops is not None else "—"]
    if published:
        cells += [f"{r.published_params:,}" if r.published_params is not None else "—",
                  f"{r.macs_g:.3f}" if r.flops is not None else "—",
                  f"{r.published_gmacs:.3f}" if r.published_gmacs is not None else "—"]
    return tuple(cells + [r.description])


def render_zoo(rows: List[ZooRow], fmt: str):
    published = any(r.published_params is not None for r in rows)
    if fmt == "json":
        return json.dumps([r.to_dict() for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0].to_dict()), lineterminator="\n")
        w.writeheader()
        for r in rows:
            d = r.to_dict()
            d["input_shape"] = _shape(r.input_shape).replace("×", "x")
            w.writerow(d)
        return buf.getvalue()
    cells = [_cells(r, published) for r in rows]
    titles = ("Model", "Default input", "Params", "FLOPs") + \
        (("Published params", "GMACs", "Published GMACs") if published else ()) + ("Description",)
    numeric = {2, 3, 4, 5, 6} if published else {2, 3}
    if fmt == "markdown":
        lines = ["| " + " | ".join(titles) + " |",
                 "|" + "|".join("---:" if i in numeric else "---" for i in range(len(titles))) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines) + "\n"
    from rich.table import Table

    tbl = Table(title="archscope zoo", header_style="bold")
    for i, t in enumerate(titles):
        tbl.add_column(t, justify="right" if i in numeric else "left")
    for c in cells:
        tbl.add_row(*c)
    return tbl
