"""``archscope list``: one row per model, with the library's published figures when it has them."""
from __future__ import annotations

from rich.console import Group
from rich.text import Text

from archscope.analysis.listing import ListedModel, Listing
from archscope.inputs import shape_text
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import csv_of, human

TITLES = {"zoo": "archscope zoo", "tv": "torchvision models", "timm": "timm models"}


def _shape(shape) -> str:
    return shape_text(shape).replace(", ", " + ")


def _published(rows: Listing) -> bool:
    return any(r.published_params is not None for r in rows)


def _cells(r: ListedModel, published: bool):
    cells = [r.name, _shape(r.input_shape), f"{r.params:,}" if r.params is not None else "—",
             human(r.flops) if r.flops is not None else "—"]
    if published:
        mark = " *" if r.published_note else ""
        cells += [f"{r.published_params:,}{mark}" if r.published_params is not None else "—",
                  f"{r.macs_g:.3f}" if r.flops is not None else "—",
                  f"{r.published_gmacs:.3f}" if r.published_gmacs is not None else "—"]
    return tuple(cells + [r.description])


def _columns(published: bool):
    """With a library's published figures beside ours, our FLOPs (also shown as GMACs) and the
    description (the library's task) are what a narrow terminal can do without."""
    return ([FitColumn("Model", wrap=True), FitColumn("Input"), FitColumn("Params", True),
             FitColumn("FLOPs", True, 8 if published else 0)]
            + ([FitColumn("Params (tv)", True, 3), FitColumn("GMACs", True, 2), FitColumn("GMACs (tv)", True, 4)]
               if published else [])
            + [FitColumn("Description", drop=9 if published else 1, wrap=True)])


@renders(Listing, "csv")
def listing_csv(rows: Listing) -> str:
    return csv_of(rows, lambda r: {**r.to_dict(), "input_shape": _shape(r.input_shape).replace("×", "x")})


@renders(Listing, "markdown")
def listing_markdown(rows: Listing) -> str:
    published = _published(rows)
    cols = _columns(published)
    lines = ["| " + " | ".join(c.title for c in cols) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|"]
    lines += ["| " + " | ".join(_cells(r, published)) + " |" for r in rows]
    notes = [f"* {r.name}: {r.published_note}" for r in rows if r.published_note]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


@renders(Listing, "table")
def listing_table(rows: Listing):
    published = _published(rows)
    table = FitTable(_columns(published), [_cells(r, published) for r in rows],
                     title=TITLES.get(rows.source, "archscope zoo"))
    return Group(table, *(Text(f"* {r.name}: {r.published_note}", style="dim") for r in rows if r.published_note))
