"""Rendering of ``archscope weights``: the tensors of a weights file by module prefix, and how they fit the model."""
from __future__ import annotations

from typing import List

from rich.console import Group
from rich.text import Text

from archscope.analysis.weights import WeightsReport
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import csv_of, human, human_bytes

COLUMNS = (FitColumn("Prefix", wrap=True), FitColumn("Tensors", True), FitColumn("Params", True),
           FitColumn("Bytes", True), FitColumn("Share", True))
LISTED = 8  # names shown per kind of mismatch; the JSON has them all


def _cells(r: WeightsReport):
    return [[g.prefix, str(g.tensors), f"{g.params:,}", human_bytes(g.bytes), f"{100 * g.share:.1f}%"] for g in r.groups]


def _lines(r: WeightsReport) -> List[str]:
    dtypes = sorted({t.dtype for t in r.tensors})
    lines = [f"grouped by the first {r.depth} parts of each name (--depth); {len(r.tensors)} tensors, {r.params:,} parameters ({human(r.params)}), {human_bytes(r.bytes)}, "
             f"{', '.join(dtypes)}; counted once each, as transformers' num_parameters() counts a model's"]
    for names in r.duplicates:
        lines.append(f"stored once under {len(names)} names (tied): {', '.join(names)}")
    m = r.match
    if m is not None:
        for name, stored in m.tied:
            lines.append(f"{name} is not in the file: {m.model} ties it to {stored}, which is")
        if m.ok:
            lines.append(f"matches {m.model} (its config.json): every name and shape load_state_dict expects")
        else:
            lines.append(f"does not match {m.model} (its config.json): load_state_dict(strict=True) would refuse it")
            for label, names in (("missing", m.missing), ("unexpected", m.unexpected)):
                if names:
                    more = f" … and {len(names) - LISTED} more" if len(names) > LISTED else ""
                    lines.append(f"  {label} ({len(names)}): {', '.join(names[:LISTED])}{more}")
            for x in m.mismatched[:LISTED]:
                lines.append(f"  shape mismatch: {x['name']}: {'×'.join(map(str, x['file']))} in the file, "
                             f"{'×'.join(map(str, x['model']))} in the model")
    return lines


@renders(WeightsReport, "table")
def weights_table(r: WeightsReport):
    tbl = FitTable(COLUMNS, _cells(r), title=f"{r.path} — {r.kind}")
    return Group(tbl, *(Text(line, style="bold red" if line.startswith(("does not", "  ")) else "")
                        for line in _lines(r)))


@renders(WeightsReport, "csv")
def weights_csv(r: WeightsReport) -> str:
    return csv_of(r.tensors, lambda t: {"name": t.name, "shape": "x".join(map(str, t.shape)), "dtype": t.dtype,
                                        "bytes": t.bytes, "file": t.file})


@renders(WeightsReport, "markdown")
def weights_markdown(r: WeightsReport) -> str:
    out = ["| " + " | ".join(c.title for c in COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    out += ["| " + " | ".join(cells) + " |" for cells in _cells(r)]
    return "\n".join(out + [""] + [f"- {line.strip()}" for line in _lines(r)]) + "\n"
