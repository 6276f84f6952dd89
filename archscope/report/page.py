"""``archscope report``: one self-contained HTML page to explore a model.

Inline CSS, JS and SVG only (no network, no CDN: it opens from ``file://``): the model, input and
totals; the diagram; the module tree of every depth as an expandable table (click a row to
show its children); shapes, params, FLOPs and output memory per row; the check results, the
memory of a training step, the uncounted ops and notes.
"""
from __future__ import annotations

import html
import os
import re
from typing import Any, Dict, List, Optional

from archscope.analysis.api import trace
from archscope.analysis.check import check
from archscope.analysis.graph import graph
from archscope.analysis.memory import memory
from archscope.analysis.records import LayerRow, Trace
from archscope.errors import ArchscopeError, first_line
from archscope.inputs import shape_text
from archscope.report.diagram import Diagram, dot_program, render_dot
from archscope.report.text import calls_shape_text, human, human_bytes, share

MAX_DEPTH = 12
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
"""

SCRIPT = """
(function(){
  var rows = Array.prototype.slice.call(document.querySelectorAll('#layers tbody tr'));
  var byParent = {};
  rows.forEach(function(r){ var p = r.getAttribute('data-parent') || ''; (byParent[p] = byParent[p] || []).push(r); });
  function hideBelow(id){ (byParent[id] || []).forEach(function(c){ c.hidden = true; c.classList.remove('open');
    hideBelow(c.getAttribute('data-id')); }); }
  function toggle(r){ var id = r.getAttribute('data-id'); var open = !r.classList.contains('open');
    r.classList.toggle('open', open);
    if (open) { (byParent[id] || []).forEach(function(c){ c.hidden = false; }); } else { hideBelow(id); } }
  rows.forEach(function(r){ if (r.classList.contains('parent')) { r.addEventListener('click', function(){ toggle(r); }); } });
  document.getElementById('expand-all').addEventListener('click', function(){
    rows.forEach(function(r){ r.hidden = false; if (r.classList.contains('parent')) r.classList.add('open'); }); });
  document.getElementById('collapse-all').addEventListener('click', function(){
    rows.forEach(function(r){ r.classList.remove('open'); r.hidden = !!r.getAttribute('data-parent'); }); });
})();
"""


def page_name(model: str) -> str:
    """``lenet.html``, ``tv-resnet50.html``, ``net-build.html`` for ``path/net.py:build``."""
    name = os.path.basename(str(model)).replace(".py:", "-").replace(":", "-")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".html"


def all_depths(model: Any, **kwargs) -> List[Trace]:
    """Traces at depth 1, 2, ... until a depth adds no deeper row (at most ``MAX_DEPTH``)."""
    traces = [trace(model, depth=1, **kwargs)]
    for depth in range(2, MAX_DEPTH + 1):
        t = trace(model, depth=depth, **kwargs)
        if not any(r.depth == depth for r in t.rows):
            break
        traces.append(t)
    return traces


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
        attrs = f'data-id="{item["id"]}" data-depth="{item["level"]}"'
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


def page(model: Any, path: str, depth: int = 2, color: str = "flops", direction: str = "TB",
         **kwargs) -> str:
    """Write the page for ``model`` to ``path``; ``kwargs`` are ``trace``'s model and input options."""
    esc = html.escape
    traces = all_depths(model, **kwargs)
    top = traces[0]
    picture = Diagram(graph(model, depth=depth, **kwargs), color, direction)
    if dot_program() is not None:
        svg = render_dot(picture.to_dot(), "svg").decode()
        svg = svg[svg.index("<svg"):]
        diagram_html = f'<div class="diagram">{svg}</div>'
    else:
        diagram_html = ('<p class="note">The diagram needs Graphviz\'s <code>dot</code> program: apt-get install '
                        "graphviz (Debian/Ubuntu), brew install graphviz (macOS), conda install graphviz.</p>")
    tot = top.totals
    facts = (f"input <b>{esc(shape_text(top.input_shape))}</b> on {esc(top.device)} · "
             f"<b>{tot.params:,}</b> params ({human(tot.params)}), {tot.trainable_params:,} trainable · "
             f"<b>{human(tot.flops)}</b> FLOPs ({tot.flops:,}) per forward pass")
    notes = sorted({t.note for t in traces if t.note})
    uncounted = (", ".join(f"{esc(op)} ×{n}" for op, n in top.uncounted_ops.items()) if top.uncounted_ops
                 else "none: every op with arithmetic has a FLOP formula")
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>archscope — {esc(top.model)}</title>
<style>{STYLE}</style></head><body>
<h1>{esc(top.model)}</h1>
<p class="facts">{facts}</p>
{''.join(f'<p class="note">note: {esc(n)}</p>' for n in notes)}
<h2>Diagram (depth {depth})</h2>
{diagram_html}
<h2>Layers</h2>
<p>Every depth in one table: click a row with ▸ to show its children.
<button id="expand-all">expand all</button><button id="collapse-all">collapse all</button></p>
{_layers_table(tree(traces), top)}
<h2>Check</h2>
{_check_section(model, kwargs)}
<h2>Memory of a training step</h2>
{_memory_section(model, kwargs)}
<h2>Uncounted ops</h2>
<p>{uncounted}</p>
<p class="facts"><small>FLOPs convention: {esc(top.flops_convention)}.</small></p>
<script>{SCRIPT}</script>
</body></html>
"""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(document)
    except OSError as error:
        raise ArchscopeError(f"cannot write {path}: {error.strerror or error}") from None
    return path

