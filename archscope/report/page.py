"""``archscope report``: one self-contained HTML page to explore a model.

Inline CSS, JS and SVG only (no network, no CDN: it opens from ``file://``): the model, input and
totals; the diagram; the module tree of every depth as an expandable table (click a row to
show its children); shapes, params, FLOPs and output memory per row; the check results, the
memory of a training step, the uncounted ops and notes.
"""
from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from archscope.analysis.api import trace, traces
from archscope.analysis.check import check
from archscope.analysis.explore import Explorer, explore
from archscope.analysis.hardware import parse_hardware
from archscope.analysis.memory import memory
from archscope.analysis.records import FLOPS_CONVENTION, LayerRow, Trace
from archscope.analysis.timing import time_model
from archscope.errors import ArchscopeError, UsageError, first_line
from archscope.inputs import shape_text
from archscope.report.text import calls_shape_text, human, human_bytes, share

MAX_DEPTH = 12
COLORS = ("flops", "params", "memory", "time", "none")
ASSETS = os.path.join(os.path.dirname(__file__), "assets")
VIZ_VERSION = "3.31.0"
VIZ_FILE = f"viz-global-{VIZ_VERSION}.js"  # @viz-js/viz's dist/viz-global.js: Graphviz in WebAssembly (MIT/EPL)
BYTES_PER_ELEMENT = 4  # output memory per row is counted at float32

STYLE = """
body{font:14px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.facts{color:#444} .facts b{color:#111} .note{color:#8a5a00;background:#fff6e0;padding:6px 10px;border-radius:4px}
.diagram{overflow:auto;max-height:640px;border:1px solid #e3e3e3;border-radius:6px;padding:8px;background:#fcfcfc}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
th{background:#f4f4f4;position:sticky;top:0} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.kind-self td,tr.kind-other td{color:#777;font-style:italic}
tr.parent{cursor:pointer} tr.parent td.name::before{content:'▸ ';color:#888} tr.parent.open td.name::before{content:'▾ '}
tr.leaf td.name::before{content:'  ';white-space:pre} tr[hidden]{display:none}
.bar{display:inline-block;height:8px;background:#de542c;border-radius:2px;vertical-align:middle;margin-left:6px}
.ok{color:#1a7f37} .bad{color:#c0262d} button{font-size:12px;margin-right:6px}
tr.selected td{background:#fff1c9}
.toolbar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0;font-size:13px}
.toolbar #hits{color:#666;min-width:4em} #legend{display:flex;gap:6px;align-items:center;color:#555}
#legend .ramp{display:inline-block;width:90px;height:10px;border:1px solid #ccc;
  background:linear-gradient(90deg,#ffffff,#f0b49f,#de542c)}
.explorer{display:flex;gap:10px;align-items:stretch}
#view{position:relative;flex:1;height:68vh;min-height:360px;overflow:hidden;border:1px solid #e3e3e3;border-radius:6px;
  background:#fcfcfc;cursor:grab} #view.dragging{cursor:grabbing}
#canvas{position:absolute;left:0;top:0;transform-origin:0 0}
#details{width:300px;flex:none;font-size:12.5px;border:1px solid #e3e3e3;border-radius:6px;padding:8px 10px;overflow:auto;
  max-height:68vh} #details h3{font-size:14px;margin:0 0 6px;word-break:break-all} #details th{background:none;position:static;
  color:#555;font-weight:normal;vertical-align:top;white-space:nowrap} #details td{word-break:break-word}
#canvas g.node.selected > path, #canvas g.node.selected > polygon, #canvas g.node.selected > ellipse{stroke:#1f6feb;stroke-width:3}
#canvas g.node.hit > path, #canvas g.node.hit > polygon, #canvas g.node.hit > ellipse{stroke:#e3a008;stroke-width:4}
#canvas g.cluster > text{cursor:pointer} #canvas g.cluster:hover > path{stroke:#1f6feb}
.failure{background:#fde8e8;padding:6px 10px;border-radius:4px}
"""

SCRIPT = """
(function(){
  var root = document.currentScript.closest('.archscope');
  var rows = Array.prototype.slice.call(root.querySelectorAll('#layers tbody tr'));
  var byParent = {};
  rows.forEach(function(r){ var p = r.getAttribute('data-parent') || ''; (byParent[p] = byParent[p] || []).push(r); });
  function hideBelow(id){ (byParent[id] || []).forEach(function(c){ c.hidden = true; c.classList.remove('open');
    hideBelow(c.getAttribute('data-id')); }); }
  function toggle(r){ var id = r.getAttribute('data-id'); var open = !r.classList.contains('open');
    r.classList.toggle('open', open);
    if (open) { (byParent[id] || []).forEach(function(c){ c.hidden = false; }); } else { hideBelow(id); } }
  rows.forEach(function(r){ if (r.classList.contains('parent')) { r.addEventListener('click', function(){ toggle(r); }); } });
  root.querySelector('#expand-all').addEventListener('click', function(){
    rows.forEach(function(r){ r.hidden = false; if (r.classList.contains('parent')) r.classList.add('open'); }); });
  root.querySelector('#collapse-all').addEventListener('click', function(){
    rows.forEach(function(r){ r.classList.remove('open'); r.hidden = !!r.getAttribute('data-parent'); }); });
})();
"""


def page_name(model: str) -> str:
    """``lenet.html``, ``tv-resnet50.html``, ``net-build.html`` for ``path/net.py:build``."""
    name = os.path.basename(str(model)).replace(".py:", "-").replace(":", "-")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".html"


def tree(traces: List[Trace]) -> List[Dict[str, Any]]:
    """Every row of every depth once, with its parent row's id (None at the top), in reading order."""
    rows: Dict[str, LayerRow] = {}
    for t in traces:
        for r in t.rows:
            rows.setdefault(r.name, r)
    ids = {name: f"r{i}" for i, name in enumerate(rows)}

    def parent_of(r: LayerRow) -> Optional[str]:
        if r.kind == "self":
            owner = r.name[: -len(" (self)")]
            return ids.get(owner)
        if r.kind == "other" or "." not in r.name:
            return None
        return ids.get(r.name.rpartition(".")[0])

    items = [{"id": ids[name], "parent": parent_of(r), "row": r} for name, r in rows.items()]
    children: Dict[Optional[str], List[Dict[str, Any]]] = {}
    for item in items:
        children.setdefault(item["parent"], []).append(item)
    ordered: List[Dict[str, Any]] = []

    def walk(parent: Optional[str], level: int) -> None:
        for item in children.get(parent, []):
            item["level"] = level
            item["has_children"] = bool(children.get(item["id"]))
            ordered.append(item)
            walk(item["id"], level + 1)

    walk(None, 0)
    return ordered


def _elements(shape) -> int:
    if shape is None:
        return 0
    if isinstance(shape, dict):
        return sum(_elements(s) for s in shape.values())
    if shape and isinstance(shape[0], (list, dict)):
        return sum(_elements(s) for s in shape)
    n = 1
    for d in shape:
        n *= d
    return n


def _layers_table(items: List[Dict[str, Any]], top: Trace) -> str:
    esc = html.escape
    tot = top.totals
    head = ("<tr><th>Layer</th><th>Type</th><th>Output shape</th><th class=n>Params</th><th class=n>% params</th>"
            "<th class=n>FLOPs</th><th class=n>% FLOPs</th><th class=n>Output memory (fp32)</th></tr>")
    body = []
    for item in items:
        r: LayerRow = item["row"]
        shape = "(own forward)" if r.kind in ("self", "other") else \
            calls_shape_text(r.output_shape, r.calls, r.call_shapes, shape_text) if r.kind == "module" else \
            shape_text(r.output_shape)
        width = 0 if not tot.flops else round(80 * r.flops / tot.flops)
        classes = [f"kind-{r.kind}", "parent" if item["has_children"] else "leaf"]
        attrs = f'data-id="{item["id"]}" data-path="{esc(r.name)}" data-depth="{item["level"]}"'
        if item["parent"]:
            attrs += f' data-parent="{item["parent"]}" hidden'
        indent = f"padding-left:{8 + 18 * item['level']}px"
        out_bytes = _elements(r.output_shape) * BYTES_PER_ELEMENT if r.kind in ("module", "container") else 0
        body.append(
            f'<tr class="{" ".join(classes)}" {attrs}><td class="name" style="{indent}">{esc(r.name)}</td>'
            f"<td>{esc(r.type)}</td><td>{esc(shape)}</td><td class=n>{r.params:,}</td>"
            f"<td class=n>{share(r.params, tot.params)}</td><td class=n>{human(r.flops)}"
            f'<span class="bar" style="width:{width}px"></span></td><td class=n>{share(r.flops, tot.flops)}</td>'
            f"<td class=n>{human_bytes(out_bytes) if out_bytes else '—'}</td></tr>")
    return f'<table id="layers"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _check_section(model: Any, kwargs: Dict[str, Any]) -> str:
    esc = html.escape
    try:
        report = check(model, **kwargs)
    except ArchscopeError as error:
        return f'<p class="note">check could not run: {esc(first_line(error))}</p>'
    rows = [f"<tr><td>{esc(c.name)}</td><td>{esc(c.type)}</td><td>{c.field}={c.expected}</td>"
            f"<td class=n>{'—' if c.arriving is None else c.arriving}</td><td>{esc(shape_text(c.arriving_shape))}</td>"
            f"<td class={'ok' if c.ok else 'bad'}>{'✓' if c.ok else ('not reached' if c.ok is None else '✗')}</td></tr>"
            for c in report.layers if c.field == "in_features" or c.ok is False]
    convs = sum(1 for c in report.layers if c.field == "in_channels" and c.ok)
    parts = [f'<p class="{"ok" if report.ok else "bad"}">{"all checks hold" if report.ok else "some checks fail"}'
             f"{f'; {convs} conv in_channels checks hold' if convs else ''}</p>"]
    if rows:
        parts.append("<table><thead><tr><th>Layer</th><th>Type</th><th>Expects</th><th class=n>Arriving</th>"
                     f"<th>Arriving shape</th><th>OK</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    else:
        parts.append("<p>The model has no Linear layers to check.</p>")
    if report.diagnosis:
        parts.append(f'<p class="bad">{esc(report.diagnosis.one_line())}</p>')
    return "".join(parts)


def _memory_section(model: Any, kwargs: Dict[str, Any]) -> str:
    if kwargs.get("input_data") is not None:
        return "<p>Not estimated for real input data (memory works from input shapes).</p>"
    try:
        report = memory(model, batch=kwargs.get("batch") or 1, input_size=kwargs.get("input_size"),
                        model_kwargs=kwargs.get("model_kwargs"))
    except ArchscopeError as error:
        return f'<p class="note">memory could not be estimated: {html.escape(first_line(error))}</p>'
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td class=n>{value:,}</td><td class=n>{human_bytes(value)}</td></tr>"
                   for label, value in report.lines())
    return (f"<p>Batch {report.batch}, optimizer {report.optimizer}.</p><table><thead><tr><th>Memory</th>"
            f"<th class=n>Bytes</th><th class=n></th></tr></thead><tbody>{rows}</tbody></table>")


def _path_of(name: str) -> str:
    return name[: -len(" (self)")] if name.endswith(" (self)") else name


def _by_prefix(rows, value, paths) -> Dict[str, float]:
    """Per path, the sum of ``value(row)`` over the deepest rows at it or below it."""
    totals = {p: 0.0 for p in paths}
    for r in rows:
        if r.kind == "other":
            continue
        name = _path_of(r.name)
        v = value(r)
        if not v:
            continue
        parts = name.split(".") if name else []
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in totals:
                totals[prefix] += v
    return totals


def _rf_text(r: LayerRow) -> Optional[str]:
    if not r.rf:
        return None
    size, jump = r.rf["size"], r.rf["jump"]

    def one(v) -> str:
        return str(v[0]) if len(set(v)) == 1 else "×".join(map(str, v))

    return f"{one(size)}{' (whole input)' if r.rf.get('whole_input') else ''}, jump {one(jump)}"


def _data(explorer: Explorer, trees: List[Trace], depth: int, direction: str, extras: Dict[str, Any]) -> Dict[str, Any]:
    """What the page's script folds and draws (see assets/explore.js)."""
    text = shape_text
    nodes = [{"id": n.id, "kind": n.kind, "name": n.name, "type": n.type, "in": text(n.input_shape) if n.input_shape
              is not None else "", "out": text(n.output_shape) if n.output_shape is not None else "",
              "params": n.params, "trainable": explorer.trainable.get(n.id, n.params), "flops": n.flops,
              "then": n.then, "anc": [c for c in n.ancestry if c in explorer.calls], "dead": n.id in explorer.dead}
             for n in explorer.nodes]
    edges = [[e.source, e.target, ", ".join(text(s) for s in e.shapes)] for e in explorer.edges]
    calls = {k: {"path": c.path, "type": c.type, "parent": c.parent, "params": c.params, "trainable": c.trainable,
                 "flops": c.flops, "call": int(k.rpartition("#")[2]),
                 "in": text(c.input_shape) if c.input_shape is not None else "",
                 "out": text(c.output_shape) if c.output_shape is not None else ""}
             for k, c in explorer.calls.items()}
    groups = []
    for g in explorer.groups:
        members = [explorer.calls.get(m) for m in g.members]
        trainable = sum(c.trainable for c in members if c is not None) if all(members) else g.params
        groups.append({"id": g.id, "parent": g.parent, "members": g.members, "type": g.type, "params": g.params,
                       "trainable": min(trainable, g.params), "flops": g.flops})
    rows: Dict[str, Dict[str, Any]] = {}
    for t in trees:
        for r in t.rows:
            if r.kind in ("module", "container") and r.name not in rows:
                rows[r.name] = {"calls": r.calls, "rf": _rf_text(r),
                                "shapes": calls_shape_text(r.output_shape, r.calls, r.call_shapes, shape_text)
                                if r.kind == "module" else shape_text(r.output_shape)}
    for field, per_path in extras.items():
        for path, value in per_path.items():
            rows.setdefault(path, {})[field] = value
    start = sorted(k for k, c in explorer.calls.items() if c.path.count(".") + 1 < depth)
    return {"nodes": nodes, "edges": edges, "calls": calls, "groups": groups, "rows": rows, "start": start,
            "failed": explorer.failed, "failure": explorer.failure, "direction": direction.upper(),
            "has": {"train": "train_flops" in extras, "memory": "holds" in extras, "time": "seconds" in extras},
            "hw": None}


def _costs(model: Any, kwargs: Dict[str, Any], deepest: int, paths, hw: Optional[str]) -> Dict[str, Any]:
    """Per call path: its training-step FLOPs, what it holds in a training step, its predicted seconds."""
    extras: Dict[str, Any] = {}
    try:
        t = trace(model, depth=deepest, train=True, **kwargs)
        extras["train_flops"] = _by_prefix(t.rows, lambda r: r.train_flops or 0, paths)
    except ArchscopeError:
        pass
    if kwargs.get("input_data") is None:
        try:
            m = memory(model, batch=kwargs.get("batch") or 1, input_size=kwargs.get("input_size"),
                       model_kwargs=kwargs.get("model_kwargs"), depth=deepest)
            extras["holds"] = _by_prefix(m.rows, lambda r: r.total_bytes, paths)
        except ArchscopeError:
            pass
    if hw:
        tm = time_model(model, batch=kwargs.get("batch") or 1, hw=hw, depth=deepest,
                        input_size=kwargs.get("input_size"), model_kwargs=kwargs.get("model_kwargs"))
        extras["seconds"] = _by_prefix(tm.rows, lambda r: r.predicted_s, paths)
    return extras


def asset(name: str) -> str:
    with open(os.path.join(ASSETS, name), encoding="utf-8") as f:
        return f.read()


ALL_SECTIONS = ("diagram", "layers", "check", "memory", "uncounted")


@dataclass
class Page:
    """A model's page: the HTML document, and the failure it shows, if the model failed.
    In Jupyter it shows inline (``_repr_html_``), as a fragment of the same page."""

    model: str
    document: str
    fragment: str
    failure: Optional[str] = None

    def save(self, path: str) -> str:
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.document)
        except OSError as error:
            raise ArchscopeError(f"cannot write {path}: {error.strerror or error}") from None
        return path

    def _repr_html_(self) -> str:
        return self.fragment

    def __repr__(self) -> str:
        return f"<archscope page of {self.model}" + (f", failed: {self.failure}" if self.failure else "") + ">"


def build_page(model: Any, depth: int = 1, color: str = "flops", direction: str = "TB", hw: Optional[str] = None,
               sections=ALL_SECTIONS, **kwargs) -> Page:
    """The page for ``model``; ``sections``: which of ``ALL_SECTIONS`` it shows (a notebook's
    ``graph`` shows the diagram alone)."""
    esc = html.escape
    if color not in COLORS:
        raise UsageError(f"unknown --color '{color}': use one of {', '.join(COLORS)}")
    if direction.upper() not in ("TB", "LR"):
        raise UsageError(f"unknown --direction '{direction}': use TB or LR")
    if color == "time" and not hw:
        raise UsageError("--color time needs --hw (the hardware the seconds are predicted on)")
    if hw:
        parse_hardware(hw)  # a bad --hw is refused before any work
    explorer = explore(model, **kwargs)
    paths = {c.path for c in explorer.calls.values()} | {n.name for n in explorer.nodes if n.kind == "module"}
    deepest = max((p.count(".") + 1 for p in paths if p), default=1)
    trees: List[Trace] = []
    extras: Dict[str, Any] = {}
    if explorer.failed is None:
        trees = traces(model, list(range(1, min(deepest, MAX_DEPTH) + 1)), rf=True, **kwargs)
        extras = _costs(model, kwargs, deepest, paths, hw)
    data = _data(explorer, trees, depth, direction, extras)
    data["hw"] = hw
    tot = explorer.totals
    facts = (f"input <b>{esc(shape_text(explorer.input_shape))}</b> on {esc(explorer.device)} · "
             f"<b>{tot.params:,}</b> params ({human(tot.params)}), {tot.trainable_params:,} trainable · "
             f"<b>{human(tot.flops)}</b> FLOPs ({tot.flops:,}) per forward pass")
    notes = sorted({n for n in [explorer.note] + [t.note for t in trees] if n})
    uncounted = (", ".join(f"{esc(op)} ×{n}" for op, n in explorer.uncounted_ops.items()) if explorer.uncounted_ops
                 else "none: every op with arithmetic has a FLOP formula")
    no_hw = ' disabled title="give --hw to predict seconds"'
    options = "".join(f'<option value="{c}"{" selected" if c == color else ""}{no_hw if c == "time" and not hw else ""}>'
                      f"{c}</option>" for c in COLORS)
    failed = (f'<p class="bad failure">The model failed: {esc(explorer.failure)}. The diagram shows what ran, up to '
              "the layer that failed (in red).</p>") if explorer.failed else ""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    parts = [f"<h1>{esc(explorer.model)}</h1>", f'<p class="facts">{facts}</p>', failed,
             "".join(f'<p class="note">note: {esc(n)}</p>' for n in notes)]
    parts.append(f"""<h2>Diagram</h2>
<div class="toolbar"><input id="search" type="search" placeholder="find a layer: layer3.4, Conv2d…" size="28">
<span id="hits"></span>
<label>colour by <select id="color-by">{options}</select></label>
<label title="work whose result never reaches the output"><input id="side-branches" type="checkbox"> side branches</label>
<button id="fit">fit</button><button id="zoom-in">+</button><button id="zoom-out">−</button>
<button id="fold-all">fold all</button>
<span id="legend"></span></div>
<div class="explorer"><div id="view"><div id="canvas"></div></div><div id="details"><p>Hover over a node to see
its row; click a block (⊕) to open it in place, and the title of its frame (⊖) to close it. Drag to pan, scroll to
zoom.</p></div></div>
<p id="status" class="facts"></p>""")
    if "layers" in sections:
        layers = _layers_table(tree(trees), trees[0]) if trees else "<p>No table: the model did not finish its forward.</p>"
        parts.append(f"""<h2>Layers</h2>
<p>Every depth in one table: click a row with ▸ to show its children; a row is also found in the diagram.
<button id="expand-all">expand all</button><button id="collapse-all">collapse all</button></p>
{layers}""")
    if "check" in sections:
        parts.append(f"<h2>Check</h2>\n{_check_section(model, kwargs)}")
    if "memory" in sections:
        parts.append(f"<h2>Memory of a training step</h2>\n{_memory_section(model, kwargs)}")
    if "uncounted" in sections:
        parts.append(f"<h2>Uncounted ops</h2>\n<p>{uncounted}</p>")
    parts.append(f"""<p class="facts"><small>FLOPs convention: {esc(FLOPS_CONVENTION)}. Layout by Graphviz
(Viz.js {VIZ_VERSION}, inlined).</small></p>
<script type="application/json" id="archscope-data">{payload}</script>
<script>{asset(VIZ_FILE)}</script>
{f"<script>{SCRIPT}</script>" if "layers" in sections else ""}
<script>{asset("explore.js")}</script>""")
    body = '<div class="archscope">\n' + "\n".join(p for p in parts if p) + "\n</div>"
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>archscope — {esc(explorer.model)}</title>
<style>{STYLE}</style></head><body>
{body}
</body></html>
"""
    fragment = f"<style>{_scoped(STYLE)}</style>{body}"
    return Page(explorer.model, document, fragment, explorer.failure)


def _scoped(css: str) -> str:
    """The page's style for a notebook cell: every rule under ``.archscope``, so the notebook's own look stays."""
    css = css.replace("body{", ".archscope{")
    return re.sub(r"(^|})\s*([^{}@]+)\{", lambda m: m.group(1) + ",".join(
        s if s.strip().startswith(".archscope") else f".archscope {s.strip()}" for s in m.group(2).split(",")) + "{",
        css)


def page(model: Any, path: Optional[str] = None, depth: int = 1, color: str = "flops", direction: str = "TB",
         hw: Optional[str] = None, **kwargs):
    """Write the page for ``model`` to ``path`` and return the path; without ``path``, the ``Page``
    (Jupyter shows it inline). ``kwargs`` are ``trace``'s model and input options."""
    built = build_page(model, depth=depth, color=color, direction=direction, hw=hw, **kwargs)
    return built if path is None else built.save(path)
