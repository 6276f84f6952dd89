"""Where tensors go: producer → consumer edges between the module calls at a depth.

While the model runs, every tensor is tagged with the node that produced it: an input, a
module call at the requested depth (its outputs are tagged when its forward hook fires), or
an op run outside any such call (a ``torch.cat`` of Inception's paths, a residual ``+``, a
``flatten`` in a parent's forward), which becomes a small node of its own. When a node
starts, the tags of the tensors it receives are its incoming edges; the model's outputs go
to an output node. Tensor identity, not the order of modules, decides the edges, so
branches, merges, skip connections and a block called twice are drawn as they ran.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from archscope.analysis.counter import METADATA_OPS, FlopCounter
from archscope.dispatch import DispatchMode
from archscope.inputs import shape_of

TAG = "_archscope_flow"
aten = torch.ops.aten
# Ops that hand a tensor on unchanged in meaning: the consumer is wired to the producer itself.
PASS_THROUGH = {"detach", "alias", "clone", "contiguous", "_to_copy", "lift_fresh", "to", "dropout"}
# Activations applied in a forward (F.relu(self.conv(x))) are folded into the node they follow:
# drawn as "then relu" on it, not as a node of their own, so a path reads conv → conv → cat.
ACTIVATIONS = {"relu", "gelu", "sigmoid", "tanh", "silu", "hardtanh", "hardswish", "hardsigmoid", "leaky_relu",
               "elu", "selu", "mish", "softplus", "relu6", "threshold"}


@dataclass
class FlowNode:
    id: str
    kind: str  # "input" | "module" | "op" | "output"
    name: str  # the call path (module), the op's name (op), the input's name
    type: str  # the module's class, "aten.cat", ...
    input_shape: Any = None
    output_shape: Any = None
    params: int = 0
    flops: int = 0
    count: int = 1  # how many identical consecutive calls this node stands for (collapsed: ×N)
    signature: Optional[str] = None  # type + configuration + shapes: what "identical" means
    parent: Optional[str] = None  # the call path of the module whose forward ran this call or op
    last_name: Optional[str] = None  # collapsed: the name of the last call it stands for
    then: List[str] = field(default_factory=list)  # activations applied to its output outside any module
    # id → size of each parameter this node (or the run it stands for) holds: a module called N times
    # and collapsed into one ×N node holds its shared parameters once, not N times.
    weights: Dict[int, int] = field(default_factory=dict, repr=False, compare=False)
    # The calls this node ran inside, outermost first, each as "path#k" (its k-th call); a module
    # node's own call last. What an interactive view needs to fold the node into any of them.
    ancestry: List[str] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("signature")
        d.pop("weights")
        d.pop("ancestry")
        return d


@dataclass
class FlowCall:
    """One call of a module that is not a node at this depth (its work is inside the nodes it ran)."""

    id: str  # "path#k": the k-th call of that path
    path: str
    type: str
    signature: str  # class and configuration: with the shapes, what makes two calls the same block
    params: int
    trainable: int
    weights: Dict[int, int] = field(default_factory=dict, repr=False)
    input_shape: Any = None
    output_shape: Any = None
    flops: int = 0
    parent: Optional[str] = None  # the call id it ran inside (None: the model's own forward)


@dataclass
class FlowEdge:
    source: str
    target: str
    shapes: List[Any] = field(default_factory=list)  # the shape of each tensor that goes along it

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _depth(path: str) -> int:
    return 0 if path == "" else path.count(".") + 1


def _tensors(obj) -> List[torch.Tensor]:
    return [t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)]


class Flow(DispatchMode):
    """Entered inside the FLOP counter (so each node's FLOPs are the counter's growth while it ran);
    the tracer's hooks call ``enter``/``leave`` for every module call."""

    def __init__(self, depth: int, counter: Optional[FlopCounter] = None):
        super().__init__()
        self.depth = depth
        self.counter = counter
        self.nodes: List[FlowNode] = []
        self.edges: Dict[Tuple[str, str], FlowEdge] = {}
        self.active: Optional[Tuple[FlowNode, int, str]] = None  # node running, counter at its start, its path
        self.nesting = 0  # module calls open inside the active node
        self.parents: List[str] = []  # call paths of the non-node modules running (the innermost last)
        self.open_calls: List[str] = []  # their call ids, in the same order
        self.calls: Dict[str, FlowCall] = {}  # call id → the call of a non-node module
        self._call_counts: Dict[str, int] = {}

    # ------------------------------------------------------------------ nodes and edges

    def _node(self, kind: str, name: str, type_: str, **fields) -> FlowNode:
        node = FlowNode(f"n{len(self.nodes)}", kind, name, type_, parent=self.parents[-1] if self.parents else None,
                        ancestry=list(self.open_calls), **fields)
        self.nodes.append(node)
        return node

    def _wire(self, sources, node: FlowNode) -> None:
        for t in _tensors(sources):
            producer = getattr(t, TAG, None)
            if producer is None or producer == node.id:
                continue
            edge = self.edges.setdefault((producer, node.id), FlowEdge(producer, node.id))
            shape = list(t.shape)
            if shape not in edge.shapes:
                edge.shapes.append(shape)

    @staticmethod
    def _tag(outputs, node_id: str) -> None:
        for t in _tensors(outputs):
            try:
                setattr(t, TAG, node_id)
            except (AttributeError, RuntimeError):  # a tensor subclass that takes no attributes
                pass

    def _flops(self) -> int:
        return self.counter.total if self.counter is not None else 0

    # ------------------------------------------------------------------ the run

    def start(self, args: tuple, kwargs: dict) -> None:
        named = [(f"input {i}" if len(args) > 1 else "input", a) for i, a in enumerate(args)]
        named += [(f"input {k}", v) for k, v in kwargs.items()]
        for name, value in named:
            if _tensors(value):
                node = self._node("input", name, "input", output_shape=shape_of(value))
                self._tag(value, node.id)

    def finish(self, output) -> None:
        node = self._node("output", "output", "output", input_shape=shape_of(output), output_shape=shape_of(output))
        node.parent = None
        self._wire(output, node)

    def _is_node(self, path: str, module: nn.Module) -> bool:
        depth = _depth(path)
        if depth == self.depth:
            return True
        if depth > self.depth and ".".join(path.split(".")[:self.depth]) not in self.parents:
            # Its ancestor at this depth never ran itself: a ModuleList/ModuleDict (GPT-2's h, BERT's
            # layer). The container owns its children's calls at its depth, as the tables' rows do:
            # each block called from it is a node, not a scatter of raw ops.
            return True
        leaf = next(iter(module.children()), None) is None
        return leaf and depth < self.depth

    def _call_id(self, path: str) -> str:
        k = self._call_counts.get(path, 0)
        self._call_counts[path] = k + 1
        return f"{path}#{k}"

    def enter(self, path: str, module: nn.Module, args, kwargs) -> None:
        if self.active is not None:
            self.nesting += 1
            return
        inputs = args if args or not kwargs else kwargs
        if not self._is_node(path, module):
            if path:  # the model's own forward is the page, not a call in it
                call = self._call_id(path)
                params = list(module.parameters())
                self.calls[call] = FlowCall(call, path, type(module).__name__, f"{type(module).__name__}|{module!r}",
                                            sum(p.numel() for p in params),
                                            sum(p.numel() for p in params if p.requires_grad),
                                            {id(p): p.numel() for p in params}, shape_of(inputs),
                                            flops=self._flops(),  # the counter at its start, until it ends
                                            parent=self.open_calls[-1] if self.open_calls else None)
                self.open_calls.append(call)
            self.parents.append(path)
            return
        node = self._node("module", path or type(module).__name__, type(module).__name__,
                          input_shape=shape_of(inputs),
                          params=sum(p.numel() for p in module.parameters()),
                          weights={id(p): p.numel() for p in module.parameters()},
                          signature=f"{type(module).__name__}|{module!r}")
        node.ancestry.append(self._call_id(path))
        self._wire((args, kwargs), node)
        self.active = (node, self._flops(), path)

    def leave(self, path: str, module: nn.Module, output) -> None:
        if self.active is None:
            if self.parents and self.parents[-1] == path:
                self.parents.pop()
                if path and self.open_calls:
                    call = self.calls[self.open_calls.pop()]
                    call.flops = self._flops() - call.flops
                    call.output_shape = shape_of(output)
            return
        if self.nesting:
            self.nesting -= 1
            return
        node, flops_at_start, _ = self.active
        node.flops = self._flops() - flops_at_start
        node.output_shape = shape_of(output)
        node.signature += f"|{node.input_shape}|{node.output_shape}"
        self._tag(output, node.id)
        self.active = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.active is not None or func in METADATA_OPS:
            return func(*args, **kwargs)
        before = self._flops()
        out = func(*args, **kwargs)
        sources = [t for t in _tensors((args, kwargs)) if getattr(t, TAG, None) is not None]
        if not sources or not _tensors(out):
            return out  # work on parameters or constants only: nothing flows in
        name = func._overloadpacket.__name__
        producers = {getattr(t, TAG) for t in sources}
        if name.rstrip("_") in PASS_THROUGH and len(producers) == 1:
            self._tag(out, getattr(sources[0], TAG))
            return out
        if name.rstrip("_") in ACTIVATIONS and len(sources) == 1:
            producer = self.nodes[int(getattr(sources[0], TAG)[1:])]
            if producer.kind in ("module", "op"):
                producer.then.append(name.rstrip("_"))
                producer.flops += self._flops() - before
                self._tag(out, producer.id)
                return out
        node = self._node("op", name.rstrip("_"), f"aten.{name}", input_shape=shape_of(sources),
                          output_shape=shape_of(out), flops=self._flops() - before)
        self._wire(sources, node)
        self._tag(out, node.id)
        return out
