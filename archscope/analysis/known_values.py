"""Values a meta run knows: the inputs archscope made (all zeros, a mask of ones) and what follows from them.

A meta tensor has a shape but no values, so code that reads one (``.item()``, ``if mask.all()``,
``pad_id in input_ids``) cannot run on meta. Yet when archscope made the input itself, every element
is the same known number, and so is every element of what element-wise ops, casts, views, indexing
and full reductions make from it. Transformers reads exactly such values: "is the attention mask all
ones?" (then it skips masking), "is there padding without a mask?" (a warning). This mode follows
those uniform values and answers such reads as a CPU run on the same input would; a read of anything
else still raises, and the caller falls back to CPU as before.

Every answer is the value a real run on archscope's own input would read, so its branches are that
input's (the caller says so in its note).
"""
from __future__ import annotations

from typing import Any, Iterable, Tuple

import torch
from torch.utils.weak import WeakTensorKeyDictionary

from archscope.dispatch import DispatchMode

aten = torch.ops.aten

# Ops whose every output element is one of the input's elements (or a cast of one).
_COPIES = {
    "_to_copy", "clone", "contiguous", "expand", "expand_copy", "index", "index_select", "gather", "repeat",
    "view", "_unsafe_view", "reshape", "slice", "select", "unsqueeze", "squeeze", "permute", "t", "transpose",
    "alias", "detach", "flatten", "unfold", "narrow", "split", "chunk", "lift_fresh", "lift_fresh_copy",
    "flip", "roll", "diagonal", "as_strided", "_reshape_alias", "view_as", "unbind", "split_with_sizes",
}
_CREATES = {"full", "full_like", "zeros", "zeros_like", "ones", "ones_like", "new_full", "new_zeros", "new_ones",
            "scalar_tensor"}
_REDUCES = {"all", "any", "amax", "amin", "max", "min", "sum", "mean", "prod"}
_READS = {"_local_scalar_dense", "is_nonzero", "equal"}


class KnownValues(DispatchMode):
    def __init__(self, seeds: Iterable[Tuple[torch.Tensor, Any]] = ()):
        super().__init__()
        self.values = WeakTensorKeyDictionary()  # meta tensor → the value of every one of its elements
        for tensor, value in seeds:
            self.values[tensor] = value
        self.answered = 0  # reads of values answered (the input's values decided a branch)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._overloadpacket.__name__
        if name in _READS:
            answer = self._read(name, args)
            if answer is not None:
                self.answered += 1
                return answer[0]
        out = func(*args, **kwargs)
        if not self.values and name not in _CREATES:
            return out  # nothing known (most ops of most runs): nothing to follow or forget
        self._forget_written(func, args)
        if name in _CREATES or any(isinstance(a, torch.Tensor) and a in self.values for a in args):
            # The modes below (the FLOP counter) must not see this bookkeeping's own small CPU ops.
            with torch.utils._python_dispatch._disable_current_modes():
                try:
                    self._follow(func, name, args, kwargs, out)
                except Exception:  # noqa: BLE001 - a value this mode cannot follow is simply not known
                    pass
        return out

    # ---------------------------------------------------------------- reading

    def _read(self, name, args):
        if name == "equal":
            a, b = args[0], args[1]
            if a in self.values and b in self.values:
                return (a.shape == b.shape and self.values[a] == self.values[b],)
            return None
        t = args[0]
        if not isinstance(t, torch.Tensor) or t.device.type != "meta" or t not in self.values:
            return None
        value = self.values[t]
        if name == "is_nonzero":
            return (bool(value),)
        return (_python(value, t.dtype),)

    # ---------------------------------------------------------------- following

    def _follow(self, func, name, args, kwargs, out):
        if not isinstance(out, torch.Tensor) or out.device.type != "meta":
            if isinstance(out, (tuple, list)) and name in _COPIES and args and args[0] in self._known(args[:1]):
                for o in out:  # split, chunk, unbind: pieces of a uniform tensor are uniform
                    if isinstance(o, torch.Tensor):
                        self.values[o] = _cast(self.values[args[0]], o.dtype)
            return
        if name in _CREATES:
            where = {"full": 1, "full_like": 1, "new_full": 2}.get(name)
            value = kwargs.get("fill_value", args[where] if where is not None and len(args) > where else None)
            if name.startswith("zeros") or name == "new_zeros":
                value = 0
            elif name.startswith("ones") or name == "new_ones":
                value = 1
            elif name == "scalar_tensor":
                value = args[0]
            if isinstance(value, (bool, int, float)):
                self.values[out] = _cast(value, out.dtype)
            return
        if out.numel() == 0:
            return
        if name in _COPIES:
            if isinstance(args[0], torch.Tensor) and args[0] in self.values:
                self.values[out] = _cast(self.values[args[0]], out.dtype)
            return
        if name in _REDUCES and func._schema.returns and len(func._schema.returns) == 1:
            source = args[0]
            if isinstance(source, torch.Tensor) and source in self.values and source.numel() > 0:
                value = self.values[source]
                if name == "sum":
                    value = value * (source.numel() // max(out.numel(), 1))
                elif name == "prod":
                    value = value ** (source.numel() // max(out.numel(), 1))
                elif name in ("all", "any"):
                    value = bool(value)
                self.values[out] = _cast(value, out.dtype)
            return
        if torch.Tag.pointwise in func.tags and not _writes(func):
            self._pointwise(func, args, kwargs, out)

    def _pointwise(self, func, args, kwargs, out):
        """Run the op on one known element of each operand, on CPU: the value of every output element."""
        def scalar(x):
            if isinstance(x, torch.Tensor):
                if x not in self.values:
                    raise LookupError
                return torch.tensor(self.values[x], dtype=x.dtype)
            return x

        cpu_args = tuple(scalar(a) for a in args)
        cpu_kwargs = {k: scalar(v) for k, v in kwargs.items() if k not in ("device", "out")}
        result = func(*cpu_args, **cpu_kwargs)
        if isinstance(result, torch.Tensor) and result.numel() == 1:
            self.values[out] = _python(result.item(), out.dtype)

    def _writes_nothing(self, func, args) -> bool:
        """``x[mask] = v`` or ``x.masked_fill_(mask, v)`` with a mask known to be all False leaves x as it was."""
        name = func._overloadpacket.__name__
        if name == "index_put_" and len(args) > 1 and isinstance(args[1], (list, tuple)) and len(args[1]) == 1:
            return _known_false(self.values, args[1][0])
        if name == "masked_fill_" and len(args) > 1:
            return _known_false(self.values, args[1])
        return False

    def _known(self, tensors):
        return [t for t in tensors if isinstance(t, torch.Tensor) and t in self.values]

    def _forget_written(self, func, args):
        """An op that writes a tensor in place makes it, and every view of the same memory, unknown."""
        if not _writes(func) or self._writes_nothing(func, args):
            return
        for index, argument in enumerate(func._schema.arguments):
            if argument.alias_info is not None and argument.alias_info.is_write and index < len(args):
                written = args[index]
                if isinstance(written, torch.Tensor):
                    root = _root(written)
                    for t in [t for t in self.values.keys() if _root(t) == root]:
                        del self.values[t]


def _known_false(values, mask) -> bool:
    return isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask in values and not values[mask]


def _writes(func) -> bool:
    return any(a.alias_info is not None and a.alias_info.is_write for a in func._schema.arguments)


def _root(t: torch.Tensor) -> int:
    """The memory a tensor views (views share one storage, even on meta)."""
    return t.untyped_storage()._cdata


def _cast(value, dtype: torch.dtype):
    return _python(torch.tensor(value).to(dtype).item(), dtype)


def _python(value, dtype: torch.dtype):
    if dtype == torch.bool:
        return bool(value)
    if dtype.is_floating_point or dtype.is_complex:
        return float(value) if not dtype.is_complex else complex(value)
    return int(value)
