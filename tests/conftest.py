import io
import os
import subprocess
import sys
import tempfile

import pytest
from typer.testing import CliRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The whole suite (and every CLI it starts, which inherits the environment) writes its CPU
# calibration into a folder of its own, never the user's ~/.cache/archscope.
if "ARCHSCOPE_CACHE" not in os.environ or not os.environ["ARCHSCOPE_CACHE"].startswith(tempfile.gettempdir()):
    os.environ["ARCHSCOPE_CACHE"] = tempfile.mkdtemp(prefix="archscope-test-cache-")
SAMPLES = os.path.join(ROOT, "samples")


def quiet_console():
    """A rich console that prints into a string: training's output, kept off the test log."""
    from rich.console import Console

    return Console(file=io.StringIO())


def one_line(stderr):
    """The single non-empty line of an error on stderr; no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def skip_without_fashion_mnist():
    """Skip the calling test module when the real Fashion-MNIST is not installed."""
    from archscope.train import data

    if data._file_in(data.Path(data.DEBIAN_DIR), data.FILES["train_images"]) is None \
            and not os.environ.get("ARCHSCOPE_DATA"):
        pytest.skip("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist (.ci/run does)",
                    allow_module_level=True)


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
