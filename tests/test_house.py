"""The layers stay one-way: no import cycle inside archscope/ (lazy imports inside functions
included), and no lower layer imports a higher one. Read from the source with ``ast``."""
import ast
import os
import subprocess
import sys
import warnings

import pytest
from torch import nn

from archscope import trace

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "archscope")

# Each layer may import only the layers listed after it (and itself).
ALLOWED = {
    "cli": {"facade", "report", "train", "analysis", "models", "base"},  # cli reads __version__
    "report": {"train", "analysis", "models", "base"},
    "train": {"analysis", "models", "base"},
    "analysis": {"models", "base"},
    "models": {"base"},
    "base": {"base"},  # archscope/errors.py, inputs.py, quiet.py, dispatch.py
}


def module_files():
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
                yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


FILES = dict(module_files())


def imports(path):
    """Every archscope module a file imports, at module level or inside a function."""
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in FILES:
                name = name.rpartition(".")[0]
            if name.startswith("archscope"):
                yield name


def layer(module):
    parts = module.split(".")
    if module in ("archscope", "archscope.__main__"):
        return "facade"  # above every layer: it hands out the API and imports the report layer
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "base"


def graph():
    edges = {}
    for module, path in FILES.items():
        targets = set(imports(path)) - {module}
        if path.endswith("__init__.py"):  # a package re-exporting its own modules is not a dependency loop
            targets = {t for t in targets if not t.startswith(module + ".")}
        edges[module] = targets
    return edges


def find_cycles(edges):
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycle():
    cycles = find_cycles(graph())
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_ring_and_a_lazy_import():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    lazy = "def f():\n    from archscope.report import render\n"
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lazy_import_probe.py")
    try:
        with open(path, "w") as f:
            f.write(lazy)
        assert set(imports(path)) == {"archscope.report.render"}
    finally:
        os.remove(path)


def test_no_layer_imports_a_higher_one():
    wrong = [f"{module} imports {target}" for module, targets in graph().items() for target in targets
             if layer(module) != "facade" and layer(target) not in ALLOWED[layer(module)] | {layer(module)}]
    assert not wrong, wrong


def test_results_render_without_importing_the_report_layer_from_analysis():
    """A result shows its table once the façade is used; the analysis layer alone gives a repr."""
    code = ("import sys; from archscope.analysis import trace; t = trace('lenet'); "
            "print('archscope.report' in sys.modules, t.__rich__().startswith('<Trace lenet'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
    import archscope

    html = archscope.trace("lenet")._repr_html_()
    assert html.startswith("<pre") and "61,706" in html  # LeNet-5's parameters: 6·25+6 + 16·6·25+16 + ...


def test_a_users_own_warning_still_shows():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            warnings.warn("my model says hello", UserWarning, stacklevel=2)
            return self.fc(x)

    with pytest.warns(UserWarning, match="my model says hello"):
        trace(Noisy(), input_size=(1, 4))


def test_receptive_fields_say_where_they_stop():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Upsample(scale_factor=2), nn.Conv2d(4, 4, 3))
    t = trace(net, input_size=(1, 1, 16, 16), rf=True)
    assert t.row("0").rf["size"] == [3, 3]  # a 3×3 conv sees 3×3 pixels
    assert not t.row("2").rf and "aten.upsample_nearest2d" in t.note


def test_a_window_after_global_pooling_still_sees_the_whole_input():
    # A squeeze-excitation gate: pooled to 1×1, a 1×1 conv, multiplied back onto the map.
    class SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3)
            self.gate = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            x = self.conv(x)
            return x * self.gate(x.mean((2, 3), keepdim=True)).sigmoid()

    t = trace(SE(), input_size=(1, 4, 9, 9), depth=1, rf=True)
    assert t.row("gate").rf["whole_input"] is True and t.note is None
