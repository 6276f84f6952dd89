"""The architecture as a picture: a ``Graph`` as Graphviz DOT, rendered to SVG/PNG/PDF by the
``dot`` program. Nodes are shaded by their share of FLOPs (or params), so the costly layers
stand out; edges carry the shape of the tensor that flows along them."""
from __future__ import annotations

import html
import os
import shutil
import subprocess
from typing import Any, Optional

from rich.table import Table

from archscope.analysis.flow import FlowNode
from archscope.analysis.graph import Graph, graph
from archscope.errors import ArchscopeError, UsageError
from archscope.inputs import shape_text
from archscope.report.page import build_page
from archscope.report.render import renders
from archscope.report.text import human

COLORS = ("flops", "params", "none")
DIRECTIONS = ("TB", "LR")
RENDERED = (".svg", ".png", ".pdf")
INSTALL = ("Graphviz's 'dot' program is not installed: apt-get install graphviz (Debian/Ubuntu), "
           "brew install graphviz (macOS) or conda install graphviz")
READABLE_NODES = 150  # past this a picture is a poster: ResNet-50 at depth 3 without folding has 173
LOW, HIGH = (255, 255, 255), (222, 84, 44)  # white → a warm red for the costliest node


def _shade(share: float) -> str:
    t = max(0.0, min(1.0, share)) ** 0.5  # a square root, so mid-cost layers are visible too
    return "#" + "".join(f"{round(lo + (hi - lo) * t):02x}" for lo, hi in zip(LOW, HIGH))


def _label(node: FlowNode, g: Graph) -> str:
    esc = html.escape
    if node.kind in ("input", "output"):
        return _lines([f"<b>{esc(node.name)}</b>", esc(shape_text(node.output_shape))])
    if node.kind == "op":
        cost = f"<br/>{human(node.flops)} FLOPs" if node.flops else ""
        then = f" → {esc(', '.join(node.then))}" if node.then else ""
        return f"<{esc(node.name)}{then}{cost}>"
    name = node.name if node.count == 1 else f"{node.name} … {node.last_name.rpartition('.')[2]}"
    kind = node.type if node.count == 1 else f"{node.type} ×{node.count}"
    then = f" → {', '.join(node.then)}" if node.then else ""
    cost = []
    if node.params:
        cost.append(f"{human(node.params)} params")
    if node.flops:
        cost.append(f"{human(node.flops)} FLOPs")
    lines = [f"<b>{esc(name)}</b>", esc(kind + then)] + ([esc(" · ".join(cost))] if cost else [])
    if node.id == g.failed:
        lines.append('<font color="#c0262d"><b>✗ failed here</b></font>')
    return _lines(lines)


def _lines(lines) -> str:
    """An HTML-like label of lines, one table row each: with ``<br/>`` between them, cairo draws a
    bold line's underscores (``vgg_block_1``) on the line below it in PNG and PDF."""
    rows = "".join(f"<tr><td>{line}</td></tr>" for line in lines)
    return f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">{rows}</table>>'


def to_dot(g: Graph, color: str = "flops", direction: str = "TB") -> str:
    if color not in COLORS:
        raise UsageError(f"unknown --color '{color}': use one of {', '.join(COLORS)}")
    if direction.upper() not in DIRECTIONS:
        raise UsageError(f"unknown --direction '{direction}': use TB or LR")
    top = max((getattr(n, color) for n in g.nodes if n.kind == "module"), default=0) if color != "none" else 0
    title = (f"{g.model} — input {shape_text(g.input_shape)} — {g.totals.params:,} params, "
             f"{human(g.totals.flops)} FLOPs" + (f" — shaded by {color}" if color != "none" else ""))
    failed = f"\\nthe model failed: {_quote(g.failure)}" if g.failure else ""  # a second line of the title
    lines = [
        "digraph archscope {",
        f'  graph [rankdir={direction.upper()}, fontname="Helvetica", fontsize=12, nodesep=0.25, ranksep=0.3, '
        f'labelloc=t, label="{_quote(title)}{failed}", fontcolor="{"#c0262d" if g.failure else "#000000"}"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, fillcolor="#ffffff", '
        'color="#555555", margin="0.12,0.04"];',
        # decorate: a label is tied to its edge by a line, so on curved edges it never floats between two
        '  edge [fontname="Helvetica", fontsize=8, color="#777777", fontcolor="#444444", arrowsize=0.6, '
        'decorate=true];',
    ]
    for node in g.nodes:
        attrs = {"label": _label(node, g)}
        if node.kind in ("input", "output"):
            attrs.update(shape="box", style='"rounded,filled"', fillcolor='"#dbe9f6"')
        elif node.kind == "op":
            attrs.update(shape="ellipse", style="filled", fillcolor='"#eeeeee"', fontsize="9", height="0.3")
        elif top:
            attrs["fillcolor"] = f'"{_shade(getattr(node, color) / top)}"'
        if node.id == g.failed:
            attrs.update(color='"#c0262d"', penwidth="3", fillcolor='"#f8d0d0"')
        attrs_text = ", ".join(f"{k}={v}" for k, v in attrs.items())
        lines.append(f"  {node.id} [{attrs_text}];")
    for edge in g.edges:
        label = ", ".join(shape_text(s) for s in edge.shapes)
        lines.append(f'  {edge.source} -> {edge.target} [label=" {_quote(label)} "];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot_program() -> Optional[str]:
    return shutil.which("dot")


def render_dot(dot: str, fmt: str) -> bytes:
    """DOT → svg | png | pdf bytes through Graphviz; one clear line when it is missing or fails."""
    program = dot_program()
    if program is None:
        raise ArchscopeError(f"cannot render {fmt.upper()}: {INSTALL}; without it, -o FILE.dot (or no -o) writes DOT")
    args = [program, f"-T{fmt}"] + (["-Gdpi=110"] if fmt == "png" else [])
    done = subprocess.run(args, input=dot.encode(), capture_output=True, timeout=300)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ArchscopeError(f"Graphviz could not render the graph: {reason[0] if reason else 'dot failed'}")
    return done.stdout


def write(dot: str, path: str) -> str:
    """Write DOT (``.dot``/``.gv``) or a rendering (``.svg``/``.png``/``.pdf``) to ``path``."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".dot", ".gv"):
        data = dot.encode()
    elif suffix in RENDERED:
        data = render_dot(dot, suffix[1:])
    else:
        raise UsageError(f"-o {path}: the file must end in .svg, .png, .pdf or .dot")
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as error:
        raise ArchscopeError(f"cannot write {path}: {error.strerror or error}") from None
    return path


class Diagram:
    """A graph with the way it is drawn: ``to_dot()``, ``render(path)``, and inline SVG in Jupyter."""

    def __init__(self, g: Graph, color: str = "flops", direction: str = "TB", source=None):
        self.graph, self.color, self.direction = g, color, direction
        self.source = source  # (model, options) it was drawn from: what the interactive view runs again
        to_dot(g, color, direction)  # check the options now, not when it is first drawn

    def to_dot(self) -> str:
        return to_dot(self.graph, self.color, self.direction)

    def render(self, path: str) -> str:
        return write(self.to_dot(), path)

    def svg(self) -> str:
        return render_dot(self.to_dot(), "svg").decode()

    def crowded(self) -> Optional[str]:
        """Why the picture will be too large to read, and the option that helps; None when it is not."""
        g = self.graph
        if len(g.nodes) <= READABLE_NODES:
            return None
        helps = f"--depth {g.depth - 1}" if g.depth > 1 else "--collapse" if not g.collapsed else None
        return (f"{len(g.nodes)} nodes at depth {g.depth}: the picture will be too large to read"
                + (f"; {helps} draws fewer" if helps else "")
                + f", or 'archscope report {g.model}' opens one block at a time")

    def _repr_svg_(self) -> Optional[str]:
        return self.svg() if dot_program() is not None else None

    def _repr_html_(self) -> Optional[str]:
        """In Jupyter, the interactive diagram (open any block in place, search, colour), opened at this depth."""
        if self.source is None:
            return None
        model, options = self.source
        options = {k: v for k, v in options.items() if k not in ("collapse", "depth", "partial")}
        color = self.color if self.color in ("flops", "params", "none") else "flops"
        return build_page(model, depth=self.graph.depth, color=color, direction=self.direction,
                          sections=("diagram",), **options).fragment

    def __repr__(self) -> str:
        modules = sum(1 for n in self.graph.nodes if n.kind == "module")
        return (f"<archscope diagram of {self.graph.model}: {modules} module nodes, {len(self.graph.edges)} edges, "
                f"depth {self.graph.depth}>")


def diagram(model: Any, color: str = "flops", direction: str = "TB", **kwargs) -> Diagram:
    """``archscope.graph(...)``: the diagram of a model; ``kwargs`` are those of ``analysis.graph.graph``."""
    return Diagram(graph(model, **kwargs), color, direction, source=(model, kwargs))


@renders(Graph, "table")
def graph_table(g: Graph) -> Table:
    tbl = Table(title=f"{g.model} — graph at depth {g.depth}", header_style="bold")
    for title in ("Node", "Type", "Inputs from", "Output shape", "Params", "FLOPs"):
        tbl.add_column(title, justify="right" if title in ("Params", "FLOPs") else "left")
    names = {n.id: n.name for n in g.nodes}
    for n in g.nodes:
        sources = ", ".join(names[e.source] for e in g.edges if e.target == n.id)
        kind = n.type if n.count == 1 else f"{n.type} ×{n.count}"
        tbl.add_row(n.name, kind, sources, shape_text(n.output_shape), f"{n.params:,}", human(n.flops))
    return tbl
