"""``graph``: the architecture as nodes (module calls at a depth, and the joins and reshapes
between them) and edges (tensors from producer to consumer), with params and FLOPs per node.

Consecutive identical siblings collapse into one node marked ×N (``collapse=True``, the
default): a chain A → B where B's only input is A's output and A's only consumer is B, both
module calls under the same parent, of the same class and configuration (their ``repr``),
with the same input and output shapes. ResNet-50's Bottlenecks after the first of each stage
and ViT's encoder blocks are such runs; a stage's first block differs in its shapes and stays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from archscope.analysis.api import counted_run
from archscope.analysis.explore import repeated_runs
from archscope.analysis.flow import FlowEdge, FlowNode
from archscope.analysis.records import Result, Totals
from archscope.errors import ModelFailure
from archscope.inputs import InputSize


@dataclass(repr=False)
class Graph(Result):
    model: str
    input_shape: Any
    device: str
    depth: int
    nodes: List[FlowNode]
    edges: List[FlowEdge]
    totals: Totals
    collapsed: bool = True
    note: Optional[str] = None
    uncounted_ops: Dict[str, int] = field(default_factory=dict)
    failed: Optional[str] = None  # a model that failed: the id of the node it failed in (what ran is drawn)
    failure: Optional[str] = None  # and the one-line diagnosis, with its fix

    def summary(self) -> str:
        return (f"{self.model} at depth {self.depth}: {len(self.nodes)} nodes, {len(self.edges)} edges"
                + (f"; failed: {self.failure}" if self.failure else ""))

    def node(self, name: str) -> FlowNode:
        """The first node of that name (a call path, or an op's name such as ``cat``)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def incoming(self, node: FlowNode) -> List[FlowNode]:
        by_id = {n.id: n for n in self.nodes}
        return [by_id[e.source] for e in self.edges if e.target == node.id]

    def outgoing(self, node: FlowNode) -> List[FlowNode]:
        by_id = {n.id: n for n in self.nodes}
        return [by_id[e.target] for e in self.edges if e.source == node.id]

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "input_shape": self.input_shape, "device": self.device, "depth": self.depth,
                "collapsed": self.collapsed, "totals": self.totals.to_dict(), "note": self.note,
                "uncounted_ops": self.uncounted_ops, "failed": self.failed, "failure": self.failure, "nodes": [n.to_dict() for n in self.nodes],
                "edges": [e.to_dict() for e in self.edges]}


def graph(model: Any, input_size: InputSize = None, depth: int = 1, device: str = "meta", batch: Optional[int] = None,
          model_kwargs: Optional[Dict[str, Any]] = None, dtypes: Optional[List[Any]] = None, input_data: Any = None,
          collapse: bool = True, partial: bool = False, **kwargs) -> Graph:
    """The dataflow graph of one forward, at ``depth`` (1: the model's children). Takes the
    model and input arguments ``trace`` takes. ``partial``: a model that fails still gives the
    graph of what ran, with ``failed`` (the node it failed in) and ``failure`` set.

    >>> g = graph("alexnet")
    >>> [n.name for n in g.nodes]
    ['input', 'conv', 'view', 'fc', 'output']
    """
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    failed = message = None
    try:
        loaded, inputs, run = counted_run(model, input_size, depth, device, batch, model_kwargs, dtypes, input_data,
                                          flow_depth=depth)
    except ModelFailure as error:
        run = getattr(error, "run", None)
        if not partial or run is None or run.recorder is None or run.recorder.flow is None or \
                run.recorder.flow.active is None:
            raise
        loaded, inputs = error.loaded, error.inputs
        failed, message = run.recorder.flow.active[0].id, str(error)
    flow = run.recorder.flow
    nodes, edges = flow.nodes, list(flow.edges.values())
    if collapse:
        nodes, edges = fold_repeated_blocks(nodes, edges, flow.calls)
        nodes, edges = collapse_runs(nodes, edges)
    params = sum(p.numel() for p in run.module.parameters())
    trainable = sum(p.numel() for p in run.module.parameters() if p.requires_grad)
    return Graph(loaded.label, inputs.describe(), run.device, depth, nodes, edges,
                 Totals(params, trainable, run.counter.total), collapse,
                 "; ".join(n for n in (loaded.note, run.note) if n) or None, run.counter.uncounted_ops(),
                 failed, message)


def fold_repeated_blocks(nodes: List[FlowNode], edges: List[FlowEdge], calls: Dict[str, Any]):
    """Runs of identical blocks above the drawn depth (ResNet-50's later Bottlenecks at depth 3, each
    drawn as its convs) become one ``×N`` node each, as they would at the blocks' own depth."""
    runs = [g for g in repeated_runs(nodes, edges, calls) if all(m in calls for m in g.members)]
    folded: Dict[str, int] = {}  # call id → index of the run it is in
    for i, run in enumerate(runs):
        for m in run.members:
            folded[m] = i
    if not folded:
        return nodes, edges
    by_run: Dict[int, FlowNode] = {}
    into: Dict[str, str] = {}  # node id → the id of the node it is drawn as
    kept: List[FlowNode] = []
    for node in nodes:
        i = next((folded[c] for c in node.ancestry if c in folded), None)  # outermost run first
        if i is None:
            kept.append(node)
            continue
        if i not in by_run:
            run = runs[i]
            first, last = calls[run.members[0]], calls[run.members[-1]]
            weights: Dict[int, int] = {}
            for m in run.members:
                weights.update(calls[m].weights)
            by_run[i] = FlowNode(f"r{i}", "module", first.path, run.type, first.input_shape, last.output_shape,
                                 sum(weights.values()), run.flops, len(run.members),
                                 signature=f"{run.id}", parent=calls[run.parent].path if run.parent else None,
                                 last_name=last.path, weights=weights, ancestry=node.ancestry[:node.ancestry.index(
                                     run.members[0])] if run.members[0] in node.ancestry else [])
            kept.append(by_run[i])
        into[node.id] = by_run[i].id
    merged: Dict[tuple, FlowEdge] = {}
    for e in edges:
        source, target = into.get(e.source, e.source), into.get(e.target, e.target)
        if source == target:
            continue
        edge = merged.setdefault((source, target), FlowEdge(source, target))
        edge.shapes += [s for s in e.shapes if s not in edge.shapes]
    return kept, list(merged.values())


def collapse_runs(nodes: List[FlowNode], edges: List[FlowEdge]):
    """Merge each maximal chain of two or more identical consecutive sibling calls into its first node."""
    into = {n.id: [e for e in edges if e.target == n.id] for n in nodes}
    out = {n.id: [e for e in edges if e.source == n.id] for n in nodes}
    by_id = {n.id: n for n in nodes}

    def follows(a: FlowNode, b: FlowNode) -> bool:
        return (a.kind == b.kind == "module" and a.signature == b.signature and a.parent == b.parent
                and len(out[a.id]) == 1 and out[a.id][0].target == b.id and len(into[b.id]) == 1)

    merged: Dict[str, str] = {}  # node id → the id of the node it was merged into
    kept: List[FlowNode] = []
    for node in nodes:
        if node.id in merged:
            continue
        kept.append(node)
        current = node
        while len(out[current.id]) == 1 and follows(current, by_id[out[current.id][0].target]):
            nxt = by_id[out[current.id][0].target]
            merged[nxt.id] = node.id
            node.count += 1
            fresh = {k: v for k, v in nxt.weights.items() if k not in node.weights}  # shared ones count once
            node.weights.update(fresh)
            node.params += sum(fresh.values())
            node.flops += nxt.flops
            node.last_name = nxt.name
            current = nxt
    if not merged:
        return nodes, edges
    result: Dict[tuple, FlowEdge] = {}
    for e in edges:
        source, target = merged.get(e.source, e.source), merged.get(e.target, e.target)
        if source == target:
            continue  # an edge inside a collapsed run
        edge = result.setdefault((source, target), FlowEdge(source, target))
        edge.shapes += [s for s in e.shapes if s not in edge.shapes]
    return kept, list(result.values())
