"""archscope graph and archscope report, against expectations from outside archscope: the seed's
own ``named_children`` loop on a real CPU forward, the paper's Inception widths, ResNet's
skip connections, torchvision's stage depths, and a real browser for the page."""
import os
import re
import shutil
import sys

import pytest
import torch
from torch import nn

from archscope import graph, trace
from archscope.analysis.graph import graph as dataflow
from archscope.models import get_model

from conftest import one_line, run_cli

SIDES = {"lenet": 28, "alexnet": 224, "vgg": 224, "nin": 224, "googlenet": 96}
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (.ci/run installs it)")


def seed_loop(name):
    """What D2L prints: ``for blk in net: X = blk(X); print(blk.__class__.__name__, X.shape)``, on CPU."""
    model = get_model(name).eval()
    x = torch.zeros(1, 1, SIDES[name], SIDES[name])
    shapes = []
    with torch.no_grad():
        for child_name, block in model.named_children():
            x = block(x)
            shapes.append((child_name, list(x.shape)))
    return shapes


def chain(g):
    """The nodes from the input to the output when every node has one successor; fails on a branch."""
    node, names = g.node("input"), []
    while node.kind != "output":
        after = g.outgoing(node)
        assert len(after) == 1, f"{node.name} branches to {[n.name for n in after]}"
        edge = next(e for e in g.edges if e.source == node.id)
        names.append((node.name, edge.shapes))
        node = after[0]
    return names


@pytest.mark.parametrize("name", ["lenet", "vgg", "nin", "googlenet"])
def test_depth_1_is_the_seeds_loop(name):
    g = dataflow(name)
    expected = seed_loop(name)
    walked = chain(g)[1:]  # after the input node
    assert [n for n, _ in walked] == [n for n, _ in expected]
    assert [s for _, s in walked] == [[s] for _, s in expected]


def test_vgg_and_nin_shapes_on_the_edges():
    vgg = [s[0] for _, s in chain(dataflow("vgg"))[1:6]]
    assert vgg == [[1, 64, 112, 112], [1, 128, 56, 56], [1, 256, 28, 28], [1, 512, 14, 14], [1, 512, 7, 7]]
    nin = [s[0] for _, s in chain(dataflow("nin"))[1:]]
    assert nin == [[1, 96, 54, 54], [1, 96, 26, 26], [1, 256, 26, 26], [1, 256, 12, 12], [1, 384, 12, 12],
                   [1, 384, 5, 5], [1, 384, 5, 5], [1, 10, 5, 5], [1, 10, 1, 1], [1, 10]]


def test_alexnets_flatten_in_forward_is_a_node_of_its_own():
    walked = chain(dataflow("alexnet"))
    assert [n for n, _ in walked] == ["input", "conv", "view", "fc"]
    assert walked[2][1] == [[1, 6400]]  # 256 × 5 × 5 reach the first Linear


# GoogLeNet's Inception widths (Szegedy et al. 2015, table 1; D2L §8.4): c1, c2[1], c3[1], c4.
INCEPTIONS = {"b3.0": (64, 128, 32, 32), "b3.1": (128, 192, 96, 64), "b4.0": (192, 208, 48, 64),
              "b4.1": (160, 224, 64, 64), "b4.2": (128, 256, 64, 64), "b4.3": (112, 288, 64, 64),
              "b4.4": (256, 320, 128, 128), "b5.0": (256, 320, 128, 128), "b5.1": (384, 384, 128, 128)}


def paths_into(g, node, inside):
    """The number of distinct paths that reach ``node`` from outside the block ``inside``."""
    count = 0
    for before in g.incoming(node):
        if before.kind == "module" and before.name.startswith(inside + ".") or \
                before.kind == "op" and before.parent == inside:
            count += paths_into(g, before, inside)
        else:
            count += 1
    return count


def test_googlenet_depth_3_has_four_paths_into_each_concatenation():
    g = dataflow("googlenet", depth=3)
    cats = [n for n in g.nodes if n.name == "cat"]
    assert [c.parent for c in cats] == list(INCEPTIONS)
    for cat in cats:
        c1, c2, c3, c4 = INCEPTIONS[cat.parent]
        assert cat.output_shape[1] == c1 + c2 + c3 + c4
        assert len(g.incoming(cat)) == 4 and paths_into(g, cat, cat.parent) == 4
        entry = g.incoming(g.node(f"{cat.parent}.p1_1"))
        assert all(g.incoming(g.node(f"{cat.parent}.{p}")) == entry for p in ("p2_1", "p3_1", "p4_1"))


def test_resnet18_skip_connections():
    g = dataflow("resnet18", depth=3, collapse=False)
    adds = [n for n in g.nodes if n.name == "add"]
    assert len(adds) == 8  # two residual blocks in each of four stages
    for add in adds:
        sources = {n.name for n in g.incoming(add)}
        block = add.parent
        assert len(sources) == 2 and f"{block}.bn2" in sources
        downsampling = get_model("resnet18").get_submodule(block).conv3 is not None
        # the shortcut: the block's 1×1 conv when it downsamples, else what entered the block
        assert (f"{block}.conv3" in sources) == downsampling
        assert add.then == ["relu"]


def test_resnet50_collapses_each_stage_after_its_first_bottleneck():
    collapsed = dataflow("tv:resnet50", depth=2)
    full = dataflow("tv:resnet50", depth=2, collapse=False)
    for stage, n in (("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)):  # He et al. 2016, table 1
        first, rest = collapsed.node(f"{stage}.0"), collapsed.node(f"{stage}.1")
        assert first.count == 1 and rest.count == n - 1 and rest.type == "Bottleneck"
        assert rest.last_name == f"{stage}.{n - 1}"
    table = trace("tv:resnet50", depth=2, collapse=True)
    assert [r.type for r in table.rows if r.name.startswith("layer3")] == ["Bottleneck", "Bottleneck ×5"]
    assert table.row("layer3.1 … 5").flops == collapsed.node("layer3.1").flops
    assert sum(r.flops for r in table.rows) == table.totals.flops
    assert len(collapsed.nodes) < len(full.nodes)
    assert sum(n.flops for n in collapsed.nodes) == sum(n.flops for n in full.nodes) == collapsed.totals.flops
    assert sum(n.params for n in collapsed.nodes) == collapsed.totals.params == 25_557_032  # torchvision's num_params


def test_a_block_called_twice_and_two_inputs_draw_forward_edges():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(8, 8)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.block(self.block(x)))

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(5, 4)

        def forward(self, x, y):
            return self.a(x) + self.b(y)

    g = dataflow(Twice(), input_size=(1, 8), collapse=False)
    order = {n.id: i for i, n in enumerate(g.nodes)}
    assert all(order[e.source] < order[e.target] for e in g.edges)
    assert [n for n, _ in chain(g)] == ["input", "block", "block", "head"]
    assert [n.flops for n in g.nodes if n.name == "block"] == [2 * 8 * 8] * 2
    g = dataflow(TwoInputs(), input_size=[(1, 3), (1, 5)])
    add = g.node("add")
    assert {n.name for n in g.incoming(add)} == {"a", "b"}
    assert {n.name for n in g.incoming(g.node("a"))} == {"input 0"} and {n.name for n in g.incoming(g.node("b"))} == {"input 1"}


def test_dot_on_stdout_and_rendered_files(tmp_path, cli):
    r = cli("graph", "vgg", "--ratio", "8")
    assert r.exit_code == 0 and r.stdout.startswith("digraph archscope {") and 'label=" 1×8×112×112 "' in r.stdout
    assert cli("graph", "lenet", "-o", tmp_path / "l.dot").exit_code == 0
    assert (tmp_path / "l.dot").read_text().startswith("digraph")
    if shutil.which("dot"):
        assert cli("graph", "lenet", "-o", tmp_path / "l.svg", "--direction", "LR", "--color", "params").exit_code == 0
        assert "<svg" in (tmp_path / "l.svg").read_text()
        assert cli("graph", "lenet", "-o", tmp_path / "l.png").exit_code == 0
        assert (tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = cli("graph", "lenet", "--color", "rainbow")
    assert bad.exit_code == 2 and "unknown --color" in bad.stderr
    bad = cli("graph", "lenet", "-o", tmp_path / "l.jpg")
    assert bad.exit_code == 2 and ".svg, .png, .pdf or .dot" in bad.stderr


def test_without_graphviz_rendering_fails_in_one_line_and_dot_still_works(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # python, but no dot
    r = run_cli("graph", "lenet", "-o", tmp_path / "l.svg", env=env)
    assert r.returncode == 1 and "apt-get install graphviz" in one_line(r.stderr) and "brew install graphviz" in r.stderr
    r = run_cli("graph", "lenet", env=env)
    assert r.returncode == 0 and r.stdout.startswith("digraph")


@needs_dot
def test_python_api_renders_inline_svg():
    picture = graph("lenet")
    assert picture._repr_svg_().lstrip().startswith(("<?xml", "<svg")) and "Conv2d" in picture.svg()
    assert "lenet" in repr(picture)


# --------------------------------------------------------------------------- the page, in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def test_page_totals_equal_the_tables(tmp_path, cli):
    r = cli("report", "tv:resnet50", "-o", tmp_path / "r50.html")
    assert r.exit_code == 0
    text = (tmp_path / "r50.html").read_text()
    t = trace("tv:resnet50")
    assert f"<b>{t.totals.params:,}</b> params" in text and f"({t.totals.flops:,})" in text
    # Nothing to fetch: no external script, style or image (the inlined layout engine's licence names URLs;
    # the browser test below checks that the page makes no request at all).
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', text)
    assert text.count('class="kind-module') >= 150  # stages, blocks and convs: every depth on one page


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_page_in_a_real_browser(tmp_path, cli):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")
    from PIL import Image

    path = tmp_path / "googlenet.html"
    assert cli("report", "googlenet", "-o", path).exit_code == 0
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS,
                                                       viewport={"width": 1200, "height": 900})  # a fresh profile
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            children = page.locator('#layers tr[data-parent="r2"]')  # b3's blocks
            assert children.count() == 3 and not children.first.is_visible()
            page.click('#layers tr[data-id="r2"]')
            assert children.first.is_visible() and "b3.0" in children.first.inner_text()
            assert page.locator("svg").count() >= 1
            page.screenshot(path=str(tmp_path / "shot.png"))
        finally:
            browser.close()
    assert errors == []
    colors = Image.open(tmp_path / "shot.png").convert("L").getcolors(maxcolors=1 << 16)
    assert colors is not None and len(colors) > 20  # text, table rules, the diagram's shading: not blank


def test_resnet50_at_depth_3_folds_each_stages_later_bottlenecks_whole(cli, tmp_path):
    g = dataflow("tv:resnet50", depth=3)
    folded = {n.name: (n.count, n.last_name) for n in g.nodes if n.count > 1}
    # He et al. 2016, table 1: 3, 4, 6, 3 Bottlenecks; each stage's first (downsampling) one is drawn opened
    assert folded == {f"layer{i}.1": (n - 1, f"layer{i}.{n - 1}") for i, n in zip(range(1, 5), (3, 4, 6, 3))}
    assert g.node("layer3.0.conv2").type == "Conv2d"
    block = torchvision_block("layer3")
    assert g.node("layer3.1").params == sum(p.numel() for b in list(block.children())[1:] for p in b.parameters())
    assert sum(n.flops for n in g.nodes) == trace("tv:resnet50").totals.flops  # nothing lost in folding
    r = cli("graph", "tv:resnet50", "--depth", "3", "--no-collapse", "-o", tmp_path / "big.dot")
    assert r.exit_code == 0 and "173 nodes" in r.stderr and "--depth 2" in r.stderr
    assert "warning" not in cli("graph", "tv:resnet50", "--depth", "3", "-o", tmp_path / "small.dot").stderr


def torchvision_block(stage: str):
    import torchvision

    return getattr(torchvision.models.resnet50(), stage)


def test_a_failing_model_is_drawn_up_to_the_red_layer(cli, tmp_path):
    r = cli("graph", "alexnet", "--input", "1x1x100x100", "-o", tmp_path / "bad.dot")
    assert r.exit_code == 2 and "in_features=6400" in r.stderr
    dot = (tmp_path / "bad.dot").read_text()
    assert "failed here" in dot and 'color="#c0262d"' in dot and "fix: set in_features=1024" in dot
    assert "<b>conv</b>" in dot and "<b>output</b>" not in dot  # what ran; it never reached the output
