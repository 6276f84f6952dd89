"""Which warnings archscope silences, in one place.

While it builds or runs a model, PyTorch and the model libraries warn about the model's own
layers (a zero-size conv, a deprecated argument, an init that will change, a TF32 or
nested-tensor hint): interleaved with a table they read as archscope's, and the failure, if
any, is what archscope reports. Only warnings raised from inside those libraries are
silenced, by category and origin; a warning from the user's own code still shows.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

# torch.nn.modules.module is left out: a warning a model's own forward raises with stacklevel=2
# is attributed to it (the frame that called forward), and that one is the user's to see.
LIBRARIES = r"(?!torch\.nn\.modules\.module$)(torch|torchvision|torchinfo|timm|transformers)(\.|$)"
CATEGORIES = (UserWarning, FutureWarning, DeprecationWarning)


@contextmanager
def library_warnings_silenced():
    with warnings.catch_warnings():
        for category in CATEGORIES:
            warnings.filterwarnings("ignore", category=category, module=LIBRARIES)
        yield
