"""Per-model training defaults. They live on each model's registry entry
(``register_model(..., recipe=Recipe(...))``), so a model a user registers carries its own.

Every value can be overridden by a flag; D2L's own settings are ``--optimizer adam
--schedule none --lr 0.001`` (0.002 for NiN). Only LeNet's recipe has been checked on the
full data here (3 epochs on CPU); the others were chosen from short CPU runs.
"""
from __future__ import annotations

from archscope.zoo.registry import DEFAULT_RECIPE as DEFAULT
from archscope.zoo.registry import Recipe

__all__ = ["DEFAULT", "Recipe", "recipe_for"]


def recipe_for(model: str) -> Recipe:
    """The registered model's recipe; the default for anything else (a file, tv:NAME)."""
    from archscope.zoo import list_models
    from archscope.zoo.registry import get_entry

    return get_entry(model).recipe if model in list_models() else DEFAULT
