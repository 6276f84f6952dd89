"""The ``archscope`` command line. Commands are thin: parse, call the library, render.

Nothing heavy (torch, torchvision) is imported until a command runs, so ``--help`` is fast.
"""
from __future__ import annotations

import sys
import traceback
from typing import Annotated, Callable, List, Optional

import typer
from rich.console import Console

from archscope.errors import ArchscopeError
from archscope.errors import UsageError as UsageError_

app = typer.Typer(
    help="See what a CNN does to a tensor: shapes, parameters, FLOPs, shape-mismatch diagnosis; train on Fashion-MNIST.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Piped output gets a wide console so tables are not squeezed into 80 columns.
stdout = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

MODEL_HELP = (
    "A zoo name (see 'archscope list'), tv:NAME (torchvision), timm:NAME, path/to/file.py:factory, "
    "or package.module:attr. A file or module is imported and run as Python code: only load code you trust."
)

ModelArg = Annotated[str, typer.Argument(help=MODEL_HELP, show_default=False)]
InputOpt = Annotated[Optional[List[str]], typer.Option(
    "--input", "-i", show_default=False,
    help="Input shape with optional dtype, one per positional input of forward: 1x1x224x224, 1x128:int64 (repeatable).")]
InputDataOpt = Annotated[Optional[str], typer.Option(
    "--input-data", show_default=False,
    help="A tensor, tuple (positional inputs) or dict (keyword inputs) saved with torch.save, fed as is.")]
SizeOpt = Annotated[Optional[int], typer.Option("--size", "-s", help="Image side; the rank, channels from the model's first conv, batch 1.", show_default=False)]
BatchOpt = Annotated[Optional[int], typer.Option("--batch", "-b", help="Batch size.", show_default=False)]
DepthOpt = Annotated[int, typer.Option("--depth", "-d", help="1 = the model's children, 2 = one level deeper, ...")]
RatioOpt = Annotated[Optional[int], typer.Option("--ratio", "-r", help="VGG: divide channel counts and FC width by R.", show_default=False)]
ArgOpt = Annotated[Optional[List[str]], typer.Option("--arg", "-a", help="Builder keyword argument key=value (repeatable).", show_default=False)]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table | json | csv | markdown.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="meta (no weights, fastest) | cpu | cuda.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks.")]
RfOpt = Annotated[bool, typer.Option("--rf", help="Receptive field of each row's output: size and jump (stride product).")]
EngineOpt = Annotated[str, typer.Option("--engine", help="summary only: archscope | torchinfo (torchinfo's own summary of the same model and input).")]
TrainOpt = Annotated[bool, typer.Option("--train", help="Also count one training step: forward in train mode + a real backward pass.")]


def run(debug: bool, action: Callable[[], Optional[int]]) -> None:
    """Run a command body; a user's mistake becomes one line on stderr and an exit code."""
    try:
        code = action()
    except ArchscopeError as error:
        if debug:
            traceback.print_exc()
        err.print(f"error: {error}", style="red", highlight=False, markup=False)
        raise typer.Exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", style="red")
        raise typer.Exit(130)
    except typer.Exit:
        raise
    except Exception as error:  # noqa: BLE001 - a bug of ours: still one line unless --debug
        if debug:
            traceback.print_exc()
        err.print(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)",
                  style="red", highlight=False, markup=False)
        raise typer.Exit(1)
    raise typer.Exit(code or 0)


def model_kwargs(ratio: Optional[int], args: Optional[List[str]]) -> dict:
    from archscope.loader import parse_args

    kwargs = parse_args(args or [])
    if ratio is not None:
        kwargs["ratio"] = ratio
    return kwargs


def input_options(input_: Optional[List[str]], size: Optional[int], input_data: Optional[str] = None) -> dict:
    """``--input``/``--size``/``--input-data`` → ``input_size=`` and ``input_data=`` of the API."""
    from archscope.errors import UsageError

    given = [name for name, v in (("--input", input_), ("--size", size), ("--input-data", input_data)) if v]
    if len(given) > 1:
        raise UsageError(f"give either {' or '.join(given)}, not both")
    if input_data:
        from archscope.trace.inputs import load_input_data
        return {"input_size": None, "input_data": load_input_data(input_data)}
    if input_:
        return {"input_size": input_[0] if len(input_) == 1 else list(input_), "input_data": None}
    return {"input_size": size, "input_data": None}


def check_format(fmt: str) -> str:
    from archscope.errors import UsageError
    from archscope.report.formats import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format '{fmt}': use one of {', '.join(FORMATS)}")
    return fmt


def emit(rendered) -> None:
    if isinstance(rendered, str):
        sys.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")
    else:
        stdout.print(rendered)


def _view_command(view: str, doc: str):
    def command(
        model: ModelArg,
        input_: InputOpt = None,
        size: SizeOpt = None,
        input_data: InputDataOpt = None,
        batch: BatchOpt = None,
        depth: DepthOpt = 1,
        ratio: RatioOpt = None,
        arg: ArgOpt = None,
        fmt: FormatOpt = "table",
        device: DeviceOpt = "meta",
        train: TrainOpt = False,
        rf: RfOpt = False,
        engine: EngineOpt = "archscope",
        debug: DebugOpt = False,
    ):
        def body():
            from archscope.report import render
            from archscope.trace import trace

            check_format(fmt)
            if engine != "archscope":
                if engine != "torchinfo":
                    raise UsageError_(f"unknown --engine '{engine}': use archscope or torchinfo")
                if view != "summary":
                    raise UsageError_("--engine torchinfo applies to 'archscope summary' only")
                from archscope.report.engines import torchinfo_summary
                emit(torchinfo_summary(model, depth=depth, batch=batch, model_kwargs=model_kwargs(ratio, arg),
                                       **input_options(input_, size, input_data)))
                return
            t = trace(model, depth=depth, device=device, batch=batch, model_kwargs=model_kwargs(ratio, arg),
                      train=train, rf=rf, **input_options(input_, size, input_data))
            emit(render(t, fmt, view))

        run(debug, body)

    command.__doc__ = doc
    app.command(view)(command)


_view_command("shapes", "Output shape of every layer for one input.")
_view_command("params", "Parameters per layer: trainable/frozen, share of total, bytes at float32.")
_view_command("flops", "FLOPs and MACs per layer, share of total (one forward pass).")
_view_command("summary", "All columns, plus a totals panel.")


@app.command("check")
def check_(
    model: ModelArg,
    input_: InputOpt = None,
    size: SizeOpt = None,
    input_data: InputDataOpt = None,
    batch: BatchOpt = None,
    sizes: Annotated[Optional[str], typer.Option("--sizes", help="Also scan square sides A..B, e.g. 32..512.", show_default=False)] = None,
    ratio: RatioOpt = None,
    arg: ArgOpt = None,
    fmt: FormatOpt = "table",
    device: DeviceOpt = "meta",
    debug: DebugOpt = False,
):
    """Check that every Linear gets its in_features (and every conv its in_channels); explain a failure.

    Exit 0 when every check holds, 1 when any fails.
    """

    def body():
        from archscope.report.check import render_check
        from archscope.trace.check import check, parse_sizes

        check_format(fmt)
        span = parse_sizes(sizes) if sizes is not None else None
        report = check(model, batch=batch, device=device, sizes=span, model_kwargs=model_kwargs(ratio, arg),
                       **input_options(input_, size, input_data))
        emit(render_check(report, fmt))
        return 0 if report.ok else 1

    run(debug, body)


@app.command("memory")
def memory_(
    model: ModelArg,
    batch: Annotated[int, typer.Option("--batch", "-b", help="Batch size.")] = 1,
    optimizer: Annotated[str, typer.Option(help="adam | adamw | sgd | sgd-momentum: how much state per parameter.")] = "adam",
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast: inputs of convs/matmuls saved at 2 bytes.")] = False,
    fit: Annotated[Optional[str], typer.Option("--fit", help="A memory budget, e.g. 16GiB: print the largest batch that fits.", show_default=False)] = None,
    input_: InputOpt = None,
    size: SizeOpt = None,
    ratio: RatioOpt = None,
    arg: ArgOpt = None,
    fmt: FormatOpt = "table",
    debug: DebugOpt = False,
):
    """Memory of inference and of one training step: parameters, gradients, optimizer state, activations."""

    def body():
        from archscope.report.memory import render_memory
        from archscope.trace.memory import memory

        check_format(fmt)
        shape = input_options(input_, size)["input_size"]
        emit(render_memory(memory(model, batch=batch, optimizer=optimizer, amp=amp, input_size=shape, fit=fit,
                                  model_kwargs=model_kwargs(ratio, arg)), fmt))

    run(debug, body)


@app.command("compare")
def compare_(
    models: Annotated[List[str], typer.Argument(help="Two or more models: zoo names, tv:NAME, timm:NAME, file.py:factory.", show_default=False)],
    batch: Annotated[int, typer.Option("--batch", "-b", help="Batch size for FLOPs and memory.")] = 1,
    ratio: RatioOpt = None,
    arg: ArgOpt = None,
    fmt: FormatOpt = "table",
    debug: DebugOpt = False,
):
    """Models side by side: params, FLOPs, training-step FLOPs and memory, smallest side, first FC width, receptive field."""

    def body():
        from archscope.report.compare import render_compare
        from archscope.trace.compare import compare

        check_format(fmt)
        emit(render_compare(compare(models, batch=batch, model_kwargs=model_kwargs(ratio, arg)), fmt))

    run(debug, body)


@app.command("list")
def list_(
    pattern: Annotated[str, typer.Argument(help="Shell-style pattern, e.g. 'vgg*'; tv: or 'tv:res*' for torchvision, 'timm:*vit*' for timm.")] = "*",
    fmt: FormatOpt = "table",
    debug: DebugOpt = False,
):
    """The model zoo (or torchvision's / timm's models): name, default input, params, FLOPs, description."""

    def body():
        from archscope.report.zoo import zoo_rows, render_zoo

        check_format(fmt)
        emit(render_zoo(zoo_rows(pattern), fmt))

    run(debug, body)


@app.command("train")
def train_(
    model: ModelArg,
    epochs: Annotated[Optional[int], typer.Option(help="Passes over the training set. [default: 5]", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="The global batch. Default: the model's recipe (256 LeNet, 128 others).", show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate. Default: the recipe (0.02 LeNet, 0.002 NiN/GoogLeNet, 0.001 VGG, 0.0001 AlexNet).", show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam | sgd (momentum 0.9). Default adam.", show_default=False)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Default 0.", show_default=False)] = None,
    schedule: Annotated[Optional[str], typer.Option(help="none | cosine | onecycle. Default onecycle.", show_default=False)] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="Default 0.", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seeds the weights and the shuffles. [default: 0]", show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto (CUDA if present) | cpu | cuda. [default: auto]", show_default=False)] = None,
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="bf16 autocast. Default: on for CUDA.", show_default=False)] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    resize: Annotated[Optional[int], typer.Option(help="Input side. Default: the model's (224; 96 GoogLeNet; 28 LeNet).", show_default=False)] = None,
    limit_train: Annotated[Optional[int], typer.Option(help="Use only the first N training images.", show_default=False)] = None,
    limit_test: Annotated[Optional[int], typer.Option(help="Evaluate on the first N test images.", show_default=False)] = None,
    out: Annotated[Optional[str], typer.Option(help="Run directory (one run per folder). Default runs/MODEL-TIME.", show_default=False)] = None,
    resume: Annotated[Optional[str], typer.Option(help="Continue the run saved in this last.pt.", show_default=False)] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the four Fashion-MNIST IDX files.", show_default=False)] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch Fashion-MNIST through torchvision if it is not found.")] = False,
    nproc: Annotated[Optional[int], typer.Option("--nproc", help="Train with N processes on this machine (launches torchrun; DDP).", show_default=False)] = None,
    ratio: RatioOpt = None,
    arg: ArgOpt = None,
    debug: DebugOpt = False,
):
    """Train on Fashion-MNIST, GPU first; checkpoints every epoch and on Ctrl-C.

    Data is looked for in --data-dir, $ARCHSCOPE_DATA, ~/.cache/archscope, /usr/share/datasets/fashion-mnist.
    Several GPUs or machines: torchrun --nproc-per-node=N -m archscope train MODEL ... (or --nproc N here).
    """

    def body():
        from archscope.report.training import history_table
        from archscope.train import TrainConfig, resume_config, train

        if nproc is not None:
            return launch_torchrun(nproc)
        given_kwargs = model_kwargs(ratio, arg)
        if resume:
            cfg = resume_config(resume, {
                "device": device, "data_dir": data_dir, "compile": compile_ or None, "out": out, "epochs": epochs,
                "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay,
                "schedule": schedule, "label_smoothing": label_smoothing, "seed": seed, "amp": amp, "resize": resize,
                "limit_train": limit_train, "limit_test": limit_test, "model_kwargs": given_kwargs or None})
            if cfg.model != model:
                raise UsageError_(f"checkpoint {resume} is a run of '{cfg.model}', not '{model}'")
        else:
            cfg = TrainConfig(model=model, epochs=5 if epochs is None else epochs, batch_size=batch_size, lr=lr,
                              optimizer=optimizer, weight_decay=weight_decay, schedule=schedule,
                              label_smoothing=label_smoothing, seed=seed or 0, device=device or "auto", amp=amp,
                              compile=compile_, resize=resize, limit_train=limit_train, limit_test=limit_test,
                              out=out, data_dir=data_dir, download=download, model_kwargs=given_kwargs)
        result = train(cfg, console=err, resume=resume, handle_signals=True)
        from archscope.train.distributed import from_env
        if not from_env().main:
            return 130 if result.interrupted else 0
        if result.interrupted:
            return 130
        if result.history:
            stdout.print(history_table(result.history))
        stdout.print(f"best test accuracy {result.best_test_acc:.4f}; run saved in {result.run_dir} "
                     f"(metrics.jsonl, last.pt, best.pt{', curves.png' if result.plot_note is None else ''})")
        if result.plot_note:
            stdout.print(f"note: {result.plot_note}")

    run(debug, body)


def launch_torchrun(nproc: int) -> int:
    """``archscope train ... --nproc N`` → ``torchrun --standalone --nproc-per-node N -m archscope train ...``."""
    import os
    import subprocess

    if nproc < 1:
        raise UsageError_("--nproc must be >= 1")
    if "WORLD_SIZE" in os.environ:
        raise UsageError_("--nproc launches torchrun itself: leave it out when running under torchrun")
    argv = list(sys.argv[1:])
    i = next(i for i, a in enumerate(argv) if a == "--nproc" or a.startswith("--nproc="))
    del argv[i: i + (1 if "=" in argv[i] else 2)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "archscope", *argv]
    err.print(f"launching: torchrun --standalone --nproc-per-node={nproc} -m archscope {' '.join(argv)}",
              highlight=False, markup=False)
    return subprocess.run(command).returncode


@app.command("eval")
def eval_(
    model: ModelArg,
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="A last.pt or best.pt written by 'archscope train'.")],
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 256,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    resize: Annotated[Optional[int], typer.Option(help="Input side. Default: the checkpoint's.", show_default=False)] = None,
    limit_test: Annotated[Optional[int], typer.Option(help="Evaluate on the first N test images.", show_default=False)] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the four Fashion-MNIST IDX files.", show_default=False)] = None,
    ratio: RatioOpt = None,
    arg: ArgOpt = None,
    fmt: FormatOpt = "table",
    debug: DebugOpt = False,
):
    """Test accuracy of a checkpoint, per class, with the confusion matrix."""

    def body():
        import json as json_

        from archscope.report.training import evaluation_view
        from archscope.train.session import evaluate_checkpoint

        check_format(fmt)
        result = evaluate_checkpoint(model, checkpoint, model_kwargs(ratio, arg), device=device, batch_size=batch_size,
                                     resize=resize, limit_test=limit_test, data_dir=data_dir)
        if fmt == "json":
            emit(json_.dumps(result.to_dict(), indent=2))
        else:
            stdout.print(evaluation_view(result))

    run(debug, body)


def _version(value: bool):
    if value:
        from archscope import __version__
        print(f"archscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
):
    """See what a CNN does to a tensor: shapes, parameters, FLOPs, shape-mismatch diagnosis; train on Fashion-MNIST."""


def main() -> None:
    """Entry point. Click's own parse errors (``--size abc``) become one line and exit 2,
    like every other usage error, instead of a boxed multi-line message."""
    try:
        from typer._click import exceptions  # typer 0.2x carries its own copy of click
    except ImportError:
        from click import exceptions

    try:
        code = app(standalone_mode=False)
    except exceptions.NoArgsIsHelpError:
        code = 0  # the help has been printed
    except exceptions.UsageError as error:
        command = error.ctx.command_path if error.ctx else "archscope"
        err.print(f"error: {error.format_message()} (see '{command} --help')", style="red", highlight=False, markup=False)
        code = 2
    except typer.Abort:
        err.print("interrupted", style="red")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
