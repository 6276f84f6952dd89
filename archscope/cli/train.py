"""``archscope train`` and ``archscope eval``. Train's options are derived from ``TrainConfig``'s
fields (a field's ``help`` is its flag's help), so they are written in one place."""
from __future__ import annotations

import sys
import typing
from typing import Annotated, Optional

import typer

from archscope.cli.app import app, emit, err, run
from archscope.cli.options import BUILD, FORMAT, MODEL, Opt, command, model_kwargs
from archscope.errors import UsageError
from archscope.train.config import TrainConfig, cli_options


def _config_options():
    """One flag per ``TrainConfig`` field: ``--batch-size`` for ``batch_size``. Every one defaults
    to None (not given), so a resumed run can tell what was asked for from what was saved."""
    hints = typing.get_type_hints(TrainConfig)
    opts = []
    for f in cli_options():
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:  # an on-switch: --compile, --download
            opts.append(Opt(f.name, Annotated[bool, typer.Option(flag, help=f.metadata["help"], metavar="")], False))
            continue
        if kind == Optional[bool]:  # --amp/--no-amp: off, on, or the device's default
            flag = f"{flag}/--no-{flag[2:]}"
        base = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Union else kind
        opts.append(Opt(f.name, Annotated[Optional[base], typer.Option(
            flag, help=f.metadata["help"], show_default=False, **({"metavar": ""} if base is bool else {}))], None))
    return opts


RUN_OPTIONS = [
    Opt("resume", Annotated[Optional[str], typer.Option(help="Continue the run saved in this last.pt.",
                                                        show_default=False)], None),
    Opt("nproc", Annotated[Optional[int], typer.Option(
        "--nproc", help="Train with N processes on this machine (launches torchrun; DDP).", show_default=False)], None),
]


@command(app, "train", MODEL, _config_options(), RUN_OPTIONS, BUILD, run=run)
def train_(o):
    """Train on Fashion-MNIST, GPU first; checkpoints every epoch and on Ctrl-C.

    Data is looked for in --data-dir, $ARCHSCOPE_DATA, ~/.cache/archscope, /usr/share/datasets/fashion-mnist.
    Several GPUs or machines: torchrun --nproc-per-node=N -m archscope train MODEL ... (or --nproc N here).
    """
    from archscope.report.training import history_table
    from archscope.train import distributed, resume_config, train

    if o["nproc"] is not None:
        return distributed.launch(o["nproc"], sys.argv[1:], err)
    given = {f.name: o[f.name] for f in cli_options() if o[f.name] is not None and o[f.name] is not False}
    kwargs = model_kwargs(o)
    if o["resume"]:
        cfg = resume_config(o["resume"], {**given, "model": o["model"], "model_kwargs": kwargs or None})
    else:
        cfg = TrainConfig(model=o["model"], model_kwargs=kwargs, **given)
    result = train(cfg, console=err, resume=o["resume"], handle_signals=True)
    if not distributed.from_env().main or result.interrupted:
        return 130 if result.interrupted else 0
    if result.history:
        emit(history_table(result.history))
    emit(f"best test accuracy {result.best_test_acc:.4f}; run saved in {result.run_dir} "
                 f"(metrics.jsonl, last.pt, best.pt{', curves.png' if result.plot_note is None else ''})")
    if result.plot_note:
        emit(f"note: {result.plot_note}")


EVAL_OPTIONS = [
    Opt("model", Annotated[Optional[str], typer.Argument(
        help="The model (optional: the checkpoint names it), or the checkpoint itself.", show_default=False)], None),
    Opt("checkpoint", Annotated[Optional[str], typer.Option(
        "--checkpoint", "-c", help="A last.pt or best.pt written by 'archscope train'.", show_default=False)], None),
    Opt("batch_size", Annotated[int, typer.Option(help="Evaluation batch size.")], 256),
    Opt("device", Annotated[str, typer.Option(help="auto | cpu | cuda.")], "auto"),
    Opt("resize", Annotated[Optional[int], typer.Option(help="Input side. Default: the checkpoint's.",
                                                        show_default=False)], None),
    Opt("limit_test", Annotated[Optional[int], typer.Option(help="Evaluate on the first N test images.",
                                                            show_default=False)], None),
    Opt("data_dir", Annotated[Optional[str], typer.Option(help="Folder with the four Fashion-MNIST IDX files.",
                                                          show_default=False)], None),
]


@command(app, "eval", EVAL_OPTIONS, BUILD, FORMAT, run=run)
def eval_(o):
    """Test accuracy of a checkpoint, per class, with the confusion matrix."""
    from archscope.report import check_format, render
    from archscope.train.evaluate import evaluate_checkpoint

    check_format(o["fmt"])
    model, checkpoint = o["model"], o["checkpoint"]
    if checkpoint is None and model is not None and model.endswith((".pt", ".pth")):
        model, checkpoint = None, model  # archscope eval runs/lenet-.../best.pt
    if checkpoint is None:
        raise UsageError("name the checkpoint to evaluate: archscope eval runs/RUN/best.pt (or --checkpoint FILE)")
    result = evaluate_checkpoint(model, checkpoint, model_kwargs(o), device=o["device"], batch_size=o["batch_size"],
                                 resize=o["resize"], limit_test=o["limit_test"], data_dir=o["data_dir"])
    emit(render(result, o["fmt"]))
