"""The interactive page: one forward at the finest grain, folded any way in the browser.

Numbers are checked against torchvision's own architecture tables and PyTorch's FlopCounterMode
on a real CPU forward; the page is driven in Debian's Chromium (never a downloaded browser)."""
import shutil

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archscope.analysis.explore import explore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")


def _names(explorer, keys):
    named = []
    for k in keys:
        if k in explorer.calls:
            named.append(explorer.calls[k].path)
        elif k.startswith("group:"):
            g = next(g for g in explorer.groups if g.id == k)
            named.append(tuple(explorer.calls[m].path for m in g.members))
        else:
            named.append(next(n.name for n in explorer.nodes if n.id == k))
    return named


def test_resnet50s_repeated_bottlenecks_fold_as_torchvision_builds_them():
    # torchvision builds ResNet-50 with [3, 4, 6, 3] Bottlenecks; each stage's first one downsamples
    # (other shapes, a downsample branch), the rest are identical: runs of 2, 3, 5 and 2.
    e = explore("tv:resnet50")
    runs = {g.parent: [e.calls[m].path for m in g.members] for g in e.groups}
    assert runs == {f"layer{i}#0": [f"layer{i}.{j}" for j in range(1, n)] for i, n in zip(range(1, 5), (3, 4, 6, 3))}
    model = torchvision_resnet50()
    for g in e.groups:  # a run's parameters are its members' own
        stage = getattr(model, e.calls[g.parent].path)
        assert g.params == sum(p.numel() for b in list(stage.children())[1:] for p in b.parameters())


def torchvision_resnet50():
    import torchvision

    return torchvision.models.resnet50()


def test_opening_a_call_draws_its_children_and_closing_it_folds_them_back():
    e = explore("tv:resnet50")
    top, _ = e.view(set())
    assert _names(e, [k for k in top if k in e.calls]) == ["layer1", "layer2", "layer3", "layer4"]
    opened, _ = e.view({"layer1#0"})
    children = [c for c in _names(e, opened) if isinstance(c, tuple) or str(c).startswith("layer1")]
    assert children == ["layer1.0", ("layer1.1", "layer1.2")]  # the first block, then the run of two
    both, edges = e.view({"layer1#0", "group:layer1.1#0"})
    assert [c for c in _names(e, both) if str(c).startswith("layer1")] == ["layer1.0", "layer1.1", "layer1.2"]
    assert ("layer1.0#0", "layer1.1#0") in edges and ("layer1.1#0", "layer1.2#0") in edges
    assert e.view(set()) == (top, e.view(set())[1])


def test_a_calls_flops_are_pytorchs_on_a_real_forward_of_that_block():
    import torchvision

    model = torchvision.models.resnet18().eval()
    e = explore(model, input_size=(1, 3, 224, 224))
    x = torch.randn(1, 3, 224, 224)
    inputs = {}
    hooks = [getattr(model, name).register_forward_pre_hook(lambda m, a, name=name: inputs.setdefault(name, a[0]))
             for name in ("layer2", "layer3")]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for name in ("layer2", "layer3"):
        with FlopCounterMode(display=False) as counted, torch.no_grad():
            getattr(model, name)(inputs[name])
        assert e.calls[f"{name}#0"].flops == counted.get_total_flops()
        assert e.calls[f"{name}#0"].params == sum(p.numel() for p in getattr(model, name).parameters())


def test_gpt2s_mask_check_is_a_side_branch_and_its_blocks_one_run():
    e = explore("hf:gpt2", n_layer=4, n_embd=64, n_head=4, vocab_size=1000)
    [run] = e.groups
    assert [e.calls[m].path for m in run.members] == [f"h.{i}" for i in range(4)]  # config.n_layer
    dead = [n for n in e.nodes if n.id in e.dead]
    assert dead and all(n.kind == "op" for n in dead)
    # Each side-branch node is fed by the attention mask alone, never by the token ids.
    feeds = {}
    for edge in e.edges:
        feeds.setdefault(edge.target, set()).add(edge.source)
    by_id = {n.id: n for n in e.nodes}

    def roots(node_id, seen=()):
        sources = feeds.get(node_id, set())
        if not sources:
            return {by_id[node_id].name}
        return set().union(*(roots(s, seen + (node_id,)) for s in sources if s not in seen))

    assert all(roots(n.id) == {"input attention_mask"} for n in dead)


def test_a_32_layer_llama_folds_into_one_run_of_32():
    e = explore("hf:llama", num_hidden_layers=32, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                num_key_value_heads=4, vocab_size=256)
    [run] = e.groups
    assert len(run.members) == 32
    top, _ = e.view(set())
    assert len(top) < 15  # embeddings, the run, the norm, the head: readable at a glance


def test_a_failing_model_keeps_what_ran_and_names_the_failing_layer():
    e = explore("alexnet", input_size=(1, 1, 100, 100))
    failed = next(n for n in e.nodes if n.id == e.failed)
    assert failed.name == "fc.0" and failed.type == "Linear"
    assert "in_features=6400" in e.failure and "1024" in e.failure  # the book's 6400; 256×2×2 arrives
    assert [n.name for n in e.nodes if n.kind == "module"][-1] == "fc.0"  # nothing after it ran


# --------------------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("profile")),
                                                       executable_path=CHROMIUM, args=ARGS,
                                                       viewport={"width": 1400, "height": 1000})
        yield context
        context.close()


def _open(browser, path):
    page = browser.new_page()
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri())
    page.wait_for_function("window.archscope && window.archscope.ready", timeout=60_000)
    return page, errors, requests


def _visible(page):
    return page.evaluate("window.archscope.visible")


@needs_browser
def test_the_page_opens_and_closes_blocks_in_place(tmp_path, cli, browser):
    path = tmp_path / "r50.html"
    assert cli("report", "tv:resnet50", "-o", path).exit_code == 0
    page, errors, requests = _open(browser, path)
    start = _visible(page)
    nodes = page.locator("#canvas g.node").count()
    assert "layer1#0" in start and nodes == len(start)
    page.click('#canvas g.node[data-key="layer1#0"]')
    page.wait_for_function("window.archscope.visible.indexOf('layer1.0#0') >= 0")
    opened = _visible(page)
    assert "layer1#0" not in opened and {"layer1.0#0", "group:layer1.1#0"} <= set(opened)
    assert page.locator("#canvas g.node").count() == len(start) + 1  # one node became two
    page.locator('#canvas g.cluster[data-key="layer1#0"] > text').first.click()
    page.wait_for_function("window.archscope.visible.indexOf('layer1#0') >= 0")
    assert _visible(page) == start
    page.screenshot(path=str(tmp_path / "shot.png"))
    page.close()
    assert errors == [] and requests == []


@needs_browser
def test_search_reveals_a_nested_layer_and_the_colour_selector_repaints(tmp_path, cli, browser):
    path = tmp_path / "r50.html"
    assert cli("report", "tv:resnet50", "-o", path).exit_code == 0
    page, errors, requests = _open(browser, path)
    page.fill("#search", "layer3.4.conv2")
    page.press("#search", "Enter")
    page.wait_for_selector("#canvas g.node.hit")
    hit = page.locator("#canvas g.node.hit")
    assert hit.count() == 1 and "layer3.4.conv2" in hit.text_content()  # revealed: layer3 and its run opened
    assert "layer3.4.conv2" in page.inner_text("#details") and "FLOPs (training step)" in page.inner_text("#details")
    fill = 'document.querySelector(\'#canvas g.node[data-key="layer4#0"] path\').getAttribute("fill")'
    before = page.evaluate(fill)
    page.select_option("#color-by", "params")
    page.wait_for_function(f"{fill} !== {before!r}")
    assert page.evaluate(fill) != before  # layer4 holds 58% of the params and 22% of the FLOPs
    assert "params of the nodes drawn" in page.inner_text("#legend")
    page.close()
    assert errors == [] and requests == []


@needs_browser
def test_a_failing_models_page_shows_the_red_node_and_the_fix(tmp_path, cli, browser):
    path = tmp_path / "alexnet.html"
    r = cli("report", "alexnet", "--input", "1x1x100x100", "-o", path)
    assert r.exit_code == 2 and "in_features=6400" in r.stderr and path.exists()
    page, errors, requests = _open(browser, path)
    red = page.locator('#canvas g.node path[stroke="#c0262d"]')
    assert red.count() == 1
    assert "fc.0" in page.text_content("#canvas") and "failed here" in page.text_content("#canvas")
    assert "fix: set in_features=1024" in page.inner_text("#details")
    page.close()
    assert errors == [] and requests == []


@needs_browser
def test_the_same_view_works_in_an_executed_notebooks_html(tmp_path, browser):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import archscope\narchscope.report('googlenet')"),
                nbformat.v4.new_code_cell("archscope.graph('tv:resnet18')")]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = [o for c in nb.cells for o in c.outputs if o.output_type == "execute_result"]
    assert len(outputs) == 2 and all('class="archscope"' in o["data"]["text/html"] for o in outputs)
    body, _ = nbconvert.HTMLExporter(template_name="basic").from_notebook_node(nb)
    path = tmp_path / "notebook.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{body}</body></html>")
    page, errors, requests = _open(browser, path)
    page.wait_for_function("document.querySelectorAll('.archscope').length === 2 && "
                           "[].every.call(document.querySelectorAll('.archscope'), function (r) { "
                           "return r.archscope && r.archscope.ready; })")
    roots = page.locator(".archscope")
    first = roots.nth(0).evaluate("r => r.archscope.visible.slice()")
    roots.nth(1).locator('#canvas g.node[data-key="layer1#0"]').click()
    page.wait_for_function("document.querySelectorAll('.archscope')[1].archscope.visible.indexOf('layer1#0') < 0")
    assert roots.nth(0).evaluate("r => r.archscope.visible.slice()") == first  # each output is its own view
    assert "b3#0" in first
    page.close()
    assert errors == [] and requests == []


@needs_browser
def test_a_table_row_finds_its_node_and_a_node_its_row(tmp_path, cli, browser):
    path = tmp_path / "googlenet.html"
    assert cli("report", "googlenet", "-o", path).exit_code == 0
    page, errors, requests = _open(browser, path)
    page.click('#layers tr[data-path="b3"]')  # open b3's row, then click its first block's row
    page.click('#layers tr[data-path="b3.0"]')
    page.wait_for_function("window.archscope.visible.indexOf('b3.0#0') >= 0")
    node = page.locator('#canvas g.node[data-key="b3.0#0"]')
    assert "selected" in node.get_attribute("class") and "b3.0" in page.inner_text("#details")
    page.click('#canvas g.node[data-key="b5#0"]')  # and back: a node's row is opened and marked in the table
    row = page.locator('#layers tr[data-path="b5"]')
    assert "selected" in row.get_attribute("class") and row.is_visible()
    page.close()
    assert errors == [] and requests == []
