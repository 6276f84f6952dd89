"""``archscope check``: does every layer whose weights fix its input width get that width?

For each ``nn.Linear`` (``in_features``) and each conv (``in_channels``) the check compares
what the layer expects with what actually reaches it for the given input. When the forward
fails, the diagnosis says where, why and what to change; ``sizes`` adds a scan of square
input sides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from torch import nn

from archscope.analysis.diagnose import Diagnosis, diagnose
from archscope.analysis.diagnose.solver import SizeScan, scan
from archscope.analysis.records import Result
from archscope.analysis.run import RunOptions, attempt, check_device
from archscope.errors import UsageError
from archscope.inputs import InputSize, resolve_inputs, shape_text
from archscope.models import load_model


@dataclass
class LayerCheck:
    name: str
    type: str
    field: str  # "in_features" | "in_channels"
    expected: int
    arriving: Optional[int]  # None: the forward never reached this layer
    arriving_shape: Any

    @property
    def ok(self) -> Optional[bool]:
        return None if self.arriving is None else self.arriving == self.expected

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(repr=False)
class CheckReport(Result):
    model: str
    input_shape: Any
    device: str
    layers: List[LayerCheck]
    diagnosis: Optional[Diagnosis] = None
    scan: Optional[SizeScan] = None
    note: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.diagnosis is None and all(c.ok for c in self.layers)

    def summary(self) -> str:
        linears = sum(1 for c in self.layers if c.field == "in_features")
        state = "all checks hold" if self.ok else "some checks fail"
        return f"{self.model} at {shape_text(self.input_shape)}: {state} ({linears} Linear, {len(self.layers) - linears} conv)"

    def first_linear(self) -> Optional[LayerCheck]:
        return next((c for c in self.layers if c.field == "in_features"), None)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "input_shape": self.input_shape,
            "device": self.device,
            "ok": self.ok,
            "layers": [c.to_dict() for c in self.layers],
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
            "sizes": self.scan.to_dict() if self.scan else None,
            "note": self.note,
        }


def _contract(module: nn.Module) -> Optional[Tuple[str, int, int]]:
    """(field, expected value, which dimension of the input it constrains)."""
    if isinstance(module, nn.Linear):
        return "in_features", module.in_features, -1
    if isinstance(module, nn.modules.conv._ConvNd):
        return "in_channels", module.in_channels, 1
    return None


def check(
    model: Any,
    input_size: InputSize = None,
    batch: Optional[int] = None,
    device: str = "meta",
    sizes: Optional[Tuple[int, int]] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    dtypes: Optional[List[Any]] = None,
    input_data: Any = None,
    **kwargs,
) -> CheckReport:
    """Check every Linear/conv input width for one input; optionally scan ``sizes=(lo, hi)``.

    >>> check("alexnet").first_linear().arriving
    6400
    """
    model_kwargs = {**(model_kwargs or {}), **kwargs}
    device = check_device(device)
    loaded = load_model(model, device=device, **model_kwargs)
    inputs = resolve_inputs(input_size, loaded.module, loaded.default_input, batch, dtypes, input_data)
    shape = inputs.shape
    run = attempt(loaded, inputs, RunOptions(device=device))
    module = run.module
    layers = []
    called = run.recorder.modules if run.recorder else {}
    for name, layer in module.named_modules():
        contract = _contract(layer)
        if contract is None:
            continue
        field, expected, dim = contract
        # A layer is known by the call path it was reached through (rows name it so): a Linear
        # shared by two Sequentials and called through the second is reached, as "b.fc".
        name = next((path for path, m in called.items() if m is layer), name)
        arriving_shape = run.recorder.inputs.get(name) if run.recorder else None
        arriving = None  # not reached, or several inputs
        if isinstance(arriving_shape, list) and arriving_shape and isinstance(arriving_shape[0], int) \
                and len(arriving_shape) > max(dim, 0):
            arriving = arriving_shape[dim]
        layers.append(LayerCheck(name, type(layer).__name__, field, expected, arriving, arriving_shape))
    diagnosis = diagnose(module, shape, run.error, loaded) if run.error is not None else None
    size_scan = None
    if sizes is not None:
        if shape is None or len(shape) != 4:
            raise UsageError("--sizes scans square images: the model needs one 4-d input (N x C x H x W)")
        size_scan = scan(module, shape, *sizes)
    note = "; ".join(n for n in (loaded.note, run.note) if n) or None
    return CheckReport(loaded.label, inputs.describe(), run.device, layers, diagnosis, size_scan, note)


def scan_sizes(model: Any, lo: int, hi: int, input_size: InputSize = None, **kwargs) -> SizeScan:
    """Probe every square side in ``lo..hi`` on the meta device."""
    return check(model, input_size, sizes=(lo, hi), **kwargs).scan


def parse_sizes(text: str) -> Tuple[int, int]:
    """``"32..512"`` → ``(32, 512)``."""
    lo, sep, hi = text.partition("..")
    try:
        lo_i, hi_i = int(lo), int(hi)
    except ValueError:
        raise UsageError(f"malformed --sizes '{text}': expected A..B, e.g. 32..512") from None
    if not sep or lo_i < 1 or hi_i < lo_i:
        raise UsageError(f"malformed --sizes '{text}': expected A..B with 1 <= A <= B, e.g. 32..512")
    return lo_i, hi_i
