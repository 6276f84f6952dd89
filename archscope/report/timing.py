"""Rendering of ``archscope time``: per row FLOPs, bytes, intensity, bound and seconds; the hardware table."""
from __future__ import annotations

from typing import List, Optional

from rich.console import Group
from rich.text import Text

from archscope.analysis.hardware import HardwareTable
from archscope.analysis.timing import TimeReport, TimeRow
from archscope.inputs import shape_text
from archscope.report.fit import FitColumn, FitTable
from archscope.report.render import renders
from archscope.report.text import csv_of, human, human_bytes

DASH = "—"


def seconds_text(s: Optional[float]) -> str:
    if s is None:
        return DASH
    for factor, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= factor:
            return f"{s / factor:.3g} {unit}"
    return f"{s * 1e9:.3g} ns" if s else "0"


def _columns(measured: bool):
    cols = [FitColumn("Layer", wrap=True), FitColumn("Type", wrap=True, drop=5), FitColumn("Output", drop=6),
            FitColumn("FLOPs", True), FitColumn("Bytes", True, 3), FitColumn("FLOP/B", True, 4),
            FitColumn("Ops", True, 7), FitColumn("Bound"), FitColumn("Predicted", True), FitColumn("Share", True, 2)]
    if measured:
        cols += [FitColumn("Measured", True), FitColumn("Achieved FLOP/s", True, 8),
                 FitColumn("Roofline", True, 9)]
    return cols


def _cells(r: TimeRow, whole: float, measured: bool) -> List[str]:
    intensity = r.intensity
    cells = [r.name, r.type, shape_text(r.output_shape) if r.output_shape is not None else "",
             human(r.flops), human_bytes(r.bytes), f"{intensity:.1f}" if intensity is not None else DASH, str(r.ops),
             r.bound, seconds_text(r.predicted_s), f"{100 * r.predicted_s / whole:.1f}%" if whole else DASH]
    if measured:
        achieved = r.achieved_flops
        share = r.roofline_share
        # Above 100%: measured faster than the roofline allows, i.e. a noisy measurement (marked, see the note).
        cells += [seconds_text(r.measured_s), human(achieved, "FLOP/s") if achieved else DASH,
                  (f"{100 * share:.0f}%" + ("*" if share > 1 else "")) if share is not None else DASH]
    return cells


def _hardware_line(r: TimeReport) -> str:
    hw = r.hardware
    return (f"{hw.description}: {human(hw.peak_for(r.dtype), 'FLOP/s')} {r.dtype}, {human(hw.bandwidth, 'B/s')}, "
            f"{seconds_text(hw.overhead_s)} per op ({hw.source})")


def _lines(r: TimeReport) -> List[str]:
    total = r.total()
    step = "training step (forward, backward, optimizer)" if r.train else "forward"
    lines = [f"{step} predicted {seconds_text(total.predicted_s)}: Fashion-MNIST "
             f"{'epoch' if r.train else 'test set'} of {r.images:,} images ({r.steps_per_epoch:,} steps of "
             f"{r.batch}) ≈ {seconds_text(r.predicted_epoch_s)}"]
    if r.whole_measured_s is not None:
        lines.append(f"measured on {r.measured_on}: {seconds_text(r.whole_measured_s)} a step timed whole "
                     f"(median of {r.repeats}), ≈ {seconds_text(r.measured_epoch_s)} an epoch; predicted/measured "
                     f"{total.predicted_s / r.whole_measured_s:.2f}; rows sum to {seconds_text(total.measured_s)} "
                     f"(hooks' {seconds_text(r.hook_cost_s)} per call taken off)"
                     + (f"; middle half of the runs {seconds_text(r.whole_spread_s[0])}–{seconds_text(r.whole_spread_s[1])}"
                        if r.whole_spread_s else ""))
        if any((x.roofline_share or 0) > 1 for x in r.rows):
            lines.append("* a roofline share above 100%: the row measured faster than its roofline prediction, "
                         "which only a noisy measurement (or figures of this --hw set too low) can do")
        if r.unsteady:
            lines.append(f"warning: unsteady measurement ({r.unsteady}): the machine was busy; measure again "
                         "when it is idle")
    return lines


def _title(r: TimeReport) -> str:
    what = "training step" if r.train else "forward"
    return f"{r.model} — time of one {what} — input {shape_text(r.input_shape)}, {r.dtype}, on {r.hardware.name}"


@renders(TimeReport, "table")
def time_table(r: TimeReport):
    measured = r.measured_on is not None
    total = r.total()
    rows = r.rows + [total]
    table = FitTable(_columns(measured), [_cells(x, total.predicted_s, measured) for x in rows],
                     styles=[None] * len(r.rows) + ["bold"], last_is_total=True, title=_title(r))
    parts = [table, Text(_hardware_line(r), style="dim")] + [Text(line) for line in _lines(r)]
    if r.note:
        parts.append(Text.assemble(("note: ", "yellow"), r.note))
    return Group(*parts)


def _csv_cells(x: TimeRow) -> dict:
    d = x.to_dict()
    d["output_shape"] = shape_text(x.output_shape).replace("×", "x") if x.output_shape is not None else ""
    return d


@renders(TimeReport, "csv")
def time_csv(r: TimeReport) -> str:
    return csv_of(r.rows + [r.total()], _csv_cells)


@renders(TimeReport, "markdown")
def time_markdown(r: TimeReport) -> str:
    measured = r.measured_on is not None
    cols = _columns(measured)
    total = r.total()
    lines = [f"**{_title(r)}**", "", "| " + " | ".join(c.title for c in cols) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|"]
    lines += ["| " + " | ".join(_cells(x, total.predicted_s, measured)) + " |" for x in r.rows + [total]]
    lines += ["", _hardware_line(r), ""] + [f"- {line}" for line in _lines(r)]
    if r.note:
        lines.append(f"- note: {r.note}")
    return "\n".join(lines) + "\n"


HW_COLUMNS = (FitColumn("Name"), FitColumn("Device", wrap=True), FitColumn("fp32", True), FitColumn("bf16", True),
              FitColumn("fp16", True), FitColumn("Bandwidth", True), FitColumn("Memory", True, 2),
              FitColumn("Source", wrap=True, drop=1))


def _hw_cells(h) -> List[str]:
    def peak(d):
        return human(h.peak[d], "FLOP/s") if d in h.peak else DASH

    return [h.name, h.description, peak("fp32"), peak("bf16"), peak("fp16"), human(h.bandwidth, "B/s"),
            human_bytes(h.memory) if h.memory else DASH, h.source]


@renders(HardwareTable, "table")
def hardware_table(t: HardwareTable):
    note = ("dense peaks (no sparsity); fp32 is the non-tensor-core figure; 'cpu' is measured on this machine and "
            "cached; custom: --hw peak=120e12,bandwidth=2TB/s[,overhead=5us][,memory=24GiB]")
    return Group(FitTable(HW_COLUMNS, [_hw_cells(h) for h in t.hardware], title="archscope time --hw"),
                 Text(note, style="dim"))


@renders(HardwareTable, "csv")
def hardware_csv(t: HardwareTable) -> str:
    return csv_of(t.hardware, lambda h: dict(zip([c.title.lower() for c in HW_COLUMNS], _hw_cells(h))))


@renders(HardwareTable, "markdown")
def hardware_markdown(t: HardwareTable) -> str:
    lines = ["| " + " | ".join(c.title for c in HW_COLUMNS) + " |", "|---|---|" + "---:|" * 5 + "---|"]
    lines += ["| " + " | ".join(_hw_cells(h)) + " |" for h in t.hardware]
    return "\n".join(lines) + "\n"
