"""Why a model failed on an input, and what to change: the failing layer (``blame``), the conv
arithmetic (``arithmetic``), the input sides that would work (``solver``), in words (``explain``)."""
from archscope.analysis.diagnose.explain import Diagnosis, diagnose

__all__ = ["Diagnosis", "diagnose"]
