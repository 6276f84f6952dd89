"""What every model source returns (``Loaded``), and the one way a builder is run.

A builder is called inside ``torch.device(device)`` so its parameters land on the requested
device (``meta``: no memory). A builder that cannot run on meta (``.tolist()`` on a tensor
while building) is built again on CPU, with a note saying so.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Type

import torch
from torch import nn

from archscope.dispatch import DispatchMode, writes_first_in_place
from archscope.errors import UsageError, first_line, is_meta_limitation
from archscope.quiet import library_warnings_silenced


@dataclass
class Loaded:
    module: nn.Module
    label: str
    # The model's default input: a square side (int), a full shape (tuple), or ready-made
    # ``archscope.inputs.Inputs`` (e.g. a detection model's list of images); None if unknown.
    default_input: Any
    rebuild: Optional[Callable[[str], nn.Module]]  # build again on another device
    note: Optional[str] = None  # e.g. "built on CPU: the builder cannot run on meta"
    passed_in: bool = False  # the user's own nn.Module object, not one archscope built

    @property
    def default_side(self) -> Optional[int]:
        """The default square side, when the default input is one."""
        return self.default_input if isinstance(self.default_input, int) else None


def guarded(label: str, kwargs: Dict[str, Any], make: Callable[[], nn.Module],
            catch: Tuple[Type[BaseException], ...] = (TypeError, ValueError, RuntimeError)):
    """``build(device)``: ``make()`` under ``torch.device(device)``; an exception of ``catch``
    (a bad option, a shape the builder refuses) becomes one usage line naming the options."""

    def build(device: str) -> nn.Module:
        with torch.device(device):
            try:
                return make()
            except catch as error:
                raise UsageError(f"cannot build {label} with {options_text(kwargs)}: {first_line(error)}") from error

    return build


class SkipMetaWrites(DispatchMode):
    """While a model is built on meta, in-place writes to meta tensors are skipped: a builder's weight
    initialisation (timm's ``trunc_normal_``: uniform_, erfinv_, mul_, add_, clamp_) writes values a
    meta tensor does not have, through PyTorch's Python reference kernels (0.35 of ConvNeXt-T's 0.41 s
    build). Only ops that write their first argument's contents are skipped, never ones that change its
    shape (``resize_``, ``squeeze_``... carry PyTorch's inplace_view tag)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if writes_first_in_place(func) and args and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta":
            return args[0]
        return func(*args, **(kwargs or {}))


def build_on(device: str, build: Callable[[str], nn.Module], label: str) -> Tuple[nn.Module, Optional[str]]:
    """Build on ``device``; if the builder itself cannot run on meta, build on CPU instead.
    Returns ``(module, note)``."""
    try:
        with library_warnings_silenced(), (SkipMetaWrites() if device == "meta" else contextlib.nullcontext()):
            return build(device), None
    except Exception as error:  # noqa: BLE001 - only a meta limitation is retried; the rest is re-raised
        cause = error.__cause__ if isinstance(error, UsageError) and error.__cause__ is not None else error
        if device != "meta" or not is_meta_limitation(cause):
            raise
        note = f"{label}'s builder cannot run on the meta device ({first_line(cause)}), so it was built on CPU"
        with library_warnings_silenced():
            return build("cpu"), note


def options_text(kwargs: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"
