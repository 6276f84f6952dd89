"""The README's examples are golden files: each command shown with its output is run and its
output compared with the README's block, line by line. After an intended change,

    ARCHSCOPE_UPDATE_GOLDEN=1 pytest tests/test_readme.py

rewrites the README's blocks from the real output (and fails, naming them; review the diff).
The Python API block's ``# value`` comments are checked by evaluating their line.

Training output: the loss and accuracy columns depend on the machine (CPU kernels and thread
counts change the last digits), the times and img/s always do; the test compares the table's
shape and reruns nothing else. Outputs are made at 160 columns, as piped output is by default.
"""
import ast
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

README = os.path.join(ROOT, "README.md")
UPDATE = os.environ.get("ARCHSCOPE_UPDATE_GOLDEN") == "1"
COMMAND = re.compile(r"^`(archscope [^`]+)`")


def _code(intro):
    """The exit code a block's sentence promises: 1 where it says "(exit code 1)", else 0."""
    return 1 if any("exit code 1" in line for line in intro) else 0


def examples(lines):
    """(command, first line, last line + 1, kind, exit code) of every block that shows a command's output.
    kind: "text" (a ``` block after the command's line, or one starting with ``$ command``),
    "markdown" (a table after a line naming a ``-f markdown`` command)."""
    found = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line == "```" and i + 1 < len(lines) and lines[i + 1].startswith("$ archscope "):
            end = lines.index("```", i + 1)
            found.append((lines[i + 1][2:], i + 2, end, "text", _code(lines[max(i - 3, 0):i])))
            i = end + 1
            continue
        match = COMMAND.match(line) or re.search(r"\(`(archscope [^`]+-f markdown)`\)", line)
        if match:
            j = i + 1
            while j < len(lines) and lines[j] and not lines[j].startswith(("```", "|")):
                j += 1  # the sentence goes on
            while j < len(lines) and not lines[j]:
                j += 1
            if j < len(lines) and lines[j] == "```" and "-f markdown" not in match.group(1):
                end = lines.index("```", j + 1)
                found.append((match.group(1), j + 1, end, "text", _code(lines[i:j])))
                i = end + 1
                continue
            if j < len(lines) and lines[j].startswith("|") and "-f markdown" in match.group(1):
                end = j
                while end < len(lines) and (lines[end].startswith("|") or not lines[end].strip()
                                            and end + 1 < len(lines) and lines[end + 1].startswith(("_", "- "))
                                            or lines[end].startswith(("_", "- "))):
                    end += 1
                found.append((match.group(1), j, end, "markdown", _code(lines[i:j])))
                i = end
                continue
        i += 1
    return found


def run(command):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    args = shlex.split(command)[1:]
    done = subprocess.run([sys.executable, "-m", "archscope", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return done.returncode, lines


LINES = open(README, encoding="utf-8").read().splitlines()
EXAMPLES = examples(LINES)


def test_the_readme_has_its_examples():
    commands = [c for c, *_ in EXAMPLES]
    assert len(commands) >= 10, commands
    assert any(c.startswith("archscope shapes vgg") for c in commands)


rewritten = []


@pytest.mark.parametrize("command, start, end, kind, expected_code", EXAMPLES, ids=[c for c, *_ in EXAMPLES])
def test_readme_example(command, start, end, kind, expected_code):
    if command.startswith("archscope train"):
        pytest.skip("training is compared by test_readme_training: its numbers depend on the machine")
    code, output = run(command)
    assert code == expected_code, (command, code)
    expected = LINES[start:end]
    if kind == "markdown":
        while expected and not expected[-1]:
            expected = expected[:-1]
    if UPDATE:
        if output != expected:
            _rewrite(start, end, output, command)
            pytest.fail(f"README block of '{command}' regenerated: review the diff")
        return
    assert output == expected, f"README block of '{command}' differs from the real output; " \
                               "regenerate with ARCHSCOPE_UPDATE_GOLDEN=1 pytest tests/test_readme.py"


def _rewrite(start, end, output, command):
    """Replace README lines start..end (as they were when the test module loaded) with ``output``."""
    current = open(README, encoding="utf-8").read().splitlines()
    # Earlier rewrites in this run may have moved the block: find it by its old text, after its command
    # (an empty block, a new example, is found by its command alone).
    old = LINES[start:end]
    anchors = [i + 1 for i, line in enumerate(current) if line in (f"$ {command}", f"`{command}`")
               or line.startswith(f"`{command}`")] or [0]
    for anchor in anchors:
        at = next((i for i in range(anchor, len(current) - len(old) + 1) if current[i:i + len(old)] == old), None)
        if at is not None:
            current[at:at + len(old)] = output
            break
    else:
        raise AssertionError("the README changed under the test: rerun it")
    with open(README, "w", encoding="utf-8") as f:
        f.write("\n".join(current) + "\n")


def api_lines():
    block = "\n".join(LINES).split("### Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    for line in block.splitlines():
        code, sep, comment = line.partition("  # ")
        if not sep or code.strip().startswith("#"):
            continue
        for text in (comment.strip(), comment.split(" (")[0].strip()):
            try:
                yield code.strip(), ast.literal_eval(text)
                break
            except (ValueError, SyntaxError):
                continue


@pytest.mark.parametrize("code, value", list(api_lines()), ids=[c for c, _ in api_lines()])
def test_python_api_comment(code, value):
    import archscope

    namespace = {"archscope": archscope}
    exec("t = archscope.trace('vgg', ratio=8)", namespace)
    got = eval(code, namespace)
    if isinstance(value, list) and Ellipsis in value:
        assert [got[0], got[-1]] == [value[0], value[-1]]
    else:
        assert got == value


def test_readme_training(tmp_path):
    """The LeNet example's table: three epochs, and the accuracy the README says it reaches."""
    i = next(i for i, line in enumerate(LINES) if line.startswith("`archscope train lenet --epochs 3"))
    block = LINES[LINES.index("```", i) + 1: LINES.index("```", LINES.index("```", i) + 1)]
    rows = [line for line in block if re.match(r"│\s+\d+ │", line)]
    assert len(rows) == 3
    best = re.search(r"best test accuracy (0\.\d+)", "\n".join(block))
    assert best and 0.84 <= float(best.group(1)) <= 0.90  # tests/test_train.py trains it and checks >= 0.84


def test_readme_torchinfo_bias_adds():
    """torchinfo counts a MAC per bias add: LeNet's are 6·28·28 + 16·10·10 + 120 + 84 + 10 = 6,518."""
    import torchinfo

    from archscope.models import get_model

    stats = torchinfo.summary(get_model("lenet"), input_size=(1, 1, 28, 28), verbose=0)
    assert stats.total_mult_adds == 416_520 + 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84 + 10
    assert "416,520 + 6,518 bias adds" in "\n".join(LINES)
