"""Tables that fit the terminal: a number is never cut.

A ``FitTable`` knows each column's value to the reader (``drop``: 0 never goes, higher goes
first) and decides at render time, from the console's width, which columns it shows: the
lowest-value columns are left out until the rest fit, and names and descriptions wrap instead
of being cut. Numbers and shapes are never wrapped or shortened.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

WRAP_MIN = 12  # the narrowest a wrapping column gets


@dataclass(frozen=True)
class FitColumn:
    title: str
    numeric: bool = False
    drop: int = 0  # 0: always shown; otherwise the higher, the sooner it is left out
    wrap: bool = False  # names, types, descriptions: may wrap onto several lines


class FitTable:
    def __init__(self, columns: Sequence[FitColumn], rows: Sequence[Sequence[str]],
                 styles: Optional[Sequence[Optional[str]]] = None, last_is_total: bool = False, **table_options):
        self.columns, self.rows = list(columns), [list(r) for r in rows]
        self.styles = list(styles) if styles is not None else [None] * len(self.rows)
        self.last_is_total, self.table_options = last_is_total, table_options

    def _width(self, i: int) -> int:
        cells = [self.columns[i].title] + [r[i] for r in self.rows]
        widest = max(max((cell_len(part) for part in cell.split("\n")), default=0) for cell in cells)
        return min(widest, max(WRAP_MIN, cell_len(self.columns[i].title))) if self.columns[i].wrap else widest

    def shown(self, width: int) -> List[int]:
        """Indices of the columns that fit ``width`` cells, lowest-value columns left out first."""
        keep = list(range(len(self.columns)))
        widths = {i: self._width(i) for i in keep}

        def needed():
            return sum(widths[i] for i in keep) + 3 * len(keep) + 1  # padding and rules

        for i in sorted((i for i in keep if self.columns[i].drop), key=lambda i: -self.columns[i].drop):
            if needed() <= width:
                break
            keep.remove(i)
        return keep

    def table(self, width: int) -> Table:
        tbl = Table(header_style="bold", **self.table_options)
        keep = self.shown(width)
        for i in keep:
            col = self.columns[i]
            tbl.add_column(col.title, justify="right" if col.numeric else "left", no_wrap=not col.wrap,
                           overflow="fold" if col.wrap else "ellipsis", min_width=self._width(i) if not col.wrap else None)
        for n, (row, style) in enumerate(zip(self.rows, self.styles)):
            total = self.last_is_total and n == len(self.rows) - 1
            tbl.add_row(*(row[i] for i in keep), style="bold" if total else style, end_section=total)
        return tbl

    def left_out(self, width: int) -> List[str]:
        shown = set(self.shown(width))
        return [c.title for i, c in enumerate(self.columns) if i not in shown]

    def __rich_console__(self, console, options):
        yield self.table(options.max_width)
        missing = self.left_out(options.max_width)
        if missing:  # say so: a reader must not take a narrow table for the whole one
            yield Text(f"left out at {options.max_width} columns: {', '.join(missing)} (a wider terminal, "
                       "or -f markdown / csv / json, shows every column)", style="dim")
