"""Errors a user can cause, and the exit code each one maps to.

The CLI prints ``str(error)`` as one line and exits with ``exit_code``; only
``--debug`` shows a traceback. Library callers can catch ``ArchscopeError``.
"""
from __future__ import annotations

import re


class ArchscopeError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 1


class UsageError(ArchscopeError):
    """Bad input on the command line or in an API call (exit code 2)."""

    exit_code = 2


class ModelFailure(UsageError):
    """The model raised while running on the given input.

    ``diagnosis`` (an ``archscope.analysis.diagnose.Diagnosis``) says which layer
    failed, what reached it and what to change.
    """

    def __init__(self, message: str, diagnosis=None):
        super().__init__(message)
        self.diagnosis = diagnosis


class TrainingError(ArchscopeError):
    """Training or evaluation could not go on (exit code 1)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (PyTorch's are often long), or its type."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def is_meta_limitation(error: BaseException) -> bool:
    """True when an error comes from the meta device itself (data-dependent code such as
    ``.item()``/``.tolist()``, an op without a meta kernel), not from the model being wrong:
    then building or running it again on CPU is the remedy."""
    if isinstance(error, ArchscopeError):
        return False
    text = str(error).lower()
    if 'missing the required "forward"' in text:
        return False
    # "meta" as a word ("meta tensor", "on the meta device", "'meta'", PyTorch's "register_meta"), not
    # inside "metadata".
    return bool(re.search(r"(?<![a-z])meta(?![a-z])", text)) or "data-dependent" in text or "data dependent" in text
