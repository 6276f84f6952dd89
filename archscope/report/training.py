"""Tables for training: the per-epoch history and an evaluation's per-class view."""
from __future__ import annotations

from typing import Any, Dict, List

from rich.console import Group
from rich.table import Table
from rich.text import Text


def history_table(history: List[Dict[str, Any]]) -> Table:
    tbl = Table(title="training", header_style="bold")
    for title in ("epoch", "loss", "train acc", "test acc", "time", "img/s"):
        tbl.add_column(title, justify="right")
    for h in history:
        tbl.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['train_acc']:.4f}", f"{h['test_acc']:.4f}",
                    f"{h['time_s']:.1f} s", f"{h['train_img_per_s']:,.0f}" if h.get("train_img_per_s") else "—")
    return tbl


def evaluation_view(result) -> Group:
    from archscope.train.data import CLASSES

    per_class = Table(header_style="bold", title="per class")
    for title in ("class", "images", "recall", "precision"):
        per_class.add_column(title, justify="left" if title == "class" else "right")
    for row in result.per_class():
        per_class.add_row(row["class"], str(row["count"]), f"{row['recall']:.3f}", f"{row['precision']:.3f}")
    confusion = Table(header_style="bold", title="confusion matrix (rows: true class, columns: predicted)")
    confusion.add_column("true \\ predicted")
    for i in range(len(CLASSES)):
        confusion.add_column(str(i), justify="right")
    for i, name in enumerate(CLASSES):
        confusion.add_row(f"{i} {name}", *(f"[bold]{v}[/]" if i == j else str(v) for j, v in enumerate(result.confusion[i])))
    head = Text(f"test accuracy {result.accuracy:.4f}  (loss {result.loss:.4f}, "
                f"{sum(map(sum, result.confusion)):,} images)", style="bold")
    return Group(head, per_class, confusion)
