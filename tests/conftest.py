import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")


def conv_side(side, kernel, stride=1, padding=0):
    """The conv/pool output side, written out here independently of archscope."""
    return (side + 2 * padding - kernel) // stride + 1


class Result:
    def __init__(self, code, stdout, stderr):
        self.exit_code, self.stdout, self.stderr = code, stdout, stderr


@pytest.fixture
def cli():
    """Run the CLI in-process; stdout and stderr kept apart."""
    from archscope.cli import app

    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always keeps them apart
        runner = CliRunner()

    def invoke(*args):
        r = runner.invoke(app, [str(a) for a in args])
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Result(r.exit_code, r.stdout, r.stderr)

    return invoke


def run_cli(*args, timeout=120, **kwargs):
    """Run ``python -m archscope`` in a subprocess (for start-up and signal tests)."""
    return subprocess.run([sys.executable, "-m", "archscope", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), **kwargs)
