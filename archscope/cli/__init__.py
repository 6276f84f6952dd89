"""The ``archscope`` command line: ``app`` (the Typer app, in ``app.py``), its commands
(``inspect.py``, ``train.py``, registered by importing them) and ``main``."""
from archscope.cli import inspect, train  # noqa: F401 - importing them registers the commands
from archscope.cli.app import app, main

__all__ = ["app", "main"]
