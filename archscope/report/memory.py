"""Rendering of ``archscope memory``: a table of what a training step and inference hold."""
from __future__ import annotations

import csv
import io
from typing import List

from rich.console import Group
from rich.table import Table
from rich.text import Text

from archscope.analysis.memory import MemoryReport, MemoryRow
from archscope.inputs import shape_text
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import csv_of, human_bytes


def _title(r: MemoryReport) -> str:
    return f"{r.model} — memory — input {shape_text(r.input_shape)} (batch {r.batch}), optimizer {r.optimizer}"


def _fit_line(r: MemoryReport) -> str:
    if r.fit_budget is None:
        return ""
    if r.fit_batch == 0:
        return f"a training step does not fit in {human_bytes(r.fit_budget)} even at batch 1"
    return f"largest batch whose training step fits in {human_bytes(r.fit_budget)}: {r.fit_batch}"


ROW_COLUMNS = (FitColumn("Layer", wrap=True), FitColumn("Type", wrap=True, drop=3),
               FitColumn("Activations", True), FitColumn("Params", True), FitColumn("Grads", True),
               # Activations, Params, Grads and Optimizer are what Total adds up: never left out.
               FitColumn("Optimizer", True), FitColumn("Total", True), FitColumn("Input (kept if checkpointed)", True, 4),
               FitColumn("Peak", drop=1))


def _row_cells(x: MemoryRow) -> List[str]:
    return [x.name, x.type, human_bytes(x.activations_bytes), human_bytes(x.params_bytes), human_bytes(x.grads_bytes),
            human_bytes(x.optimizer_bytes), human_bytes(x.total_bytes),
            human_bytes(x.input_bytes) if x.kind == "module" else "", "◀ peak" if x.peak else ""]


def _total_cells(r: MemoryReport) -> List[str]:
    rows = r.rows or []
    return ["total", "", human_bytes(r.activations_bytes), human_bytes(r.params_bytes), human_bytes(r.grads_bytes),
            human_bytes(r.optimizer_bytes), human_bytes(sum(x.total_bytes for x in rows)), "", ""]


def _extra_lines(r: MemoryReport) -> List[str]:
    lines = []
    if r.rows:
        lines.append("the rows' Total adds everything each layer holds at some point (all activations and all "
                     f"gradients together); the training step peak ({human_bytes(r.training_bytes)}) is less when "
                     "backward frees each layer's activations as it makes its gradients")
    c = r.checkpointed
    if c is not None:
        verb = f"saves {human_bytes(c.saved_bytes)}" if c.saved_bytes >= 0 else \
            f"holds {human_bytes(-c.saved_bytes)} more (the rows' inputs outweigh what they save)"
        lines.append(f"checkpointing the {sum(x.kind == 'module' for x in r.rows)} rows at depth {r.depth}: "
                     f"activations {human_bytes(r.activations_bytes)} → {human_bytes(c.activations_bytes)} ({verb}); "
                     f"backward peak ≈ {human_bytes(c.backward_peak_bytes)}; costs {c.extra_flops:,} FLOPs more a step "
                     "(each row's forward again)")
    z = r.sharding
    if z is not None:
        lines.append(f"per rank of {z.ranks}, ZeRO stage {z.stage} ({'FSDP' if z.stage == 3 else 'DDP' if z.stage == 0 else 'ZeRO'}), "
                     f"mixed precision, {z.optimizer} (K = {z.k}): params {human_bytes(z.params_bytes)} + grads "
                     f"{human_bytes(z.grads_bytes)} + optimizer {human_bytes(z.optimizer_bytes)} = "
                     f"{human_bytes(z.states_bytes)} of model states, plus the activations of its batch of {r.batch} "
                     f"({human_bytes(r.activations_bytes)}): {human_bytes(z.states_bytes + r.activations_bytes)}; "
                     "the ZeRO paper's convention: bf16/fp16 params and grads (2 + 2 bytes), fp32 master weights "
                     f"and optimizer states (K), activations as measured ({'under autocast' if r.amp else 'fp32'})")
        if z.deepspeed_bytes is not None:
            lines.append(f"DeepSpeed's own estimator (estimate_zero{3 if z.stage == 3 else 2}_model_states_mem_needs, "
                         f"no offload) puts model states at {human_bytes(z.deepspeed_bytes)} per GPU: "
                         + ("whole fp16 params and grads (4Ψ) + 16Ψ/N of fp32 states" if z.stage < 3 else
                            "the largest layer gathered in fp32 (4 bytes each) + 18Ψ/N"))
    return lines


@renders(MemoryReport, "table")
def memory_view(r: MemoryReport):
    tbl = Table(header_style="bold")
    tbl.add_column("Memory")
    tbl.add_column("Bytes", justify="right")
    tbl.add_column("", justify="right")
    for label, value in r.lines():
        bold = "total" in label
        tbl.add_row(label, f"{value:,}", human_bytes(value), style="bold" if bold else None)
    parts = [Text(_title(r), style="bold"), tbl]
    if r.rows is not None:
        cells = [_row_cells(x) for x in r.rows] + [_total_cells(r)]
        parts.append(FitTable(ROW_COLUMNS, cells, last_is_total=True, title=f"per layer at depth {r.depth}"))
    parts += [Text(line) for line in _extra_lines(r)]
    if r.fit_budget is not None:
        parts.append(Text(_fit_line(r)))
    if r.note:
        parts.append(Text.assemble(("note: ", "yellow"), r.note))
    return Group(*parts)


@renders(MemoryReport, "csv")
def memory_csv(r: MemoryReport) -> str:
    if r.rows is not None:  # one line per layer, as a trace's CSV
        return csv_of(r.rows, lambda x: x.to_dict())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["item", "bytes"])
    writer.writerows(r.lines())
    return buf.getvalue()


@renders(MemoryReport, "markdown")
def memory_markdown(r: MemoryReport) -> str:
    lines = [f"**{_title(r)}**", "", "| Memory | Bytes | |", "|---|---:|---:|"]
    lines += [f"| {label} | {value:,} | {human_bytes(value)} |" for label, value in r.lines()]
    if r.rows is not None:
        lines += ["", "| " + " | ".join(c.title for c in ROW_COLUMNS) + " |",
                  "|---|---|" + "---:|" * 6 + "---|"]
        lines += ["| " + " | ".join(_row_cells(x)) + " |" for x in r.rows] + ["| " + " | ".join(_total_cells(r)) + " |"]
    lines += [""] + _extra_lines(r) if _extra_lines(r) else []
    if r.fit_budget is not None:
        lines += ["", _fit_line(r)]
    return "\n".join(lines) + "\n"
