"""The model zoo: D2L's modern CNNs, registered by name.

>>> from archscope.zoo import list_models, get_model
>>> list_models("vgg*")
['vgg']
"""
from archscope.zoo.registry import (ModelEntry, Recipe, get_entry, get_model, list_models, register_model,
                                     unregister_model)

# Importing the architecture modules registers them.
from archscope.zoo import alexnet, densenet, googlenet, lenet, nin, resnet, vgg  # noqa: E402,F401

__all__ = ["ModelEntry", "Recipe", "get_entry", "get_model", "list_models", "register_model", "unregister_model"]
