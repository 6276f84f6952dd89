"""Models from the user's own code: ``path/to/file.py:factory`` and ``package.module:attr``.

A factory may be a function or a class; it is called with the ``--arg`` keyword arguments.
Loading a file executes it, as ``python file.py`` would, without writing ``__pycache__`` next
to it. The user's own errors are reported with their file and line, not archscope's internals.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional

from torch import nn

from archscope.errors import UsageError
from archscope.models.build import Loaded, build_on, guarded


def load_factory(spec: str, device: str, kwargs: Dict[str, Any]) -> Loaded:
    target, _, attr = spec.rpartition(":")
    if not attr:
        raise UsageError(f"malformed MODEL '{spec}': expected file.py:factory or module:attr")
    namespace = import_user(target)
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

    _check_kwargs(factory, kwargs, label)

    def make() -> nn.Module:
        try:
            with user_code(target, label, "building the model"):
                model = factory(**kwargs)
        except Exception as error:  # noqa: BLE001 - the user's code raised: said with its file and line
            raise UsageError(f"{label} raised {user_error(error, target)}") from error
        if not isinstance(model, nn.Module):
            raise UsageError(f"{label} returned a {type(model).__name__}, not an nn.Module")
        return model

    build = guarded(label, kwargs, make, catch=())

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


@contextlib.contextmanager
def user_code(path: Optional[str], label: str, doing: str):
    """Around the user's own code (importing it, calling a factory): what it prints goes to stderr,
    so ``-f json`` stays machine-readable; it sees its own path as ``sys.argv`` (an argparse at
    import time parses nothing of archscope's); ``sys.exit(N)`` becomes one line naming the file."""
    argv = sys.argv
    sys.argv = [path or label]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except SystemExit as error:
        code = error.code if error.code is not None else 0
        raise UsageError(f"{label} called sys.exit({code!r}) while {doing}: archscope needs it to "
                         f"return instead (guard a script's main code with if __name__ == '__main__')") from None
    finally:
        sys.argv = argv


def import_user(target: str):
    """Import ``path/to/file.py`` or ``package.module``; the user's own errors are
    reported with their file and line, not archscope's internals."""
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise UsageError(f"file not found: {target}")
        if not path.endswith(".py"):
            raise UsageError(f"{target} is not a Python file: FILE:NAME takes a .py file that builds the model "
                             "(a checkpoint or weights file is not a model archscope can run)")
        name = "archscope_user_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, os.path.dirname(path))  # so the file can import its neighbours
        no_bytecode = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # inspection leaves the user's folders as they were
        try:
            with user_code(path, target, "being imported"):
                spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001
            raise UsageError(f"importing {target} raised {user_error(error, path)}") from error
        finally:
            sys.dont_write_bytecode = no_bytecode
            sys.path.remove(os.path.dirname(path))
        return module
    try:
        with user_code(None, target, "being imported"):
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
