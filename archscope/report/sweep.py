"""Rendering of a sweep: one row per point, and ``--plot FILE.png`` (memory or step time against batch)."""
from __future__ import annotations

from pathlib import Path
from typing import List

from rich.console import Group
from rich.text import Text

from archscope.analysis.sweep import Sweep
from archscope.errors import UsageError
from archscope.inputs import shape_text
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import csv_of, human, human_bytes
from archscope.report.timing import seconds_text

_MEMORY = [("training_bytes", "Training step", human_bytes), ("inference_bytes", "Inference", human_bytes),
           ("activations_bytes", "Activations", human_bytes)]
_TIME = [("predicted_step_s", "Predicted step", seconds_text),
         ("predicted_images_per_s", "Predicted img/s", lambda v: human(v) if v else "—"),
         ("predicted_epoch_s", "Predicted epoch", seconds_text), ("measured_step_s", "Measured step", seconds_text),
         ("measured_images_per_s", "Measured img/s", lambda v: human(v) if v else "—")]


def _fields(s: Sweep):
    fields = _MEMORY if s.kind == "memory" else _TIME
    return [f for f in fields if any(f[0] in p for p in s.points)]


def _cells(s: Sweep) -> List[List[str]]:
    return [[str(p["batch"]), shape_text(p["input_shape"])] + [fmt(p.get(key)) for key, _, fmt in _fields(s)]
            for p in s.points]


def _note(s: Sweep) -> str:
    if s.kind == "memory" and s.capacity is not None:
        sizes = sorted({p["size"] for p in s.points}, key=lambda x: x or 0)
        parts = [f"{'side ' + str(size) + ': ' if size else ''}{s.largest_fitting(size)}" for size in sizes]
        return f"largest batch of the sweep whose training step fits {s.capacity_label}: {', '.join(parts)}"
    return ""


@renders(Sweep, "table")
def sweep_table(s: Sweep):
    cols = [FitColumn("Batch", True), FitColumn("Input")] + [FitColumn(title, True) for _, title, _ in _fields(s)]
    parts = [FitTable(cols, _cells(s), title=f"{s.model} — {s.kind} sweep")]
    if _note(s):
        parts.append(Text(_note(s)))
    return Group(*parts)


@renders(Sweep, "csv")
def sweep_csv(s: Sweep) -> str:
    return csv_of(s.points, lambda p: {**p, "input_shape": shape_text(p["input_shape"]).replace("×", "x")})


@renders(Sweep, "markdown")
def sweep_markdown(s: Sweep) -> str:
    titles = ["Batch", "Input"] + [title for _, title, _ in _fields(s)]
    lines = ["| " + " | ".join(titles) + " |", "|---:|---|" + "---:|" * (len(titles) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in _cells(s)]
    if _note(s):
        lines += ["", _note(s)]
    return "\n".join(lines) + "\n"


def plot_sweep(s: Sweep, path: str) -> str:
    """Memory (GiB) or step time (ms) against batch, one line per side, with the capacity as a line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker  # noqa: F401 - used as matplotlib.ticker
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'archscope[plot]'") from None
    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--plot {path}: give a .png, .svg or .pdf file")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = sorted({p["size"] for p in s.points}, key=lambda x: x or 0)
    for size in sizes:
        pts = sorted((p for p in s.points if p["size"] == size), key=lambda p: p["batch"])
        batches = [p["batch"] for p in pts]
        suffix = f" (side {size})" if size else ""
        if s.kind == "memory":
            ax.plot(batches, [p["training_bytes"] / 2 ** 30 for p in pts], "o-", label=f"training step{suffix}")
            ax.plot(batches, [p["inference_bytes"] / 2 ** 30 for p in pts], "s--", label=f"inference{suffix}")
        else:
            ax.plot(batches, [p["predicted_step_s"] * 1e3 for p in pts], "o-", label=f"predicted step{suffix}")
            if any("measured_step_s" in p for p in pts):
                ax.plot(batches, [p.get("measured_step_s", float("nan")) * 1e3 for p in pts], "s--",
                        label=f"measured step{suffix}")
    if s.kind == "time":  # throughput on the right: where a bigger batch stops paying
        right = ax.twinx()
        for size in sizes:
            pts = sorted((p for p in s.points if p["size"] == size), key=lambda p: p["batch"])
            right.plot([p["batch"] for p in pts], [p["predicted_images_per_s"] or 0 for p in pts], "^:",
                       color="grey", label="predicted img/s")
        right.set_ylabel("images per second (predicted)", color="grey")
        right.set_ylim(bottom=0)
    if s.kind == "memory" and s.capacity is not None:
        ax.axhline(s.capacity / 2 ** 30, color="crimson", linestyle=":", label=f"capacity: {s.capacity_label}")
        fits = s.largest_fitting(sizes[0])
        if fits:
            ax.axvline(fits, color="crimson", alpha=0.3)
            ax.annotate(f"largest batch that fits: {fits}", (fits, s.capacity / 2 ** 30), textcoords="offset points",
                        xytext=(-10, -14), ha="right", color="crimson", fontsize=9)
    ax.set_xscale("log", base=2)
    if s.kind == "memory":  # memory spans decades; a step's time is read best on a linear axis
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("batch")
    ax.set_ylabel("memory (GiB)" if s.kind == "memory" else "step time (ms)")
    where = f" on {s.hardware}" if s.hardware else ""
    ax.set_title(f"{s.model}: {'memory' if s.kind == 'memory' else 'step time'} against batch{where}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return str(out)
