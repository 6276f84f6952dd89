"""Models: the zoo's registry and architectures, and every source a MODEL can name.

>>> from archscope.models import list_models, get_model
>>> list_models("vgg*")
['vgg']
"""
from archscope.models import zoo  # noqa: F401 - importing the architectures registers them
from archscope.models.build import Loaded
from archscope.models.registry import (
                                       ModelEntry,
                                       Recipe,
                                       get_entry,
                                       get_model,
                                       list_models,
                                       recipe_for,
                                       register_model,
                                       unregister_model,
)
from archscope.models.resolve import SOURCES, check_named_by_file, load_model, parse_args

__all__ = ["Loaded", "ModelEntry", "Recipe", "SOURCES", "check_named_by_file", "get_entry", "get_model", "list_models", "load_model",
           "parse_args", "recipe_for", "register_model", "unregister_model"]
