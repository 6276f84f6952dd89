"""Resolve what the user named as MODEL into an ``nn.Module``.

MODEL may be a zoo name (``vgg``), a torchvision or timm model (``tv:resnet50``,
``timm:vit_tiny_patch16_224``), a file and factory (``path/to/net.py:build``), an
importable ``package.module:attr``, or (from Python) an ``nn.Module``. A factory may be a
function or a class; it is called with the ``--arg`` keyword arguments, inside a
``torch.device`` context so its parameters land on the requested device (``meta``:
no memory); a builder that cannot run on meta (``.tolist()`` on a tensor while building)
is built again on CPU, with a note saying so. Loading a file executes it, as
``python file.py`` would, without writing ``__pycache__`` next to it.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

from archscope.errors import UsageError, first_line, is_meta_limitation


@dataclass
class Loaded:
    module: nn.Module
    label: str
    # The model's default input: a square side (int), a full shape (tuple), or ready-made
    # ``archscope.trace.inputs.Inputs`` (e.g. a detection model's list of images); None if unknown.
    default_input: Any
    rebuild: Optional[Callable[[str], nn.Module]]  # build again on another device
    note: Optional[str] = None  # e.g. "built on CPU: the builder cannot run on meta"

    @property
    def input_size(self) -> Optional[int]:
        """The default square side, when the default is one."""
        return self.default_input if isinstance(self.default_input, int) else None


def build_on(device: str, build: Callable[[str], nn.Module], label: str):
    """Build on ``device``; if the builder itself cannot run on meta, build on CPU instead.
    Returns ``(module, note)``."""
    try:
        with warnings.catch_warnings():  # builders' FutureWarnings about init are not the user's business here
            warnings.simplefilter("ignore")
            return build(device), None
    except Exception as error:  # noqa: BLE001
        cause = error.__cause__ if isinstance(error, UsageError) and error.__cause__ is not None else error
        if device != "meta" or not is_meta_limitation(cause):
            raise
        note = f"{label}'s builder cannot run on the meta device ({first_line(cause)}), so it was built on CPU"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build("cpu"), note


def parse_args(pairs: List[str]) -> Dict[str, Any]:
    """``["ratio=8", "fc_layers=1"]`` → ``{"ratio": 8, "fc_layers": 1}`` (Python literals, else strings)."""
    kwargs: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"malformed --arg '{pair}': expected key=value, e.g. --arg fc_layers=1")
        try:
            kwargs[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value
    return kwargs


def load_model(spec: Any, device: str = "meta", **kwargs) -> Loaded:
    if isinstance(spec, nn.Module):
        if kwargs:
            raise UsageError("model options (--arg) apply only when archscope builds the model")
        return Loaded(spec, type(spec).__name__, getattr(spec, "input_size", None), None)
    if not isinstance(spec, str):
        raise UsageError(f"MODEL must be a zoo name, file.py:factory, module:attr or an nn.Module, not {type(spec).__name__}")
    source, sep, name = spec.partition(":")
    if sep and source in ("tv", "timm"):
        from archscope.zoo import external
        return external.load(source, name, device, kwargs)
    if ":" in spec and not _looks_like_drive(spec):
        return _load_factory(spec, device, kwargs)
    if spec.endswith(".py"):
        if not os.path.isfile(spec):
            raise UsageError(f"file not found: {spec}")
        found = module_candidates(_import_user(spec))
        pick = "build" if "build" in found or not found else found[0]
        raise UsageError(f"'{spec}' is a file: add the function or class in it that builds the model, "
                         f"as {spec}:{pick} (candidates: {', '.join(found) or 'none found'})")
    return _load_zoo(spec, device, kwargs)


def _looks_like_drive(spec: str) -> bool:
    return len(spec) > 1 and spec[1] == ":" and spec[0].isalpha() and os.name == "nt"


def _load_zoo(name: str, device: str, kwargs: Dict[str, Any]) -> Loaded:
    from archscope.zoo import get_entry, get_model

    entry = get_entry(name)

    def build(dev: str) -> nn.Module:
        with torch.device(dev):
            try:
                return get_model(name, **kwargs)
            except (TypeError, ValueError, RuntimeError) as error:
                raise UsageError(f"cannot build {name} with {_fmt(kwargs)}: {first_line(error)}") from error

    module, note = build_on(device, build, name)
    return Loaded(module, name, entry.input_size, build, note)


def _fmt(kwargs: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"


# --------------------------------------------------------------------------- user code

def _load_factory(spec: str, device: str, kwargs: Dict[str, Any]) -> Loaded:
    target, _, attr = spec.rpartition(":")
    if not attr:
        raise UsageError(f"malformed MODEL '{spec}': expected file.py:factory or module:attr")
    namespace = _import_user(target)
    if not hasattr(namespace, attr):
        candidates = module_candidates(namespace)
        listing = ", ".join(candidates) if candidates else "none found"
        raise UsageError(f"{target} has no attribute '{attr}'; candidates that give a model: {listing}")
    factory = getattr(namespace, attr)
    label = f"{os.path.basename(target)}:{attr}"
    input_size = getattr(factory, "input_size", None)

    if isinstance(factory, nn.Module):
        if kwargs:
            raise UsageError(f"{label} is a model instance, not a factory: it takes no --arg")
        return Loaded(factory, label, getattr(factory, "input_size", input_size), None)
    if not callable(factory):
        raise UsageError(f"{label} is a {type(factory).__name__}, not a function or class returning an nn.Module")

    def build(dev: str) -> nn.Module:
        _check_kwargs(factory, kwargs, label)
        with torch.device(dev):
            try:
                model = factory(**kwargs)
            except Exception as error:  # noqa: BLE001 - the user's code raised
                raise UsageError(f"{label} raised {user_error(error, target)}") from error
        if not isinstance(model, nn.Module):
            raise UsageError(f"{label} returned a {type(model).__name__}, not an nn.Module")
        return model

    model, note = build_on(device, build, label)
    return Loaded(model, label, getattr(model, "input_size", input_size), build, note)


def _check_kwargs(factory: Callable, kwargs: Dict[str, Any], label: str) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"]
    for key in kwargs:
        if key not in accepted:
            raise UsageError(f"{label} has no option '{key}'; it accepts: {', '.join(accepted) or 'no options'}")


def _import_user(target: str):
    """Import ``path/to/file.py`` or ``package.module``; the user's own errors are
    reported with their file and line, not archscope's internals."""
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise UsageError(f"file not found: {target}")
        name = "archscope_user_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, os.path.dirname(path))  # so the file can import its neighbours
        no_bytecode = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # inspection leaves the user's folders as they were
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001
            raise UsageError(f"importing {target} raised {user_error(error, path)}") from error
        finally:
            sys.dont_write_bytecode = no_bytecode
            sys.path.remove(os.path.dirname(path))
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name and target.startswith(error.name):
            raise UsageError(f"no module named '{target}' (is it installed, or did you mean a file path?)") from error
        raise UsageError(f"importing {target} raised {user_error(error, None)}") from error
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"importing {target} raised {user_error(error, None)}") from error


def user_error(error: BaseException, path: Optional[str]) -> str:
    """``"NameError: name 'x' is not defined (net.py, line 12)"``: the deepest frame in
    the user's file (or, for a module, outside archscope and the import machinery)."""
    frames = traceback.extract_tb(error.__traceback__)
    here = os.path.dirname(os.path.abspath(__file__))
    if path is not None:
        mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
    else:
        mine = [f for f in frames if not f.filename.startswith(here) and "importlib" not in f.filename]
    if isinstance(error, SyntaxError) and error.lineno:
        where = f" ({os.path.basename(error.filename or '?')}, line {error.lineno})"
        message = error.msg or "invalid syntax"  # str(error) repeats the location
        return f"{type(error).__name__}: {message}{where}"
    elif mine:
        where = f" ({os.path.basename(mine[-1].filename)}, line {mine[-1].lineno})"
    else:
        where = ""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}{where}" if message else f"{type(error).__name__}{where}"


def module_candidates(namespace) -> List[str]:
    """Names in a user module that give a model: nn.Module subclasses and instances, and
    functions defined there whose return annotation is a module (or unannotated)."""
    found = []
    for name, value in vars(namespace).items():
        if name.startswith("_"):
            continue
        if isinstance(value, nn.Module):
            found.append(name)
        elif inspect.isclass(value) and issubclass(value, nn.Module) and value.__module__ == namespace.__name__:
            found.append(name)
        elif inspect.isfunction(value) and value.__module__ == namespace.__name__:
            ret = inspect.signature(value).return_annotation
            if ret is inspect.Signature.empty or "Module" in str(ret) or (inspect.isclass(ret) and issubclass(ret, nn.Module)):
                found.append(name)
    return sorted(found)
