"""The inspection commands: shapes, params, flops, summary, check, memory, compare, list.
Each parses, calls the library, renders."""
from __future__ import annotations

import os
from typing import Annotated, List, Optional

import typer

from archscope.cli.app import app, emit, err, run
from archscope.cli.options import (
    BATCH,
    BUILD,
    DEPTH,
    DEVICE,
    FORMAT,
    INPUT,
    INPUT_DATA,
    MODEL,
    MODEL_HELP,
    Opt,
    command,
    flag,
    input_options,
    model_kwargs,
)
from archscope.errors import ModelFailure, UsageError

VIEW_OPTIONS = [
    flag("--train", "Also count one training step: forward in train mode + a real backward pass."),
    flag("--rf", "Receptive field of each row's output: size and jump (stride product)."),
    flag("--collapse", "Show consecutive identical blocks as one row 'first … last' of type 'T ×N'."),
    Opt("engine", Annotated[str, typer.Option(
        "--engine", help="summary only: archscope | torchinfo (torchinfo's own summary of the same model and input).")],
        "archscope"),
]
VIEWS = {
    "shapes": "Output shape of every layer for one input.",
    "params": "Parameters per layer: trainable/frozen, share of total, bytes at float32.",
    "flops": "FLOPs and MACs per layer, share of total (one forward pass).",
    "summary": "All columns, plus a totals panel.",
}


def _view_command(view: str, doc: str) -> None:
    def body(o):
        from archscope.analysis import trace
        from archscope.report import check_format, render

        check_format(o["fmt"])
        if o["engine"] != "archscope":
            return _torchinfo(view, o)
        t = trace(o["model"], depth=o["depth"], device=o["device"], batch=o["batch"], model_kwargs=model_kwargs(o),
                  train=o["train"], rf=o["rf"], collapse=o["collapse"], **input_options(o))
        emit(render(t, o["fmt"], view=view))

    body.__doc__, body.__name__ = doc, view
    command(app, view, MODEL, INPUT, INPUT_DATA, BATCH, DEPTH, BUILD, FORMAT, DEVICE, VIEW_OPTIONS, run=run)(body)


def _torchinfo(view: str, o) -> None:
    if o["engine"] != "torchinfo":
        raise UsageError(f"unknown --engine '{o['engine']}': use archscope or torchinfo")
    if view != "summary":
        raise UsageError("--engine torchinfo applies to 'archscope summary' only")
    from archscope.analysis.engines import torchinfo_summary

    emit(torchinfo_summary(o["model"], depth=o["depth"], batch=o["batch"], model_kwargs=model_kwargs(o),
                           **input_options(o)))


for _view, _doc in VIEWS.items():
    _view_command(_view, _doc)


SIZES = [Opt("sizes", Annotated[Optional[str], typer.Option(
    "--sizes", help="Also scan square sides A..B, e.g. 32..512.", show_default=False)], None)]


@command(app, "check", MODEL, INPUT, INPUT_DATA, BATCH, SIZES, BUILD, FORMAT, DEVICE, run=run)
def check_(o):
    """Check that every Linear gets its in_features (and every conv its in_channels); explain a failure.

    Exit 0 when every check holds, 1 when any fails.
    """
    from archscope.analysis.check import check, parse_sizes
    from archscope.report import check_format, render

    check_format(o["fmt"])
    span = parse_sizes(o["sizes"]) if o["sizes"] is not None else None
    report = check(o["model"], batch=o["batch"], device=o["device"], sizes=span, model_kwargs=model_kwargs(o),
                   **input_options(o))
    emit(render(report, o["fmt"]))
    return 0 if report.ok else 1


MEMORY_OPTIONS = [
    Opt("optimizer", Annotated[str, typer.Option(
        help="adam | adamw | sgd | sgd-momentum: how much state per parameter.")], "adam"),
    flag("--amp", "bf16 autocast: inputs of convs/matmuls saved at 2 bytes."),
    Opt("fit", Annotated[Optional[str], typer.Option(
        "--fit", help="A memory budget, e.g. 16GiB: print the largest (per-GPU) batch that fits.",
        show_default=False)], None),
    Opt("depth", Annotated[Optional[int], typer.Option(
        "--depth", "-d", help="Per layer at this depth: activations saved, params, grads, optimizer state.",
        show_default=False)], None),
    flag("--checkpointing", "Activation checkpointing of the rows at --depth (1 if not given): memory and extra FLOPs."),
    Opt("shard", Annotated[Optional[int], typer.Option(
        "--shard", help="Data-parallel ranks N: model states per rank under --zero (--batch is per rank).",
        show_default=False)], None),
    Opt("zero", Annotated[Optional[int], typer.Option(
        "--zero", help="ZeRO stage 0 (DDP) | 1 (optimizer states sharded) | 2 (+ gradients) | 3 (+ parameters).",
        show_default=False)], None),
    flag("--fsdp", "The same as --zero 3."),
]


SWEEP_BATCH = Opt("batch", Annotated[Optional[str], typer.Option(
    "--batch", "-b", help="Batch size, or a sweep: 1,8,64,256 or 1..256 (powers of two). Default: the batch of "
                          "--input, else 1.", show_default=False)], None)
SWEEP_SIZE = Opt("size", Annotated[Optional[str], typer.Option(
    "--size", "-s", help="Image side (the rank and channels from the model's first conv), or a list: 28,56,112.",
    show_default=False)], None)
PLOT = Opt("plot", Annotated[Optional[str], typer.Option(
    "--plot", help="FILE.png: draw the sweep against batch (needs matplotlib).", show_default=False)], None)
MEMORY_HW = Opt("hw", Annotated[Optional[str], typer.Option(
    "--hw", help="A device from 'archscope time --hw list' whose memory is the sweep's capacity line.",
    show_default=False)], None)


def _sweep_points(o):
    """``(batches, sides, input_size)`` of a command that sweeps: --batch and --size as lists, --input as is."""
    from archscope.analysis.sweep import parse_points

    batches, sizes = parse_points(o["batch"], "--batch"), parse_points(o["size"], "--size")
    if o["size"] is not None and o["input_"]:
        raise UsageError("give either --input or --size, not both")
    input_size = o["input_"][0] if o["input_"] and len(o["input_"]) == 1 else (o["input_"] or None)
    return batches, sizes, input_size


def _emit_sweep(sweep, o) -> None:
    from archscope.report import render
    from archscope.report.sweep import plot_sweep

    emit(render(sweep, o["fmt"]))
    if o["plot"]:
        err.print(f"wrote {plot_sweep(sweep, o['plot'])}", highlight=False, markup=False)


@command(app, "memory", MODEL, [SWEEP_BATCH], MEMORY_OPTIONS, [INPUT[0], SWEEP_SIZE], BUILD, FORMAT,
         [MEMORY_HW, PLOT], run=run)
def memory_(o):
    """Memory of inference and of one training step: parameters, gradients, optimizer state, activations."""
    from archscope.analysis.memory import memory
    from archscope.report import check_format, render

    check_format(o["fmt"])
    zero = o["zero"]
    if o["fsdp"]:
        if zero not in (None, 3):
            raise UsageError(f"--fsdp is ZeRO stage 3: it cannot go with --zero {zero}")
        zero = 3
    if zero is not None and o["shard"] is None:
        raise UsageError("--zero/--fsdp shard over ranks: give their number with --shard N")
    options = dict(optimizer=o["optimizer"], amp=o["amp"], model_kwargs=model_kwargs(o), shard=o["shard"],
                   zero=0 if o["shard"] is not None and zero is None else zero)
    batches, sizes, input_size = _sweep_points(o)
    if len(batches) > 1 or len(sizes) > 1 or o["plot"]:
        from archscope.analysis.hardware import parse_hardware
        from archscope.analysis.sweep import sweep_memory

        if o["depth"] is not None or o["checkpointing"]:
            raise UsageError("--depth and --checkpointing show one point: give one --batch and one --size")
        capacity = o["fit"]
        if capacity is None and o["hw"]:
            hardware = parse_hardware(o["hw"])
            capacity = f"{hardware.memory}B" if hardware.memory else None
        sweep = sweep_memory(o["model"], batches, sizes, input_size=input_size, capacity=capacity, **options)
        if o["hw"] and not o["fit"]:
            sweep.capacity_label = parse_hardware(o["hw"]).description
        return _emit_sweep(sweep, o)
    report = memory(o["model"], batch=batches[0], input_size=sizes[0] if sizes[0] is not None else input_size,
                    fit=o["fit"], depth=o["depth"], checkpointing=o["checkpointing"], **options)
    emit(render(report, o["fmt"]))


TIME_OPTIONS = [
    Opt("batch", Annotated[Optional[str], typer.Option(
        "--batch", "-b", help="Batch size, or a sweep: 1,8,64,256 or 1..256. Default: the batch of --input, else 32.",
        show_default=False)], None),
    Opt("dtype", Annotated[str, typer.Option("--dtype", help="fp32 | bf16 | fp16: the model's and inputs' dtype.")],
        "fp32"),
    flag("--train", "A whole training step: forward, backward and one optimizer step."),
    Opt("hw", Annotated[str, typer.Option(
        "--hw", help="Hardware: a name (h200, h100, a100, l4, t4, rtx4090...; 'list' shows them), cpu (this machine, "
                     "calibrated once), or peak=FLOP/s,bandwidth=B/s[,overhead=s].")], "cpu"),
    flag("--measure", "Also run it for real (CUDA if there is one, else CPU) and time every row."),
    flag("--recalibrate", "With --hw cpu: measure this CPU again now, replacing the cached calibration."),
    Opt("optimizer", Annotated[str, typer.Option(help="With --train: adam | adamw | sgd | sgd-momentum.")], "adam"),
]


@command(app, "time", [Opt("model", Annotated[Optional[str], typer.Argument(
    help=MODEL_HELP + " Not needed with --hw list.", show_default=False)], None)], TIME_OPTIONS,
    [INPUT[0], SWEEP_SIZE], INPUT_DATA, DEPTH, BUILD, FORMAT, [PLOT], run=run)
def time_(o):
    """Seconds per layer: a roofline prediction (FLOPs, bytes, per-op overhead) on chosen hardware; --measure times it."""
    from archscope.analysis.hardware import HardwareTable, hardware_list
    from archscope.analysis.timing import time_model
    from archscope.report import check_format, render

    check_format(o["fmt"])
    if o["hw"] == "list":
        return emit(render(HardwareTable(hardware_list()), o["fmt"]))
    if o["model"] is None:
        raise UsageError("give a MODEL to time (or --hw list for the hardware table)")
    if o["recalibrate"]:
        if o["hw"] != "cpu":
            raise UsageError("--recalibrate measures this CPU: it goes with --hw cpu")
        from archscope.analysis.hardware import calibrate_cpu

        calibrate_cpu((o["dtype"],), recalibrate=True)
    options = dict(dtype=o["dtype"], train=o["train"], hw=o["hw"], measure=o["measure"], depth=o["depth"],
                   optimizer=o["optimizer"], model_kwargs=model_kwargs(o))
    batches, sizes, input_size = _sweep_points(o)
    if o["input_data"] and (o["input_"] or o["size"]):
        raise UsageError("give either --input-data or --input/--size, not both")
    if len(batches) > 1 or len(sizes) > 1 or o["plot"]:
        from archscope.analysis.sweep import sweep_time

        if o["input_data"]:
            raise UsageError("a sweep makes its own inputs: drop --input-data")
        return _emit_sweep(sweep_time(o["model"], batches, sizes, input_size=input_size, **options), o)
    input_data = None
    if o["input_data"]:
        from archscope.inputs import load_input_data

        input_data = load_input_data(o["input_data"])
    report = time_model(o["model"], batch=batches[0], input_size=sizes[0] if sizes[0] is not None else input_size,
                        input_data=input_data, **options)
    emit(render(report, o["fmt"]))


MODELS = [Opt("models", Annotated[List[str], typer.Argument(
    help="One or more models: zoo names, tv:NAME, timm:NAME, hf:TYPE, file.py:factory.", show_default=False)])]
BATCH_FLOPS = [Opt("batch", Annotated[int, typer.Option("--batch", "-b", help="Batch size for FLOPs and memory.")], 1)]


@command(app, "compare", MODELS, BATCH_FLOPS, INPUT, BUILD, FORMAT, run=run)
def compare_(o):
    """Models side by side: params, FLOPs, training-step FLOPs and memory, smallest side, first FC width, receptive field."""
    from archscope.analysis.compare import compare
    from archscope.report import check_format, render

    check_format(o["fmt"])
    emit(render(compare(o["models"], batch=o["batch"], model_kwargs=model_kwargs(o),
                        input_size=input_options(o)["input_size"]), o["fmt"]))


WEIGHTS_FILE = [Opt("path", Annotated[str, typer.Argument(
    help="A .safetensors file, a state_dict .pt/.bin (read with weights_only=True) or a sharded *.index.json.",
    show_default=False)])]
PREFIX_DEPTH = [Opt("depth", Annotated[int, typer.Option(
    "--depth", "-d", help="Group tensors by the first N parts of their names (transformer.h: 2).")], 2)]


@command(app, "weights", WEIGHTS_FILE, PREFIX_DEPTH, FORMAT, run=run)
def weights_(o):
    """A weights file's tensors by module prefix, tied ones found; with its config.json beside it, checked
    against the model that config builds (missing, unexpected, mismatched), without loading the weights."""
    from archscope.analysis.weights import weights
    from archscope.report import check_format, render

    check_format(o["fmt"])
    report = weights(o["path"], depth=o["depth"])
    emit(render(report, o["fmt"]))
    return 1 if report.match is not None and not report.match.ok else 0


PATTERN = [Opt("pattern", Annotated[str, typer.Argument(
    help="Shell-style pattern, e.g. 'vgg*'; tv: or 'tv:res*' for torchvision, 'timm:*vit*' for timm, "
         "'hf:bert*' for transformers.")], "*")]


@command(app, "list", PATTERN, FORMAT, run=run)
def list_(o):
    """The model zoo (or torchvision's / timm's models): name, default input, params, FLOPs, description."""
    from archscope.analysis.listing import list_rows
    from archscope.report import check_format, render

    check_format(o["fmt"])
    emit(render(list_rows(o["pattern"]), o["fmt"]))


DRAWING = [
    Opt("output", Annotated[Optional[str], typer.Option(
        "--output", "-o", help="FILE.svg | .png | .pdf (rendered by Graphviz) or FILE.dot; without it, DOT on stdout.",
        show_default=False)], None),
    Opt("color", Annotated[str, typer.Option("--color", help="Shade nodes by their share of: flops | params | none.")],
        "flops"),
    Opt("direction", Annotated[str, typer.Option("--direction", help="TB (top to bottom) | LR (left to right).")],
        "TB"),
    Opt("collapse", Annotated[bool, typer.Option(
        "--collapse/--no-collapse", help="Draw consecutive identical blocks as one node marked ×N.", metavar="")],
        True),
]


def check_writable(path: str) -> None:
    """Before any work: the file's folder must exist and the path must not be a folder (exit 2 at once,
    not exit 1 after the model is traced)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"-o {path} is a folder: give a file name in it, e.g. {os.path.join(path, 'model.svg')}")
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {path}: the folder {folder} does not exist (create it, or choose another -o)")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {path}: the folder {folder} is not writable (choose another -o)")


@command(app, "graph", MODEL, INPUT, INPUT_DATA, BATCH, DEPTH, BUILD, DEVICE, DRAWING, run=run)
def graph_(o):
    """The architecture as a diagram: module calls at --depth, the tensors between them with their shapes."""
    from archscope.report.diagram import diagram

    if o["output"] is not None:
        check_writable(o["output"])
    picture = diagram(o["model"], color=o["color"], direction=o["direction"], depth=o["depth"], device=o["device"],
                      batch=o["batch"], model_kwargs=model_kwargs(o), collapse=o["collapse"], partial=True,
                      **input_options(o))
    crowded = picture.crowded()
    if crowded:
        err.print(f"warning: {crowded}", highlight=False, markup=False)
    if o["output"] is None:
        emit(picture.to_dot())
    else:
        err.print(f"wrote {picture.render(o['output'])}", highlight=False, markup=False)
    if picture.graph.failure:  # what ran is drawn, the failing layer in red; the command still failed
        raise ModelFailure(picture.graph.failure)


PAGE = [
    Opt("output", Annotated[Optional[str], typer.Option(
        "--output", "-o", help="The HTML file to write. Default: MODEL.html in this folder.", show_default=False)],
        None),
    Opt("depth", Annotated[int, typer.Option(
        "--depth", "-d", help="Depth the page's diagram opens at (any block opens in place on the page).")], 1),
    Opt("color", Annotated[str, typer.Option(
        "--color", help="Shade nodes by: flops | params | memory | time (needs --hw) | none; changeable on the page.")],
        "flops"),
    DRAWING[2],
    Opt("hw", Annotated[Optional[str], typer.Option(
        "--hw", help="Predict each node's seconds on this hardware (a name from 'archscope time --hw list', or "
        "peak=…,bandwidth=…).", show_default=False)], None),
]


@command(app, "report", MODEL, INPUT, INPUT_DATA, BATCH, BUILD, DEVICE, PAGE, run=run)
def report_(o):
    """One self-contained HTML page to explore a model: totals, diagram, the module tree, checks."""
    from archscope.report.page import build_page, page_name

    path = o["output"] or page_name(o["model"])
    check_writable(path)
    if o["depth"] < 1:
        raise UsageError(f"bad --depth {o['depth']}: it must be >= 1")
    built = build_page(o["model"], depth=o["depth"], color=o["color"], direction=o["direction"], hw=o["hw"],
                       device=o["device"], batch=o["batch"], model_kwargs=model_kwargs(o), **input_options(o))
    err.print(f"wrote {built.save(path)}", highlight=False, markup=False)
    if built.failure:  # the page shows what ran and where it broke; the command still failed
        raise ModelFailure(built.failure)
