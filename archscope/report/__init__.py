"""Render results: rich tables for people, JSON / CSV / Markdown for machines and docs.

Importing this package registers every renderer and plugs ``render(..., "table")`` into the
analysis layer's ``Result`` (see ``render.py``)."""
from archscope.report import check, compare, diagram, listing, memory, sweep, tables, timing, training, weights  # noqa: F401 - they register
from archscope.report.render import FORMATS, check_format, render

__all__ = ["FORMATS", "check_format", "render"]


class _ReportPackage(type(check)):
    """``archscope.report(model, path)`` writes the page, although importing this package makes
    ``archscope.report`` the package itself (Python sets a subpackage as its parent's attribute,
    which hides the façade's lazy ``report``): the package is callable, and calls ``page``."""

    def __call__(self, *args, **kwargs):
        from archscope.report.page import page

        return page(*args, **kwargs)


import sys as _sys  # noqa: E402 - the class above is the whole reason for it

_sys.modules[__name__].__class__ = _ReportPackage
