"""How numbers read: one place for the prefixes and units every renderer uses."""
from __future__ import annotations

import csv
import io
from typing import Any, Callable, Dict, Iterable


def human(n: float, unit: str = "") -> str:
    """1_873_930 → '1.87 M'; small numbers stay exact."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{int(n)} {unit}".strip()


def human_bytes(n: float) -> str:
    """Bytes in IEC units: 187058984 → '178.39 MiB'."""
    for unit, factor in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{int(n)} B"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def ranges_text(pairs) -> str:
    """[[3, 5], [9, 9]] → '3..5, 9'."""
    if not pairs:
        return "none"
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in pairs)


def csv_of(records: Iterable[Any], cells: Callable[[Any], Dict[str, Any]]) -> str:
    """One CSV line per record: the header from the first record's ``cells``, then their values."""
    buf = io.StringIO()
    writer = None
    for record in records:
        row = cells(record)
        if writer is None:
            writer = csv.DictWriter(buf, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow(row)
    return buf.getvalue()


def calls_shape_text(output_shape: Any, calls: int, call_shapes: Any, shape_text: Callable[[Any], str]) -> str:
    """A module's output over all its calls: ``1×256×56×56 (×3 calls)`` when every call gave that
    shape; ``1×64×56×56 ×2, 1×256×56×56 (3 calls)`` when they differ (shapes in first-seen order)."""
    if not call_shapes:
        return shape_text(output_shape) + (f" (×{calls} calls)" if calls > 1 else "")
    counts: Dict[str, int] = {}
    for shape in call_shapes:
        text = shape_text(shape)
        counts[text] = counts.get(text, 0) + 1
    parts = [f"{text} ×{n}" if n > 1 else text for text, n in counts.items()]
    return f"{', '.join(parts)} ({len(call_shapes)} calls)"

