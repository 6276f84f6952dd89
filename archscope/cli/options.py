"""Every CLI option, defined once, and the composer that gives each command its set.

A command names the groups it takes (``MODEL``, ``INPUT``, ``BUILD``, ``FORMAT``...) plus its own
options; ``command()`` builds the Typer signature from them and calls the body with one dict of
values. So ``--input`` or ``--format`` reads the same on every command, and a new command
cannot forget ``--debug``.
"""
from __future__ import annotations

import inspect
from typing import Annotated, Any, Callable, Dict, List, Optional, Sequence

import typer

from archscope.errors import UsageError

MODEL_HELP = (
    "A zoo name (see 'archscope list'), tv:NAME (torchvision), timm:NAME, hf:TYPE or hf:path/config.json "
    "(transformers, from a config, no weights), path/to/file.py:factory, or package.module:attr. A file or module is imported and run as Python code: only load code you trust."
)


class Opt:
    """One option: its parameter name, annotation (type + typer.Option/Argument) and default."""

    def __init__(self, name: str, annotation: Any, default: Any = inspect.Parameter.empty):
        self.name, self.annotation, self.default = name, annotation, default

    def parameter(self) -> inspect.Parameter:
        return inspect.Parameter(self.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=self.default,
                                 annotation=self.annotation)


def flag(name: str, help: str, default: bool = False) -> Opt:
    # metavar "": a flag takes no value (typer would show <bool>, and then refuse --train true)
    return Opt(name.lstrip("-").replace("-", "_"), Annotated[bool, typer.Option(name, help=help, metavar="")], default)


MODEL = [Opt("model", Annotated[str, typer.Argument(help=MODEL_HELP, show_default=False)])]
INPUT = [
    Opt("input_", Annotated[Optional[List[str]], typer.Option(
        "--input", "-i", show_default=False,
        help="Input shape with optional dtype, one per positional input of forward: 1x1x224x224, 1x128:int64 "
             "(repeatable).")], None),
    Opt("size", Annotated[Optional[int], typer.Option(
        "--size", "-s", show_default=False,
        help="Image side; the rank, channels from the model's first conv, batch 1.")], None),
]
INPUT_DATA = [Opt("input_data", Annotated[Optional[str], typer.Option(
    "--input-data", show_default=False,
    help="A tensor, tuple (positional inputs) or dict (keyword inputs) saved with torch.save, fed as is.")], None)]
BATCH = [Opt("batch", Annotated[Optional[int], typer.Option("--batch", "-b", help="Batch size.", show_default=False)],
             None)]
BATCH_1 = [Opt("batch", Annotated[Optional[int], typer.Option(
    "--batch", "-b", help="Batch size. Default: the batch of --input, else 1.", show_default=False)], None)]
DEPTH = [Opt("depth", Annotated[int, typer.Option("--depth", "-d", help="1 = the model's children, 2 = one level "
                                                                        "deeper, ...")], 1)]
BUILD = [
    Opt("ratio", Annotated[Optional[int], typer.Option(
        "--ratio", "-r", help="VGG: divide channel counts and FC width by R.", show_default=False)], None),
    Opt("arg", Annotated[Optional[List[str]], typer.Option(
        "--arg", "-a", help="Builder keyword argument key=value (repeatable).", show_default=False)], None),
]
FORMAT = [Opt("fmt", Annotated[str, typer.Option("--format", "-f", help="table | json | csv | markdown.")], "table")]
DEVICE = [Opt("device", Annotated[str, typer.Option("--device", help="meta (no weights, fastest) | cpu | cuda.")],
              "meta")]
DEBUG = [flag("--debug", "Show Python tracebacks.")]


def command(app: typer.Typer, name: str, *groups: Sequence[Opt], run: Callable[[bool, Callable], None]):
    """Register ``body(options: dict)`` as command ``name`` with the options of ``groups``
    (``DEBUG`` is always added). The body's docstring is the command's help."""

    def register(body: Callable[[Dict[str, Any]], Optional[int]]):
        opts = [o for group in groups for o in group] + DEBUG

        def entry(**values):
            run(values["debug"], lambda: body(values))

        entry.__signature__ = inspect.Signature([o.parameter() for o in opts])
        entry.__doc__ = body.__doc__
        entry.__name__ = body.__name__
        app.command(name, cls=Command)(entry)
        return body

    return register


class Command(typer.core.TyperCommand):
    """Typer's command, whose ``--help`` shows no ``<bool>`` beside it (a flag takes no value)."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


# --------------------------------------------------------------------------- values → API arguments

def model_kwargs(values: Dict[str, Any]) -> dict:
    """``--ratio``/``--arg`` → the builder's keyword arguments."""
    from archscope.models import parse_args

    kwargs = parse_args(values.get("arg") or [])
    if values.get("ratio") is not None:
        kwargs["ratio"] = values["ratio"]
    return kwargs


def input_options(values: Dict[str, Any]) -> dict:
    """``--input``/``--size``/``--input-data`` → ``input_size=`` and ``input_data=`` of the API."""
    input_, size, input_data = values.get("input_"), values.get("size"), values.get("input_data")
    given = [name for name, v in (("--input", input_), ("--size", size), ("--input-data", input_data)) if v]
    if len(given) > 1:
        raise UsageError(f"give either {' or '.join(given)}, not both")
    if input_data:
        from archscope.inputs import load_input_data
        return {"input_size": None, "input_data": load_input_data(input_data)}
    if input_:
        return {"input_size": input_[0] if len(input_) == 1 else list(input_), "input_data": None}
    return {"input_size": size, "input_data": None}
