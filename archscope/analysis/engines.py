"""Other tools' view of the same model and input, for users who know them (``--engine``)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from archscope.errors import UsageError, first_line
from archscope.inputs import resolve_inputs
from archscope.models import load_model
from archscope.quiet import library_warnings_silenced


def torchinfo_summary(model: Any, depth: int = 1, batch: Optional[int] = None, input_size=None, input_data=None,
                      model_kwargs: Optional[Dict[str, Any]] = None) -> str:
    """torchinfo's own summary, of the model archscope would trace, built on meta, with the same input."""
    import torchinfo  # a dependency, but heavy: only when this engine is asked for

    loaded = load_model(model, device="meta", **(model_kwargs or {}))
    inputs = resolve_inputs(input_size, loaded.module, loaded.default_input, batch, None, input_data)
    args, kwargs = inputs.make("meta")
    try:
        with library_warnings_silenced():
            stats = torchinfo.summary(loaded.module, input_data=list(args) if args else None, depth=depth,
                                      device="meta", verbose=0, **kwargs)
    except Exception as error:  # noqa: BLE001 - torchinfo's own failure, in one line
        raise UsageError(f"torchinfo could not summarise {loaded.label}: {first_line(error)}") from error
    return str(stats)
