"""Training's views: the per-epoch history, and an evaluation's accuracy, per-class figures and
confusion matrix (as a table, CSV or Markdown)."""
from __future__ import annotations

import csv
import io
from typing import Any, Dict, List

from rich.console import Group
from rich.table import Table
from rich.text import Text

from archscope.report.render import renders
from archscope.train.data import CLASSES
from archscope.train.evaluate import Evaluation


def history_table(history: List[Dict[str, Any]]) -> Table:
    tbl = Table(title="training", header_style="bold")
    for title in ("epoch", "loss", "train acc", "test acc", "time", "img/s"):
        tbl.add_column(title, justify="right")
    for h in history:
        tbl.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['train_acc']:.4f}", f"{h['test_acc']:.4f}",
                    f"{h['time_s']:.1f} s", f"{h['train_img_per_s']:,.0f}" if h.get("train_img_per_s") else "—")
    return tbl


def _headline(result: Evaluation) -> str:
    return (f"test accuracy {result.accuracy:.4f}  (loss {result.loss:.4f}, "
            f"{sum(map(sum, result.confusion)):,} images)")


@renders(Evaluation, "table")
def evaluation_view(result: Evaluation) -> Group:
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
    return Group(Text(_headline(result), style="bold"), per_class, confusion)


@renders(Evaluation, "csv")
def evaluation_csv(result: Evaluation) -> str:
    """One row per class: its images, recall, precision, then the confusion-matrix row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "images", "recall", "precision", *(f"predicted_{name}" for name in CLASSES)])
    for row, counts in zip(result.per_class(), result.confusion):
        w.writerow([row["class"], row["count"], f"{row['recall']:.4f}", f"{row['precision']:.4f}", *counts])
    return buf.getvalue()


@renders(Evaluation, "markdown")
def evaluation_markdown(result: Evaluation) -> str:
    lines = [f"**{_headline(result)}**", "", "| class | images | recall | precision |", "|---|---:|---:|---:|"]
    lines += [f"| {r['class']} | {r['count']:,} | {r['recall']:.3f} | {r['precision']:.3f} |" for r in result.per_class()]
    lines += ["", "| true \\ predicted | " + " | ".join(str(i) for i in range(len(CLASSES))) + " |",
              "|---|" + "---:|" * len(CLASSES)]
    lines += [f"| {i} {name} | " + " | ".join(str(v) for v in result.confusion[i]) + " |" for i, name in enumerate(CLASSES)]
    return "\n".join(lines) + "\n"
