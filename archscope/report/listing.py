"""``archscope list``: one row per model, with the library's published figures when it has them."""
from __future__ import annotations

from rich.table import Table

from archscope.analysis.listing import ListedModel, Listing
from archscope.inputs import shape_text
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
        cells += [f"{r.published_params:,}" if r.published_params is not None else "—",
                  f"{r.macs_g:.3f}" if r.flops is not None else "—",
                  f"{r.published_gmacs:.3f}" if r.published_gmacs is not None else "—"]
    return tuple(cells + [r.description])


def _titles(published: bool):
    return ("Model", "Default input", "Params", "FLOPs") + \
        (("Published params", "GMACs", "Published GMACs") if published else ()) + ("Description",)


def _numeric(published: bool):
    return {2, 3, 4, 5, 6} if published else {2, 3}


@renders(Listing, "csv")
def listing_csv(rows: Listing) -> str:
    return csv_of(rows, lambda r: {**r.to_dict(), "input_shape": _shape(r.input_shape).replace("×", "x")})


@renders(Listing, "markdown")
def listing_markdown(rows: Listing) -> str:
    published = _published(rows)
    titles, numeric = _titles(published), _numeric(published)
    lines = ["| " + " | ".join(titles) + " |",
             "|" + "|".join("---:" if i in numeric else "---" for i in range(len(titles))) + "|"]
    lines += ["| " + " | ".join(_cells(r, published)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


@renders(Listing, "table")
def listing_table(rows: Listing):
    published = _published(rows)
    titles, numeric = _titles(published), _numeric(published)
    tbl = Table(title=TITLES.get(rows.source, "archscope zoo"), header_style="bold")
    for i, t in enumerate(titles):
        tbl.add_column(t, justify="right" if i in numeric else "left")
    for r in rows:
        tbl.add_row(*_cells(r, published))
    return tbl
