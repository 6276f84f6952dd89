"""The model listing (``archscope list``): one row per model of the zoo, torchvision or timm,
each traced on meta, beside the figures its library publishes."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional

from archscope.analysis.api import trace
from archscope.analysis.records import Result
from archscope.errors import ArchscopeError, UsageError, first_line
from archscope.models import registry
from archscope.models.resolve import SOURCES, split_source


@dataclass
class ListedModel:
    name: str
    input_shape: object  # a shape, or several
    params: Optional[int]  # None: the model could not be traced (description says why)
    flops: Optional[int]
    description: str
    published_params: Optional[int] = None  # torchvision's weights.meta["num_params"]
    published_gmacs: Optional[float] = None  # torchvision's weights.meta["_ops"]
    published_note: Optional[str] = None  # when the published figures are of another build

    @property
    def macs_g(self) -> Optional[float]:
        return None if self.flops is None else self.flops / 2e9

    def to_dict(self):
        d = asdict(self)
        if self.published_params is None and self.published_gmacs is None:
            del d["published_params"], d["published_gmacs"]
        if self.published_note is None:
            del d["published_note"]
        return d


class Listing(Result, list):
    """The rows of ``archscope list``; ``source`` is "zoo", "tv" or "timm"."""

    def __init__(self, rows, source: str = "zoo"):
        super().__init__(rows)
        self.source = source

    def to_dict(self):
        return [r.to_dict() for r in self]

    def summary(self) -> str:
        return f"{len(self)} {self.source} models"


def list_rows(pattern: str = "*") -> Listing:
    """Rows for the zoo, or for ``tv:PATTERN`` / ``timm:PATTERN`` (every model traced on meta)."""
    prefix, rest = split_source(pattern)
    if prefix is not None:
        return Listing(_library_rows(prefix, rest or "*"), prefix)
    names = registry.list_models(pattern)
    if not names:
        raise UsageError(f"no model matches '{pattern}': known models: {', '.join(registry.list_models())}")
    return Listing([_row(name, registry.get_entry(name).description) for name in names])


def _row(spec: str, description: str) -> ListedModel:
    try:
        t = trace(spec)
    except ArchscopeError as error:
        return ListedModel(spec, None, None, None, f"cannot be traced: {first_line(error)}")
    return ListedModel(spec, t.input_shape, t.totals.params, t.totals.flops, description)


def _library_rows(prefix: str, pattern: str) -> List[ListedModel]:
    source = SOURCES[prefix]
    names = source.names(pattern)
    if not names:
        raise UsageError(f"no {prefix} model matches '{pattern}' (try '{prefix}:*')")
    limit = getattr(source, "LIST_LIMIT", None)
    if limit is not None and len(names) > limit:
        shown = ", ".join(names[:12])
        raise UsageError(f"{len(names)} {prefix} models match '{pattern}' (each is built and traced to list it): "
                         f"narrow the pattern, e.g. '{prefix}:{names[0][:3]}*' (they start: {shown}, ...)")
    rows = []
    for name in names:
        row = _row(f"{prefix}:{name}", source.describe(name))
        published = source.published(name)
        row.published_params, row.published_gmacs = published["params"], published["gmacs"]
        row.published_note = published["note"]
        rows.append(row)
    return rows
