"""The bottom layer: shapes, and what the model is fed: from ``1x3x224x224``, ``1x128:int64``, ``--size 96``, ``--batch 4``,
or real tensors, to the positional and keyword arguments of one ``forward`` call.

The Python API uses torchinfo's words: ``input_size`` (one shape, or a list of shapes, one
per positional argument of ``forward``), ``dtypes`` (one per input) and ``input_data`` (real
tensors: one, a tuple of positional arguments, or a dict of keyword arguments).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from archscope.errors import UsageError, first_line

Shape = Tuple[int, ...]
InputSize = Union[int, Sequence[int], str, Sequence[Union[str, Sequence[int]]], None]

DTYPES = {
    "float32": torch.float32, "float": torch.float32, "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "float64": torch.float64, "double": torch.float64,
    "int64": torch.int64, "long": torch.int64, "int32": torch.int32, "int": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
    # The short names --dtype takes (time, memory): one set of names everywhere.
    "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64,
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def parse_dtype(text: str) -> torch.dtype:
    try:
        return DTYPES[text.strip().lower()]
    except KeyError:
        raise UsageError(f"unknown dtype '{text}': use one of {', '.join(sorted(set(DTYPES)))}") from None


def parse_shape(text: str) -> Tuple[Shape, Optional[torch.dtype]]:
    """``"1x1x224x224"`` → ``((1, 1, 224, 224), None)``; ``"1x128:int64"`` → ``((1, 128), torch.int64)``."""
    dims_text, sep, dtype_text = text.partition(":")
    parts = dims_text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"malformed --input '{text}': expected sizes joined by 'x' and an optional dtype, "
            f"e.g. 1x1x224x224 or 1x128:int64"
        ) from None
    if len(dims) < 1 or any(d <= 0 for d in dims):
        raise UsageError(f"malformed --input '{text}': every size must be a positive integer")
    return dims, (parse_dtype(dtype_text) if sep else None)


def first_spatial_layer(model: nn.Module) -> Optional[nn.Module]:
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module
    return None


def first_in_channels(model: nn.Module) -> Optional[int]:
    """The channel count the first conv layer expects, if the model has one."""
    conv = first_spatial_layer(model)
    return None if conv is None else conv.in_channels


def expected_rank(model: nn.Module) -> Optional[int]:
    """How many sizes the input needs, judged from the first conv (Conv1d → 3, Conv2d → 4, Conv3d → 5)."""
    conv = first_spatial_layer(model)
    return None if conv is None else len(conv.kernel_size) + 2


@dataclass
class Inputs:
    """The arguments of one ``forward`` call: made of zeros from shapes, or real tensors."""

    shapes: List[Shape] = field(default_factory=list)
    dtypes: List[torch.dtype] = field(default_factory=list)
    data: Optional[Tuple[tuple, dict]] = None  # real (args, kwargs), when the user gave tensors
    assumed: Optional[str] = None  # what a side (--size) was taken to mean, from the model's first conv
    # Keyword inputs made from shapes (a Hugging Face model's input_ids, attention_mask...): one name
    # per shape, and the value each is filled with (an attention mask of ones attends to every token).
    names: Optional[List[str]] = None
    fills: Optional[List[float]] = None

    @property
    def shape(self) -> Optional[Shape]:
        """The single tensor input's shape (what the size solver and diagnosis work on), else None."""
        return self.shapes[0] if self.data is None and len(self.shapes) == 1 else None

    @property
    def batch_size(self) -> Optional[int]:
        """The leading dimension of the first input (of real data too); None for a scalar input."""
        if self.data is not None:
            first = next((t for t in torch.utils._pytree.tree_leaves(self.data)
                          if isinstance(t, torch.Tensor) and t.dim() > 0), None)
            return None if first is None else int(first.shape[0])
        return self.shapes[0][0] if self.shapes and self.shapes[0] else None

    @property
    def real(self) -> bool:
        return self.data is not None

    def make(self, device: str) -> Tuple[tuple, dict]:
        """Arguments on ``device``: zeros of the given shapes, or the real data (moved; on meta, stand-ins)."""
        if self.data is None and self.names:
            fills = self.fills or [0] * len(self.names)
            return (), {n: torch.full(s, f, dtype=d, device=device)
                        for n, s, d, f in zip(self.names, self.shapes, self.dtypes, fills)}
        if self.data is None:
            return tuple(torch.zeros(s, dtype=d, device=device) for s, d in zip(self.shapes, self.dtypes)), {}
        args, kwargs = self.data

        def move(x):
            if isinstance(x, torch.Tensor):
                if device == "meta":
                    return torch.empty_like(x, device="meta")
                # A copy: a forward writing into its input, or archscope tagging it, leaves the caller's as it was
                return x.detach().to(device, copy=True).requires_grad_(x.requires_grad)
            return x

        return torch.utils._pytree.tree_map(move, (args, kwargs))

    def made_values(self, args: tuple, kwargs: dict) -> List[Tuple[torch.Tensor, float]]:
        """The tensors ``make`` made and the value of each one's every element (none for real data)."""
        if self.data is not None:
            return []
        if self.names:
            fills = dict(zip(self.names, self.fills or [0] * len(self.names)))
            return [(t, fills[n]) for n, t in kwargs.items()]
        return [(t, 0) for t in args]

    def cast(self, dtype: torch.dtype) -> "Inputs":
        """The same inputs with every floating one at ``dtype`` (integer ids stay integers)."""
        def to(x):
            return x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x

        data = None if self.data is None else torch.utils._pytree.tree_map(to, self.data)
        return dataclasses.replace(self, shapes=list(self.shapes), data=data,
                                   dtypes=[dtype if d.is_floating_point else d for d in self.dtypes])

    def resized(self, specs: list, batch: Optional[int]) -> "Inputs":
        """Named inputs with the user's shapes: one spec per name, in order; or one spec for every input
        of its rank (``--input 1x512`` sets input_ids, attention_mask and decoder_input_ids; ``--size 384``
        an image's side or a sequence's length). Each input keeps its dtype unless the spec gives one."""
        shapes, dtypes = list(self.shapes), list(self.dtypes)
        if len(specs) > 1 and len(specs) != len(self.names):
            raise UsageError(f"{len(specs)} input shapes for {len(self.names)} inputs ({', '.join(self.names)}): "
                             "give one shape for all, or one per input in that order")
        targets = [[i] for i in range(len(specs))] if len(specs) > 1 else [list(range(len(shapes)))] * len(specs)
        for spec, indices in zip(specs, targets):
            if isinstance(spec, int):  # a side: an image's height and width, a sequence's length
                if spec < 1:
                    raise UsageError(f"bad --size {spec}: it must be a positive integer")
                for i in indices:
                    keep = len(shapes[i]) - (2 if len(shapes[i]) >= 4 else 1)
                    shapes[i] = tuple(shapes[i][:keep]) + (spec,) * (len(shapes[i]) - keep)
                continue
            dims, dtype = parse_shape(spec) if isinstance(spec, str) else (tuple(int(d) for d in spec), None)
            if any(d < 0 for d in dims):
                raise UsageError(f"bad input shape {dims}: every size must be a positive integer")
            matched = [i for i in indices if len(shapes[i]) == len(dims)]
            if not matched:
                raise UsageError(f"input {shape_text(dims)} has no match among this model's inputs "
                                 f"({self.summary()}): give a shape of one of those ranks")
            for i in matched:
                shapes[i], dtypes[i] = dims, dtype or dtypes[i]
        if batch is not None:
            if batch < 1:
                raise UsageError(f"bad --batch {batch}: it must be a positive integer")
            shapes = [(batch,) + tuple(s[1:]) for s in shapes]
        return dataclasses.replace(self, shapes=shapes, dtypes=dtypes)

    def summary(self) -> str:
        """``input_ids 1×128 int64, attention_mask 1×128 int64`` (named inputs)."""
        return ", ".join(f"{n} {shape_text(s)} {dtype_name(d)}" for n, s, d in zip(self.names, self.shapes, self.dtypes))

    def describe(self) -> Any:
        """Shape(s) for reports: one shape, a list for several, ``{name: shape}`` for keyword inputs."""
        if self.data is None and self.names:
            return {n: list(s) for n, s in zip(self.names, self.shapes)}
        if self.data is None:
            shapes = [list(s) for s in self.shapes]
            return shapes[0] if len(shapes) == 1 else shapes
        args, kwargs = self.data
        return shape_of(kwargs) if kwargs and not args else shape_of(list(args) + list(kwargs.values()))

    def dtype_names(self) -> Optional[List[str]]:
        if self.data is None:
            names = [dtype_name(d) for d in self.dtypes]
        else:
            leaves = torch.utils._pytree.tree_leaves(self.data)
            names = [dtype_name(t.dtype) for t in leaves if isinstance(t, torch.Tensor)]
        return None if all(n == "float32" for n in names) else names


def resolve_inputs(
    input_size: InputSize,
    model: nn.Module,
    default: Any,
    batch: Optional[int] = None,
    dtypes: Optional[Sequence[Any]] = None,
    input_data: Any = None,
) -> Inputs:
    """Work out what ``forward`` is called with.

    ``input_data`` (real tensors) wins. Otherwise ``input_size`` may be a full shape (tuple or
    ``"1x1x224x224"``, optionally ``":int64"``), a list of them (one per positional input), a
    side (int: ``batch × C × side…`` of the rank the first conv needs, C from that conv, else 1),
    or ``None`` for the model's default (a side, a full shape, or ready-made ``Inputs``).
    """
    if input_data is not None:
        if input_size is not None:
            raise UsageError("give either input data or an input size, not both")
        return Inputs(data=_as_call(input_data))
    if isinstance(default, Inputs) and default.names:
        if dtypes is not None:
            raise UsageError("this model's inputs are named, each with its dtype: give a dtype inside the shape "
                             "(--input 1x512:int64)")
        return default.resized(_split(input_size) if input_size is not None else [], batch)
    if input_size is None and isinstance(default, Inputs):
        return default
    if input_size is None:
        input_size = default
    if input_size is None:
        raise UsageError("this model has no default input size: pass --input (e.g. 1x3x32x32) or --size")

    specs = _split(input_size)
    shapes, parsed_dtypes = [], []
    assumed = None
    for spec in specs:
        if isinstance(spec, str):
            shape, dtype = parse_shape(spec)
        elif isinstance(spec, int):
            shape, dtype = _from_side(spec, model), None
            assumed = _assumption(spec, model)
        else:
            shape, dtype = tuple(int(d) for d in spec), None
            if not shape or any(d <= 0 for d in shape):
                raise UsageError(f"bad input shape {tuple(spec)}: every size must be a positive integer")
        shapes.append(shape)
        parsed_dtypes.append(dtype)
    if dtypes is not None:
        if len(dtypes) != len(shapes):
            raise UsageError(f"{len(dtypes)} dtypes for {len(shapes)} inputs: give one per input")
        parsed_dtypes = [parse_dtype(d) if isinstance(d, str) else d for d in dtypes]
    final_dtypes = [d or torch.float32 for d in parsed_dtypes]
    if batch is not None:
        if batch <= 0:
            raise UsageError(f"bad --batch {batch}: it must be a positive integer")
        shapes = [(batch,) + tuple(s[1:]) for s in shapes]
    # An explicit shape is run as given: a model may reshape it (D2L's MLP turns 1x784 into an image),
    # or define a Conv1d head before its Conv2d stem. Only a side is read through the first conv.
    return Inputs(shapes, final_dtypes, assumed=assumed)


def _split(input_size: InputSize) -> list:
    """One spec, or a list of them: ``(1, 3, 8, 8)`` is one shape, ``[(1, 3), (1, 5)]`` two."""
    if isinstance(input_size, (str, int)):
        return [input_size]
    items = list(input_size)
    if not items:
        raise UsageError("empty input size")
    if all(isinstance(d, int) for d in items):
        return [tuple(items)]
    return items


def _from_side(side: int, model: nn.Module) -> Shape:
    if side <= 0:
        raise UsageError(f"bad input size {side}: it must be a positive integer")
    rank = expected_rank(model) or 4
    return (1, first_in_channels(model) or 1) + (side,) * (rank - 2)


def _assumption(side: int, model: nn.Module) -> str:
    conv = first_spatial_layer(model)
    if conv is None:
        return f"--size {side} was read as 1x1x{side}x{side} (the model has no conv to say its rank and channels)"
    rank = len(conv.kernel_size) + 2
    shape = "x".join(["1", str(conv.in_channels)] + [str(side)] * (rank - 2))
    return (f"--size {side} was read as {shape} from the model's first-defined conv ({type(conv).__name__}, "
            f"{conv.in_channels} channels); give --input to say otherwise")


def _as_call(data: Any) -> Tuple[tuple, dict]:
    """torchinfo's ``input_data``: a tensor, a tuple/list of positional arguments, or a dict of keywords."""
    if isinstance(data, torch.Tensor):
        return (data,), {}
    if isinstance(data, dict):
        return (), dict(data)
    if isinstance(data, (tuple, list)):
        return tuple(data), {}
    raise UsageError(f"input data must be a tensor, a tuple of tensors or a dict, not {type(data).__name__}")


def load_input_data(path: str) -> Any:
    """``--input-data file.pt``: a tensor, tuple or dict saved with ``torch.save`` (read without running code)."""
    if not os.path.isfile(path):
        raise UsageError(f"--input-data: file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's warning about a pickled file comes before our one line
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch(\.|$)")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
        reason = first_line(error).split(". ")[0]
        raise UsageError(f"--input-data {path} is not a tensor, tuple or dict saved with torch.save ({reason})") from None


# --------------------------------------------------------------------------- shape helpers

def _fields_of(obj: Any) -> Optional[dict]:
    """A NamedTuple's or a dataclass instance's fields by name (HF's ModelOutput is a dict already)."""
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return dict(zip(obj._fields, obj))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and not isinstance(obj, dict):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return None


def dims(t: torch.Tensor) -> List[int]:
    """A tensor's shape; a nested (ragged) tensor's padded shape: its count, then each dimension's
    largest size over its components (what ``to_padded_tensor`` would make)."""
    if not getattr(t, "is_nested", False):
        return list(t.shape)
    parts = t.unbind()
    if not parts:
        return [0]
    return [len(parts)] + [max(int(p.shape[i]) for p in parts) for i in range(parts[0].dim())]


def tensors_in(obj: Any) -> List[torch.Tensor]:
    """Every tensor in an output: nested tuples, lists, dicts, NamedTuples and dataclasses."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    fields = _fields_of(obj)
    if fields is not None:
        obj = fields
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors_in(v)]
    if isinstance(obj, (tuple, list)):
        return [t for v in obj for t in tensors_in(v)]
    return []


def shape_of(obj: Any) -> Any:
    """Shapes of the tensors in a module's input or output: a list for one tensor, a list of
    those for several, ``{key: shape}`` for a dict, a NamedTuple or a dataclass (its field
    names kept), None if there is none. A nested (ragged) tensor shows its padded shape."""
    if isinstance(obj, torch.Tensor):
        return dims(obj)
    fields = _fields_of(obj)
    if fields is not None:
        obj = fields
    if isinstance(obj, dict):
        shapes = {str(k): shape_of(v) for k, v in obj.items()}
        shapes = {k: s for k, s in shapes.items() if s is not None}
        return shapes or None
    if isinstance(obj, (tuple, list)):
        shapes = [shape_of(o) for o in obj]
        shapes = [s for s in shapes if s is not None]
        if not shapes:
            return None
        return shapes[0] if len(shapes) == 1 else shapes
    return None


def layer_name(name: str) -> str:
    """A layer's name as it reads in a sentence: ``layer '7'`` for Sequential's bare numbers
    ("layer '7' needs 400 features", not "7 needs 400 features"), the name itself otherwise."""
    return f"layer '{name}'" if name and name.replace(".", "").isdigit() else name


def shape_text(shape: Any) -> str:
    """[1, 3, 8, 8] → '1×3×8×8'; several → joined by ', '; a dict keeps its keys: 'out: 1×21×8×8'."""
    if shape is None:
        return "—"
    if isinstance(shape, dict):
        return ", ".join(f"{k}: {shape_text(s)}" for k, s in shape.items())
    if shape and isinstance(shape[0], (list, dict)):
        return ", ".join(shape_text(s) for s in shape)
    return "×".join(str(d) for d in shape)
