"""An ONNX file as an ``nn.Module``: every node a PyTorch call, every initializer a tensor.

archscope counts what runs, so an ONNX graph is run, as PyTorch calls (``onnx_ops.py``), through
the same engine as any model: shapes, FLOPs (the same formulas), memory, time, the diagram. The
converter is archscope's own, small and exact on the operators it knows (so the module tree can
come from the exporter's metadata, and no other package's conversion code runs); a graph with any
other operator is refused in one line naming them.

The module tree is the exporter's: PyTorch's exporter records, per node, the module path and
class it came from (``pkg.torch.onnx.name_scopes`` / ``class_hierarchy``). Each path becomes a
module of that class's name, called with the tensors its nodes take from outside and returning
those used outside, so rows, the diagram's blocks and their repeats are the original model's. A
path with one node is that node (``layer1.0.conv1``, a ``Conv2d``); a graph without that metadata
is one flat row per node. Float initializers are parameters, except a BatchNormalization's running
mean and variance (buffers, as in PyTorch); integer ones and folded constants are values of the
graph, kept on the CPU (a Reshape reads them). On meta no weight is read.
"""
from __future__ import annotations

import ast
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from archscope.errors import UsageError
from archscope.models.build import Loaded
from archscope.models.onnx_ops import DTYPES, OPS

EXTRA = "pip install 'archscope[onnx]'"


def _onnx():
    try:
        import onnx
    except ImportError:
        raise UsageError(f"reading an ONNX file needs the onnx package: {EXTRA}") from None
    return onnx


class OnnxNode(nn.Module):
    """One ONNX node: its operator, attributes and the initializers it takes."""

    def __init__(self, op: str, attrs: Dict[str, Any], sources: List[Tuple[str, Optional[str]]], outputs: int):
        super().__init__()
        self.op, self.attrs, self.sources, self.n_outputs = op, attrs, sources, outputs

    def forward(self, *args):
        given = iter(args)
        inputs = []
        for kind, name in self.sources:  # ("env", name) | ("own", attribute) | ("absent", None)
            inputs.append(next(given) if kind == "env" else getattr(self, name) if kind == "own" else None)
        out = OPS[self.op](inputs, {**self.attrs, "_outputs": self.n_outputs})
        return out[0] if self.n_outputs == 1 else tuple(out[:self.n_outputs])

    def extra_repr(self) -> str:
        return f"op={self.op}" + (f", {', '.join(f'{k}={v}' for k, v in self.attrs.items() if not isinstance(v, torch.Tensor))}"
                                  if self.attrs else "")


class OnnxScope(nn.Module):
    """The nodes one module of the exported model ran, in order, called as that module was."""

    def forward(self, *args, segment: int = 0):
        return self._run(self._plans[segment], args)

    def _run(self, plan, args):
        inputs, outputs, items = plan
        env = dict(zip(inputs, args))
        for item in items:
            item.run(env)
        out = tuple(env[name] for name in outputs)
        return out[0] if len(out) == 1 else out


class OnnxModel(OnnxScope):
    """The whole graph: takes the graph's inputs (by position or name), returns its outputs."""

    def forward(self, *args, **kwargs):
        names = self._input_names
        given = dict(zip(names, args))
        given.update(kwargs)
        missing = [n for n in names if n not in given]
        if missing:
            raise TypeError(f"missing ONNX graph input(s): {', '.join(missing)}")
        return self._run(self._plans[0], tuple(given[n] for n in names))


class _Step:
    """One item of a plan: a node, or a call of a child scope with its own plan."""

    def __init__(self, module: nn.Module, inputs: List[str], outputs: List[str], segment: Optional[int] = None):
        self.module, self.inputs, self.outputs, self.segment = module, inputs, outputs, segment

    def run(self, env: Dict[str, Any]) -> None:
        args = [env[name] for name in self.inputs]
        out = self.module(*args) if self.segment is None else self.module(*args, segment=self.segment)
        if len(self.outputs) == 1:
            out = (out,)
        env.update(zip(self.outputs, out))


_CLASSES: Dict[str, type] = {}


def _class(name: str, base: type) -> type:
    """A module class named as the exported model's (``Conv2d``, ``Bottleneck``) for its rows."""
    key = f"{base.__name__}:{name}"
    if key not in _CLASSES:
        _CLASSES[key] = type(name if name.isidentifier() else re.sub(r"\W", "_", name), (base,), {})
    return _CLASSES[key]


def _attribute(onnx, attr, device: str):
    value = onnx.helper.get_attribute_value(attr)
    if attr.type == onnx.AttributeProto.TENSOR:
        return _tensor(onnx, value, "cpu")
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _tensor(onnx, proto, device: str) -> torch.Tensor:
    dtype = DTYPES.get(proto.data_type)
    if dtype is None:
        raise UsageError(f"an ONNX tensor of element type {proto.data_type} is not converted")
    if device == "meta":
        return torch.empty(tuple(proto.dims), dtype=dtype, device="meta")
    from onnx import numpy_helper

    return torch.from_numpy(numpy_helper.to_array(proto).copy()).to(dtype).to(device)


def _scopes(node) -> Tuple[List[str], List[str]]:
    """The module paths a node ran inside (outermost first) and their classes, from the exporter's metadata."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (ValueError, SyntaxError):
        return [], []
    if len(scopes) < 2 or scopes[0] != "":
        return [], []
    paths = [s for s in scopes[1:-1]]  # the last entry is the op itself
    names = [c.rsplit(".", 1)[-1] for c in classes[1:len(paths) + 1]] if len(classes) > len(paths) else \
        ["Module"] * len(paths)
    return paths, names


def load_onnx(path: str, device: str = "meta") -> Loaded:
    onnx = _onnx()
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # noqa: BLE001 - a file that is not what its name says
        raise UsageError(f"{path} is not an ONNX model onnx can read: {error}") from None
    graph = model.graph
    domains = {o.domain for o in model.opset_import}
    unknown = sorted({n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in graph.node
                      if n.op_type not in OPS or n.domain not in ("", "ai.onnx")})
    if unknown:
        raise UsageError(f"{os.path.basename(path)} uses ONNX operators archscope does not convert: {', '.join(unknown)} "
                         f"(opsets: {', '.join(sorted(d or 'ai.onnx' for d in domains))})")

    def build(where: str) -> nn.Module:
        return _build(onnx, model, where, path)

    module = build(device)
    inputs = module._input_specs
    from archscope.inputs import Inputs

    default = Inputs(shapes=[s for s, _ in inputs], dtypes=[d for _, d in inputs])
    symbolic = sorted({d for d in module._symbolic})
    note = ("an ONNX graph, run as PyTorch calls (archscope's converter); rows are the exporter's module paths"
            if module._scoped else "an ONNX graph, run as PyTorch calls (archscope's converter); the file names no "
            "module paths, so each node is a row")
    if symbolic:
        note += f"; symbolic dimensions {', '.join(symbolic)} taken as 1 (give --input for others)"
    return Loaded(module, os.path.basename(path), default, build, note)


def _build(onnx, model, device: str, path: str) -> OnnxModel:
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    statistics = {n.input[i] for n in graph.node if n.op_type == "BatchNormalization" for i in (3, 4) if len(n.input) > i}
    root = OnnxModel()
    root._plans = []
    root._symbolic = []
    specs, names = [], []
    for i in graph.input:
        if i.name in initializers:
            continue
        t = i.type.tensor_type
        dims = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            else:
                dims.append(1)
                root._symbolic.append(d.dim_param or "?")
        specs.append((tuple(dims), DTYPES.get(t.elem_type, torch.float32)))
        names.append(i.name)
    root._input_specs, root._input_names = specs, names
    scoped = [_scopes(n) for n in graph.node]
    root._scoped = any(p for p, _ in scoped)

    # The module of each path, nested as the paths are.
    scopes: Dict[str, OnnxScope] = {}
    node_count: Dict[str, int] = {}
    child_scopes: Dict[str, set] = {}
    static = _static(graph, initializers)
    for node, (paths, _) in zip(graph.node, scoped):
        if paths and not all(o in static for o in node.output):
            node_count[paths[-1]] = node_count.get(paths[-1], 0) + 1
        for a, b in zip(paths, paths[1:]):
            child_scopes.setdefault(a, set()).add(b)
    single = {p for p, n in node_count.items() if n == 1 and not child_scopes.get(p)}

    scope_paths: Dict[int, str] = {}  # id of a scope's module → its path

    def holder(paths: List[str], classes: List[str]) -> nn.Module:
        parent: nn.Module = root
        parent_path = ""
        for p, cls in zip(paths, classes):
            if p in single:
                break
            if p not in scopes:
                scope = _class(cls, OnnxScope)()
                scope._plans = []
                parent.add_module(_unique(parent, _relative(p, parent_path)), scope)
                scopes[p] = scope
                scope_paths[id(scope)] = p
            parent, parent_path = scopes[p], p
        return parent

    owners: Dict[str, Tuple[nn.Module, str]] = {}
    node_modules: List[Tuple[nn.Module, Any, List[str], List[str]]] = []
    tensors = {name: _tensor(onnx, proto, device if DTYPES.get(proto.data_type, torch.float32).is_floating_point
                             else "cpu") for name, proto in initializers.items()}
    constants = _fold(onnx, graph, tensors, device)
    for node, (paths, classes) in zip(graph.node, scoped):
        if all(o in constants for o in node.output):
            continue
        attrs = {a.name: _attribute(onnx, a, device) for a in node.attribute}
        parent = holder(paths, classes)
        sources, env_inputs = [], []
        leaf_path = paths[-1] if paths and paths[-1] in single else None
        cls = _class(classes[-1] if leaf_path else node.op_type, OnnxNode)
        leaf = cls(node.op_type, attrs, [], len(node.output))
        for name in node.input:
            if not name:
                sources.append(("absent", None))
            elif name in constants:
                own = _unique(leaf, "constant")
                object.__setattr__(leaf, own, constants[name])  # its values, never a meta stand-in
                sources.append(("own", own))
            elif name in initializers:
                if name in owners:
                    owner, attr = owners[name]
                    tensor = getattr(owner, attr)
                    own = _unique(leaf, attr)
                    _register(leaf, own, tensor, isinstance(tensor, nn.Parameter))
                else:
                    tensor = tensors[name]
                    floating = tensor.is_floating_point()
                    scope_path = leaf_path or (paths[-1] if paths else "")
                    short = name[len(scope_path) + 1:] if scope_path and name.startswith(scope_path + ".") else name
                    own = _unique(leaf, re.sub(r"\W", "_", short))
                    is_param = floating and name not in statistics
                    _register(leaf, own, nn.Parameter(tensor) if is_param else tensor, is_param)
                    owners[name] = (leaf, own)
                sources.append(("own", own))
            else:
                sources.append(("env", name))
                env_inputs.append(name)
        leaf.sources = sources
        if leaf_path:  # a path of one node: the node is that module (layer1.0.conv1, a Conv2d)
            label = _relative(leaf_path, scope_paths.get(id(parent), ""))
        else:
            label = node.op_type if root._scoped else re.sub(r"\W", "_", node.name or node.op_type).strip("_") \
                or node.op_type
        parent.add_module(_unique(parent, label), leaf)
        node_modules.append((leaf, node, env_inputs, [o for o in node.output]))

    kept = [sc for node, sc in zip(graph.node, scoped) if not all(o in constants for o in node.output)]
    _plan(root, scopes, kept, node_modules, graph, single)
    return root


def _static(graph, initializers) -> set:
    """The outputs the graph computes from constants alone (a zero bias made from a weight's shape, a
    target shape made of constants): values of the graph, worked out once, not steps of a module.
    A Shape of an initializer reads its metadata only; a CastLike only its other input's dtype."""
    known = set(initializers) | {i.name for i in graph.input}
    integral = {n for n, p in initializers.items() if not DTYPES.get(p.data_type, torch.float32).is_floating_point}
    inputs = {i.name for i in graph.input} - set(initializers)
    static: set = set()
    for node in graph.node:
        given = [i for i in node.input if i]
        if node.op_type == "Constant":
            ok = True
        elif node.op_type in ("Shape", "Size"):
            ok = bool(given) and given[0] in initializers or given[0] in static
        elif node.op_type == "CastLike":
            ok = given[0] in static or given[0] in integral
            ok = ok and (given[1] in known or given[1] in static)
        else:
            ok = bool(given) and all(i in static or i in integral for i in given) and not any(i in inputs for i in given)
        if ok:
            static.update(node.output)
    return static


def _fold(onnx, graph, tensors: Dict[str, torch.Tensor], device: str) -> Dict[str, torch.Tensor]:
    """The values of ``_static``'s outputs, computed once while building."""
    static = _static(graph, {t.name: t for t in graph.initializer})
    values: Dict[str, torch.Tensor] = {}
    declared = {}
    for i in graph.input:
        t = i.type.tensor_type
        declared[i.name] = torch.empty(0, dtype=DTYPES.get(t.elem_type, torch.float32), device="meta")
    for node in graph.node:
        if not node.output or not all(o in static for o in node.output):
            continue
        attrs = {a.name: _attribute(onnx, a, device) for a in node.attribute}
        inputs = [values.get(i, tensors.get(i, declared.get(i))) if i else None for i in node.input]
        out = OPS[node.op_type](inputs, {**attrs, "_outputs": len(node.output)})
        values.update(zip(node.output, out))
    return values


def _relative(path: str, parent_path: str) -> str:
    """The name a module at ``path`` has in its parent's (``layer1.0`` in ``layer1``: ``0``); a
    module attribute takes no dot, so a path whose parent is not its prefix keeps its parts joined by _."""
    rel = path[len(parent_path) + 1:] if parent_path and path.startswith(parent_path + ".") else path
    return rel.replace(".", "_")


def _register(module: nn.Module, name: str, tensor: torch.Tensor, parameter: bool) -> None:
    """A float initializer is a parameter (or, a BatchNormalization's statistics, a buffer); an
    integer one is a constant of the graph (a shape, an index), kept with its values and not
    registered, so a meta run's stand-ins never replace what a Reshape reads."""
    if parameter:
        module.register_parameter(name, tensor if isinstance(tensor, nn.Parameter) else nn.Parameter(tensor))
    elif tensor.is_floating_point():
        module.register_buffer(name, tensor)
    else:
        object.__setattr__(module, name, tensor)


def _unique(module: nn.Module, name: str) -> str:
    name = name or "node"
    taken = set(module._modules) | set(module._parameters) | set(module._buffers) | set(vars(module))
    if name not in taken and not hasattr(type(module), name):
        return name
    i = 1
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"


def _plan(root: OnnxModel, scopes, scoped, node_modules, graph, single) -> None:
    """The call tree: consecutive nodes of one path are one call of its module; the tensors a call
    takes are those its nodes read from outside it, and it returns those read after it."""
    readers: Dict[str, List[int]] = {}
    for i, (_, _node, env_inputs, _) in enumerate(node_modules):
        for name in env_inputs:
            readers.setdefault(name, []).append(i)
    graph_outputs = [o.name for o in graph.output]

    # A tree of segments: (path or None for the root, [items]), items being node indices or segments.
    root_segment: Tuple[Optional[str], List[Any]] = (None, [])
    stack = [root_segment]
    for i, (paths, _) in enumerate(scoped):
        chain = [p for p in paths if p not in single]
        depth = 0
        while depth < len(chain) and depth + 1 < len(stack) and stack[depth + 1][0] == chain[depth]:
            depth += 1
        del stack[depth + 1:]
        for p in chain[depth:]:
            segment = (p, [])
            stack[-1][1].append(segment)
            stack.append(segment)
        stack[-1][1].append(i)

    def nodes_in(segment) -> List[int]:
        out = []
        for item in segment[1]:
            out.extend(nodes_in(item) if isinstance(item, tuple) else [item])
        return out

    def steps(segment) -> List[_Step]:
        result = []
        for item in segment[1]:
            if isinstance(item, tuple):
                inside = set(nodes_in(item))
                produced = [o for i in sorted(inside) for o in node_modules[i][3]]
                made = set(produced)
                takes = []
                for i in sorted(inside):
                    for name in node_modules[i][2]:
                        if name not in made and name not in takes:
                            takes.append(name)
                gives = [o for o in produced if o in graph_outputs or any(r not in inside for r in readers.get(o, []))]
                module = scopes[item[0]]
                module._plans.append((takes, gives, steps(item)))
                result.append(_Step(module, takes, gives, len(module._plans) - 1))
            else:
                leaf, _, env_inputs, outputs = node_modules[item]
                result.append(_Step(leaf, env_inputs, outputs))
        return result

    root._plans.append((root._input_names, graph_outputs, steps(root_segment)))
