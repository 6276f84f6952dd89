"""The model as an explorable graph: every leaf call and op of one forward, and the calls that
hold them, so a view can fold any part of it away and open it again without running the model.

One forward records the dataflow at the finest grain (leaf modules and the ops between them)
and, for every call of a module with children, what it was called with, what it returned, its
FLOPs and its parameters. A view is a set of opened calls: each leaf node is drawn as its
outermost ancestor that is not open (or itself), and the edges between leaves become the edges
between what they are drawn as. Runs of identical consecutive sibling calls (ResNet's
bottlenecks, a transformer's blocks) are found at every level and fold into one ``×N`` node
until opened. Nodes from which nothing reaches the output (transformers' "is the mask all ones?"
check) are marked as side branches. A model that fails keeps what ran, and the failing node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

from archscope.analysis.api import failure
from archscope.analysis.counter import FlopCounter
from archscope.analysis.flow import Flow, FlowNode
from archscope.analysis.records import Result, Totals
from archscope.analysis.run import RunOptions, attempt, check_device
from archscope.errors import ModelFailure, first_line
from archscope.inputs import InputSize, resolve_inputs
from archscope.models import load_model

FINEST = 10_000  # a flow depth no model reaches: every leaf module is a node


@dataclass
class Group:
    """Consecutive identical sibling calls, drawn as one ``×N`` node until opened."""

    id: str
    parent: Optional[str]  # the call id they run inside (None: the model's own forward)
    members: List[str]  # their call ids (or leaf node ids), in order
    type: str
    params: int = 0  # shared parameters counted once
    flops: int = 0


@dataclass(repr=False)
class Explorer(Result):
    model: str
    input_shape: Any
    device: str
    nodes: List[FlowNode]
    edges: List[Any]
    calls: Dict[str, Any]  # call id → FlowCall (a module with children, one of its calls)
    groups: List[Group]
    dead: Set[str]  # leaf node ids from which nothing reaches the output
    totals: Totals
    note: Optional[str] = None
    uncounted_ops: Dict[str, int] = field(default_factory=dict)
    failed: Optional[str] = None  # the id (call or leaf node) of the layer the model failed in
    failure: Optional[str] = None  # its one-line diagnosis, with the fix
    trainable: Dict[str, int] = field(default_factory=dict)  # leaf node id → its trainable params

    def summary(self) -> str:
        return (f"{self.model}: {len(self.nodes)} leaf nodes, {len(self.calls)} calls with children, "
                f"{len(self.groups)} repeated runs" + (f"; failed at {self.failed}" if self.failed else ""))

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "input_shape": self.input_shape, "device": self.device,
                "totals": self.totals.to_dict(), "note": self.note, "failure": self.failure, "failed": self.failed,
                "nodes": [dict(n.to_dict(), ancestry=n.ancestry, dead=n.id in self.dead) for n in self.nodes],
                "edges": [e.to_dict() for e in self.edges],
                "calls": {k: {"path": c.path, "type": c.type, "parent": c.parent, "params": c.params,
                              "trainable": c.trainable, "flops": c.flops, "input_shape": c.input_shape,
                              "output_shape": c.output_shape} for k, c in self.calls.items()},
                "groups": [vars(g) for g in self.groups]}

    def view(self, opened: Set[str]) -> Tuple[List[str], List[Tuple[str, str]]]:
        """What a view with ``opened`` call and group ids draws: its node keys (a call id, a group id
        or a leaf node id) and edges between them. The page's script computes the same in the browser."""
        keys, edges = [], []
        group_of = {m: g.id for g in self.groups for m in g.members}
        drawn = {n.id: self.drawn_as(n, opened, group_of) for n in self.nodes}
        for key in drawn.values():
            if key not in keys:
                keys.append(key)
        for e in self.edges:
            pair = (drawn[e.source], drawn[e.target])
            if pair[0] != pair[1] and pair not in edges:
                edges.append(pair)
        return keys, edges

    def drawn_as(self, node: FlowNode, opened: Set[str], group_of: Optional[Dict[str, str]] = None) -> str:
        """The key ``node`` is drawn as: its outermost ancestor (or run) not opened, else itself."""
        if group_of is None:
            group_of = {m: g.id for g in self.groups for m in g.members}
        for key in [c for c in node.ancestry if c in self.calls] + [node.id]:
            group = group_of.get(key)
            if group is not None and group not in opened:
                return group
            if key not in opened:
                return key
        return node.id


def explore(model: Any, input_size: InputSize = None, device: str = "meta", batch: Optional[int] = None,
            model_kwargs: Optional[Dict[str, Any]] = None, dtypes: Optional[List[Any]] = None,
            input_data: Any = None, **kwargs) -> Explorer:
    """One forward of ``model`` at the finest grain, ready to be folded any way (see the module doc).
    A forward that fails still gives what ran, with ``failed`` and ``failure`` set."""
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    device = check_device(device or "meta")
    loaded = load_model(model, device=device, **model_kwargs)
    inputs = resolve_inputs(input_size, loaded.module, loaded.default_input, batch, dtypes, input_data)
    run = attempt(loaded, inputs, RunOptions(device=device, flow_depth=FINEST), FlopCounter())
    recorder = run.recorder
    if recorder is None or recorder.flow is None:  # it failed before its first layer: nothing to draw
        raise failure(run, inputs, loaded)
    flow: Flow = recorder.flow
    failed = message = None
    if run.error is not None:
        problem = failure(run, inputs, loaded)
        if not isinstance(problem, ModelFailure):
            raise problem
        message = first_line(problem)
        failed = _failed_at(flow)
        if failed is None:
            raise problem
        _close_open_calls(flow)
    nodes, edges = flow.nodes, list(flow.edges.values())
    counter = run.counter
    params = sum(p.numel() for p in run.module.parameters())
    trainable_total = sum(p.numel() for p in run.module.parameters() if p.requires_grad)
    trainable = {}
    for n in nodes:
        if n.kind == "module" and n.ancestry:
            module = recorder.modules.get(n.ancestry[-1].rpartition("#")[0])
            if module is not None:
                trainable[n.id] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    explorer = Explorer(loaded.label, inputs.describe(), run.device, nodes, edges, dict(flow.calls), [],
                        set(), Totals(params, trainable_total, counter.total if counter else 0),
                        "; ".join(n for n in (loaded.note, run.note) if n) or None,
                        counter.uncounted_ops() if counter else {}, failed, message, trainable)
    explorer.groups = _runs(explorer)
    explorer.dead = set() if failed else _side_branches(nodes, edges)
    return explorer


def _failed_at(flow: Flow) -> Optional[str]:
    """The leaf node that was running when the forward raised, else the innermost open call."""
    if flow.active is not None:
        return flow.active[0].id
    return flow.open_calls[-1] if flow.open_calls else None


def _close_open_calls(flow: Flow) -> None:
    """The calls the failure interrupted: their FLOPs are what ran up to it."""
    total = flow._flops()
    for call in flow.open_calls:
        flow.calls[call].flops = total - flow.calls[call].flops
    if flow.active is not None:
        node, start, _ = flow.active
        node.flops = total - start


# --------------------------------------------------------------------------- repeated runs

def _children(nodes: List[FlowNode], calls: Dict[str, Any]) -> Dict[Optional[str], List[str]]:
    """Per call id (None: the model's forward), its direct children in the order they first ran:
    call ids of modules with children, leaf node ids of the rest."""
    children: Dict[Optional[str], List[str]] = {}
    for n in nodes:
        chain = [c for c in n.ancestry if c in calls]
        own = n.id
        for depth in range(len(chain) + 1):
            parent = chain[depth - 1] if depth else None
            child = chain[depth] if depth < len(chain) else own
            listed = children.setdefault(parent, [])
            if child not in listed:
                listed.append(child)
    return children


def _runs(explorer: Explorer) -> List[Group]:
    return repeated_runs(explorer.nodes, explorer.edges, explorer.calls)


def repeated_runs(nodes: List[FlowNode], edges, calls: Dict[str, Any]) -> List[Group]:
    """Runs of two or more consecutive sibling calls of one signature (class, configuration and
    shapes), each feeding only the next, and each taking nothing else than the previous one's
    output and what its predecessor took too (a transformer's position embeddings, its mask).
    ``calls``: the calls of modules with children that ``nodes`` ran inside (``Flow.calls``)."""
    by_id = {n.id: n for n in nodes}
    groups: List[Group] = []
    for parent, kids in _children(nodes, calls).items():
        if len(kids) < 2:
            continue
        rep = {}  # leaf id → the child of ``parent`` it is inside (or itself, outside parent)
        for n in nodes:
            chain = [c for c in n.ancestry if c in calls]
            if parent is None:
                rep[n.id] = chain[0] if chain else n.id
            elif parent in chain:
                i = chain.index(parent)
                rep[n.id] = chain[i + 1] if i + 1 < len(chain) else n.id
            else:
                rep[n.id] = n.id
        into: Dict[str, Set[str]] = {}
        out: Dict[str, Set[str]] = {}
        for e in edges:
            s, t = rep[e.source], rep[e.target]
            if s != t:
                out.setdefault(s, set()).add(t)
                into.setdefault(t, set()).add(s)

        def signature(key: str) -> Optional[str]:
            call = calls.get(key)
            if call is not None:
                return f"{call.signature}|{call.input_shape}|{call.output_shape}"
            node = by_id[key]
            return node.signature if node.kind == "module" else None

        def follows(a: str, b: str, out=out, into=into, signature=signature) -> bool:
            sa, sb = signature(a), signature(b)
            return (sa is not None and sa == sb and out.get(a) == {b}
                    and into.get(b, set()) - {a} <= into.get(a, set()))

        i = 0
        while i < len(kids):
            j = i
            while j + 1 < len(kids) and follows(kids[j], kids[j + 1]):
                j += 1
            if j > i:
                groups.append(_group(calls, parent, kids[i:j + 1], by_id))
            i = j + 1
    return groups


def _group(calls: Dict[str, Any], parent: Optional[str], members: List[str], by_id) -> Group:
    weights: Dict[int, int] = {}
    flops = 0
    for m in members:
        item = calls.get(m) or by_id[m]
        weights.update(item.weights)
        flops += item.flops
    first = calls.get(members[0]) or by_id[members[0]]
    return Group(f"group:{members[0]}", parent, members, first.type, sum(weights.values()), flops)


def _side_branches(nodes: List[FlowNode], edges) -> Set[str]:
    """Leaf nodes with no path to the output node: work whose result the model never used."""
    outputs = [n.id for n in nodes if n.kind == "output"]
    if not outputs:
        return set()
    feeds: Dict[str, List[str]] = {}
    for e in edges:
        feeds.setdefault(e.target, []).append(e.source)
    reached, pending = set(outputs), list(outputs)
    while pending:
        for source in feeds.get(pending.pop(), []):
            if source not in reached:
                reached.add(source)
                pending.append(source)
    return {n.id for n in nodes if n.id not in reached and n.kind != "input"}

