"""Train the zoo's models on Fashion-MNIST, data resident on the device.

The names below are imported on first use: the CLI reads ``train.config`` to build its flags,
and that must not import torch."""
_LAZY = {
    "TrainConfig": "archscope.train.config",
    "TrainResult": "archscope.train.config",
    "resume_config": "archscope.train.config",
    "train": "archscope.train.trainer",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'archscope.train' has no attribute {name!r}")


__all__ = list(_LAZY)
