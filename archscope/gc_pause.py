"""The cyclic garbage collector waits while archscope builds and runs a model.

Building and tracing a model makes hundreds of thousands of short-lived objects (modules, hook
handles, rows, meta tensors) that live just long enough to be promoted to the oldest generation,
and every few hundred thousand promotions Python walks every object of the process: with
transformers imported that is 0.3 s, charged to whichever trace happens to cross the line (in a
sweep, one model in three). Paused, those objects die by reference counting before any
collection sees them, so the collector has less to do later, not more. Reentrant, and it
restores the collector exactly as it found it (a caller who disabled it keeps it disabled).
"""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
