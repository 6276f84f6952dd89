"""What a device can do: peak dense FLOP/s per dtype, memory bandwidth, a per-op overhead.

GPU figures are datasheet figures (dense, no sparsity), each with its source. ``cpu`` is this
machine, measured once by a short microbenchmark and cached (``~/.cache/archscope``, or
``$ARCHSCOPE_CACHE``): a square matmul at each dtype (peak), a large copy (bandwidth), a tiny
op in a Python loop (the eager dispatch cost every op pays). Custom figures:
``peak=120e12,bandwidth=2TB/s[,overhead=5us][,memory=24GiB]``.

The per-op overhead of a GPU is not on any datasheet: it is eager PyTorch's own cost of
dispatching and launching one kernel, typically 4–10 µs; 6 µs is used.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch

from archscope.analysis.records import Result
from archscope.errors import ArchscopeError, UsageError

T, G = 1e12, 1e9
GPU_OVERHEAD_S = 6e-6
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Hardware:
    """A device's figures. The optional ones are measured on a CPU, whose kernels fall far short
    of a roofline in ways a datasheet does not say; a GPU from the table has none of them."""

    name: str
    description: str
    peak: Dict[str, float]  # dtype ("fp32", "bf16", "fp16") → dense FLOP/s
    bandwidth: float  # bytes/s
    overhead_s: float  # per op (dispatch + launch)
    memory: Optional[int] = None  # bytes of device memory
    source: str = ""
    # smallest GEMM dimension → fraction of the peak a matrix product of that shape reaches
    gemm_efficiency: Optional[Dict[int, float]] = None
    pool_rate: Optional[float] = None  # pooling window elements per second
    norm_rate: Optional[float] = None  # normalisation (batch/layer/group norm) elements per second
    first_touch: Optional[float] = None  # bytes/s of writing into freshly mapped pages
    first_touch_from: int = 32 * 2 ** 20  # outputs at least this large get fresh pages (glibc's mmap threshold)
    train_overhead_s: Optional[float] = None  # per op of a training step (autograd's bookkeeping too); None: overhead_s

    def efficiency(self, dim: int) -> float:
        """Fraction of the peak for a GEMM whose smallest dimension is ``dim`` (log-interpolated)."""
        if not self.gemm_efficiency or dim <= 0:
            return 1.0
        points = sorted((int(k), v) for k, v in self.gemm_efficiency.items())
        if dim <= points[0][0]:
            return points[0][1] * dim / points[0][0]
        for (d0, e0), (d1, e1) in zip(points, points[1:]):
            if dim <= d1:
                w = (math.log(dim) - math.log(d0)) / (math.log(d1) - math.log(d0))
                return e0 + w * (e1 - e0)
        return points[-1][1]

    def peak_for(self, dtype: str) -> float:
        if dtype not in self.peak:
            raise UsageError(f"{self.name} has no {dtype} figure (it has {', '.join(self.peak)}): pick another --dtype")
        return self.peak[dtype]

    @property
    def is_cpu(self) -> bool:
        return self.name == "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


def _gpu(name, description, fp32, bf16, fp16, bandwidth, memory_gb, source) -> Hardware:
    peak = {"fp32": fp32 * T, "fp16": fp16 * T}
    if bf16:
        peak["bf16"] = bf16 * T
    return Hardware(name, description, peak, bandwidth, GPU_OVERHEAD_S, int(memory_gb * 1e9), source)


TABLE: Dict[str, Hardware] = {h.name: h for h in [
    _gpu("h200", "NVIDIA H200 SXM 141 GB", 67, 989, 989, 4.8e12, 141, "NVIDIA H200 Tensor Core GPU datasheet"),
    _gpu("h100", "NVIDIA H100 SXM 80 GB", 67, 989, 989, 3.35e12, 80, "NVIDIA H100 Tensor Core GPU datasheet (SXM)"),
    _gpu("h100-pcie", "NVIDIA H100 PCIe 80 GB", 51, 756, 756, 2.0e12, 80, "NVIDIA H100 Tensor Core GPU datasheet (PCIe)"),
    _gpu("a100", "NVIDIA A100 SXM 80 GB", 19.5, 312, 312, 2.039e12, 80, "NVIDIA A100 Tensor Core GPU datasheet"),
    _gpu("a100-40gb", "NVIDIA A100 SXM 40 GB", 19.5, 312, 312, 1.555e12, 40, "NVIDIA A100 Tensor Core GPU datasheet"),
    _gpu("l40s", "NVIDIA L40S 48 GB", 91.6, 362, 362, 864e9, 48, "NVIDIA L40S datasheet"),
    _gpu("a10", "NVIDIA A10 24 GB", 31.2, 125, 125, 600e9, 24, "NVIDIA A10 Tensor Core GPU datasheet"),
    _gpu("l4", "NVIDIA L4 24 GB", 30.3, 121, 121, 300e9, 24, "NVIDIA L4 Tensor Core GPU datasheet"),
    _gpu("t4", "NVIDIA T4 16 GB", 8.1, 0, 65, 320e9, 16, "NVIDIA T4 Tensor Core GPU datasheet (no bf16)"),
    _gpu("v100", "NVIDIA V100 SXM2 32 GB", 15.7, 0, 125, 900e9, 32, "NVIDIA V100 Tensor Core GPU datasheet (no bf16)"),
    _gpu("rtx4090", "NVIDIA GeForce RTX 4090 24 GB", 82.6, 165.2, 165.2, 1008e9, 24,
         "NVIDIA Ada Lovelace architecture whitepaper, appendix (FP16/BF16 with FP32 accumulate)"),
]}


def hardware_list() -> List[Hardware]:
    return list(TABLE.values())


@dataclass(repr=False)
class HardwareTable(Result):
    """``archscope time --hw list``: the table, each figure with its source."""

    hardware: List[Hardware] = field(default_factory=list)

    def to_dict(self) -> list:
        return [h.to_dict() for h in self.hardware]

    def summary(self) -> str:
        return f"{len(self.hardware)} devices"


# Words in torch.cuda.get_device_name() → table entry, most specific first ("A100" contains "A10").
_CUDA_NAMES = [("H200", "h200"), ("H100 PCIe", "h100-pcie"), ("H100", "h100"), ("A100-SXM4-40GB", "a100-40gb"),
               ("A100", "a100"), ("L40S", "l40s"), ("A10", "a10"), ("L4", "l4"), ("T4", "t4"), ("V100", "v100"),
               ("4090", "rtx4090")]


def hardware_for(device) -> Optional[Hardware]:
    """The figures of a torch device: this CPU calibrated, a CUDA GPU from the table by its name
    (None when the table does not know it)."""
    kind = getattr(device, "type", str(device))
    if kind == "cpu":
        return calibrate_cpu()
    if kind == "cuda":
        name = torch.cuda.get_device_name(device)
        for words, entry in _CUDA_NAMES:
            if words in name:
                return TABLE[entry]
    return None


# --------------------------------------------------------------------------- parsing --hw

_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15, "ki": 2 ** 10, "mi": 2 ** 20, "gi": 2 ** 30,
          "ti": 2 ** 40}
_TIME = {"s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:  # "1.2.3"
        return False


def _number(key: str, text: str) -> float:
    text = text.strip().lower().replace("flop/s", "").replace("flops", "").replace("b/s", "").replace("/s", "")
    if key == "overhead":
        match = re.fullmatch(r"([0-9.]+(?:e[-+]?[0-9]+)?)\s*(s|ms|us|µs|ns)?", text)
        if match and _is_float(match.group(1)):
            return float(match.group(1)) * _TIME[match.group(2) or "s"]
    else:
        match = re.fullmatch(r"([0-9.]+(?:e[-+]?[0-9]+)?)\s*(ki|mi|gi|ti|k|m|g|t|p)?b?", text)
        if match and _is_float(match.group(1)):
            value = float(match.group(1)) * _SCALE[match.group(2) or ""]
            if value <= 0:  # a time is peak / FLOPs and bandwidth / bytes: zero would divide by it
                raise UsageError(f"--hw {key}={text} must be above zero")
            return value
    raise UsageError(f"malformed --hw value {key}={text!r}: e.g. peak=120e12, bandwidth=2TB/s, overhead=5us, "
                     "memory=24GiB")


def parse_hardware(spec: Optional[str], dtypes=("fp32",)) -> Hardware:
    """``h100``, ``cpu`` (calibrated at ``dtypes``), or ``peak=…,bandwidth=…[,overhead=…][,memory=…]``."""
    spec = (spec or "cpu").strip()
    if "=" in spec:
        values: Dict[str, float] = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in ("peak", "bandwidth", "overhead", "memory"):
                raise UsageError(f"malformed --hw '{spec}': give peak=FLOP/s,bandwidth=B/s[,overhead=s][,memory=B]")
            values[key] = _number(key, value)
        if "peak" not in values or "bandwidth" not in values:
            raise UsageError(f"--hw '{spec}' needs both peak= and bandwidth=")
        memory = values.get("memory")
        return Hardware("custom", "custom figures", {d: values["peak"] for d in DTYPES}, values["bandwidth"],
                        values.get("overhead", GPU_OVERHEAD_S), int(memory) if memory else None, "--hw")
    name = spec.lower()
    if name == "cpu":
        return calibrate_cpu(dtypes)
    if name not in TABLE:
        close = difflib.get_close_matches(name, list(TABLE) + ["cpu"], n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UsageError(f"unknown --hw '{spec}': {hint}see 'archscope time --hw list', or give peak=…,bandwidth=…")
    return copy.deepcopy(TABLE[name])  # a copy: a caller changing its figures never changes the table


# --------------------------------------------------------------------------- this CPU, measured once


def _when(figures: dict) -> str:
    taken, load = figures.get("taken_at"), figures.get("load")
    busy = "" if load is None else f", load {load:.2f} a core" + (" (busy: consider --recalibrate)" if load > 0.5 else "")
    return f"on {taken}{busy}" if taken else "at an unrecorded time"


def _cache_file() -> Path:
    root = Path(os.environ.get("ARCHSCOPE_CACHE") or Path.home() / ".cache" / "archscope")
    key = "|".join([torch.__version__, str(torch.get_num_threads()), platform.machine(), _cpu_model()])
    return root / f"cpu-{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _best_seconds(run, repeats: int) -> float:
    """The fastest of ``repeats`` timings after one warm-up: a calibration wants what the machine
    can do, and another process's load only ever makes a run slower."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


# Below these, a figure says more about what else ran than about this CPU (a busy machine gave
# 1.4 GFLOP/s fp32 once, with every GEMM "at peak"): measured again, then refused.
PLAUSIBLE = {"peak": 2e9, "bandwidth": 1e9}
CALIBRATION_TRIES = 3


def _load() -> Optional[float]:
    """Runnable processes per core over the last minute (1.0: every core busy), where the OS says."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except (AttributeError, OSError):
        return None


def _plausible(figures: dict) -> bool:
    peak, efficiency = figures["peak"]["fp32"], figures["gemm_efficiency"].values()
    # Every GEMM at the clamp of 1.0 means the peak itself was measured while the machine was busy.
    return peak >= PLAUSIBLE["peak"] and figures["bandwidth"] >= PLAUSIBLE["bandwidth"] and \
        not all(e >= 1.0 for e in efficiency)


def _measure_all() -> dict:
    figures = {"version": CALIBRATION_VERSION}
    for _ in range(CALIBRATION_TRIES):
        figures["bandwidth"], figures["first_touch"] = _measure_bandwidth()
        figures["overhead_s"] = _measure_overhead()
        figures["train_overhead_s"] = _measure_train_overhead()
        figures["pool_rate"], figures["norm_rate"] = _measure_kernel_rates()
        figures["peak"] = {"fp32": _measure_peak(torch.float32)}
        figures["gemm_efficiency"] = _measure_gemm_efficiency(figures["peak"]["fp32"])
        if _plausible(figures):
            break
    else:
        raise ArchscopeError(
            f"this CPU's calibration gave implausible figures {CALIBRATION_TRIES} times (fp32 peak "
            f"{figures['peak']['fp32'] / 1e9:.2f} GFLOP/s, bandwidth {figures['bandwidth'] / 1e9:.2f} GB/s): the "
            "machine is too busy to measure; nothing was cached: try again when it is idle, or give "
            "--hw peak=…,bandwidth=…")
    figures["taken_at"] = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    figures["load"] = _load()
    return figures


def _write_atomically(path: Path, text: str) -> None:
    """A temporary file beside it, then a rename: a reader never sees half a calibration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _measure_peak(dtype: torch.dtype) -> float:
    # 1024² unless a 256² product is already slow (bf16 without hardware support: ~1 GFLOP/s).
    n = 256
    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        seconds = _best_seconds(lambda a=a, b=b: torch.mm(a, b), 5)
        if n >= 1024 or seconds > 0.02:
            return 2 * n ** 3 / seconds
        n *= 2


def _measure_bandwidth():
    """(bandwidth, first-touch rate): a copy into an existing 64 MiB buffer, and a clone, whose
    fresh 64 MiB output costs a page fault per page on top of the same copy."""
    x = torch.empty(64 * 2 ** 20 // 4)
    y = torch.empty_like(x)
    copy = _best_seconds(lambda: y.copy_(x), 5)
    clone = _best_seconds(lambda: x.clone(), 5)
    return 2 * x.numel() * 4 / copy, x.numel() * 4 / max(clone - copy, 1e-9)


GEMM_DIMS = (4, 8, 16, 32, 64, 128, 256, 1024)


def _measure_gemm_efficiency(peak: float) -> Dict[int, float]:
    """A (4096 x 1024) @ (1024 x d) product for each smallest dimension d, as a fraction of the peak."""
    a = torch.randn(4096, 1024)
    out = {}
    for d in GEMM_DIMS:
        b = torch.randn(1024, d)
        out[d] = min(1.0, 2 * 4096 * 1024 * d / _best_seconds(lambda b=b: torch.mm(a, b), 5) / peak)
    return out


def _measure_kernel_rates():
    """(pool rate, norm rate): a 3x3/2 max pool's window elements per second, a training batch
    norm's elements per second, on an 8x96x54x54 activation (NiN's first block at batch 8)."""
    import torch.nn.functional as F

    x = torch.randn(8, 96, 54, 54)
    windows = F.max_pool2d(x, 3, 2).numel() * 9
    pool = windows / _best_seconds(lambda: F.max_pool2d(x, 3, 2), 3)
    norm = x.numel() / _best_seconds(lambda: F.batch_norm(x, None, None, training=True), 3)
    return pool, norm


def _measure_overhead() -> float:
    a, b = torch.ones(1), torch.ones(1)
    loops = 2000

    def tiny():
        for _ in range(loops):
            torch.add(a, b)

    return _best_seconds(tiny, 3) / loops


CALIBRATION_VERSION = 4  # 4: the best of the runs, not their median; when and under what load


def _measure_train_overhead() -> float:
    """Seconds per op of a training step made of tiny ops: a chain of 200 multiplications of a
    one-element tensor that needs a gradient, and its backward, divided by the ops the FLOP
    counter records for the same step (so the overhead is per op exactly as a model's are counted)."""
    from archscope.analysis.counter import FlopCounter

    def step():
        x = torch.ones(1, requires_grad=True)
        y = x
        for _ in range(200):
            y = y * 1.0001
        y.sum().backward()

    counter = FlopCounter(record_ops=True)
    with counter:
        step()
    return _best_seconds(step, 5) / max(1, len(counter.ops))


def calibrate_cpu(dtypes=("fp32",), recalibrate: bool = False) -> Hardware:
    """This machine's figures, from the cache or measured now (about a second per dtype);
    ``recalibrate``: measured now whatever the cache holds (``time --recalibrate``)."""
    path = _cache_file()
    figures: dict = {}
    try:
        figures = {} if recalibrate else json.loads(path.read_text())
    except (OSError, ValueError):
        figures = {}
    changed = False
    if not isinstance(figures, dict) or figures.get("version") != CALIBRATION_VERSION:
        figures = _measure_all()
        changed = True
    peak = figures["peak"]
    for dtype in dtypes:
        if dtype not in peak:
            peak[dtype] = _measure_peak(DTYPES[dtype])
            changed = True
    if changed:
        try:
            _write_atomically(path, json.dumps(figures))
        except OSError:
            pass  # a read-only home: measured again next time
    threads = torch.get_num_threads()
    return Hardware("cpu", f"this CPU ({_cpu_model()}, {threads} thread{'s' * (threads != 1)})", dict(peak),
                    figures["bandwidth"], figures["overhead_s"], None,
                    f"measured here (matmuls, 64 MiB copy and clone, tiny-op loop, max pool, batch norm; the best "
                    f"of several runs) {_when(figures)}; cached in {path} (--recalibrate measures again)",
                    {int(k): v for k, v in figures["gemm_efficiency"].items()}, figures["pool_rate"],
                    figures["norm_rate"], figures["first_touch"], train_overhead_s=figures["train_overhead_s"])
