"""The Typer app, the consoles, and how a command body runs: a user's mistake becomes one line
on stderr and an exit code (2 usage, 1 failure); ``--debug`` shows the traceback.

Nothing heavy (torch, torchvision) is imported until a command runs, so ``--help`` is fast.
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console

from archscope.errors import ArchscopeError

HELP = "See what a CNN does to a tensor: shapes, parameters, FLOPs, shape-mismatch diagnosis; train on Fashion-MNIST."

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, soft_wrap=True)
_output = [None]  # the real stdout while a command body runs (its own prints go to stderr)


def _stdout():
    return _output[0] or sys.stdout


def run(debug: bool, action: Callable[[], Optional[int]]) -> None:
    """Run a command body; its return value is the exit code. Whatever the user's code prints (at
    import, while building, in a forward) goes to stderr: stdout carries archscope's output only,
    so ``-f json`` and ``-f csv`` stay machine-readable."""
    _output[0] = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            code = action()
    except ArchscopeError as error:
        if debug:
            traceback.print_exc()
        err.print(f"error: {error}", style="red", highlight=False, markup=False)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", style="red")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as error:  # noqa: BLE001 - a bug of ours: still one line unless --debug
        if debug:
            traceback.print_exc()
        err.print(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)",
                  style="red", highlight=False, markup=False)
        raise typer.Exit(1) from None
    finally:
        _output[0] = None
    raise typer.Exit(code or 0)


def emit(rendered) -> None:
    """A rendered result on stdout: text as is, a rich renderable through a console of the
    terminal's width, or COLUMNS when it is set; other piped output is 160 wide, so a table
    written to a file is not squeezed into 80 columns."""
    out = _stdout()
    if isinstance(rendered, str):
        out.write(rendered if rendered.endswith("\n") else rendered + "\n")
        out.flush()
    else:
        tty = hasattr(out, "isatty") and out.isatty()
        Console(file=out, width=None if tty or os.environ.get("COLUMNS") else 160).print(rendered)


def _version(value: bool):
    if value:
        from archscope import __version__
        print(f"archscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                          help="Print the version and exit.")] = False,
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
        err.print(f"error: {error.format_message()} (see '{command} --help')", style="red", highlight=False,
                  markup=False)
        code = 2
    except typer.Abort:
        err.print("interrupted", style="red")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
