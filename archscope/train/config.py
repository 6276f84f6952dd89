"""A training run's options, checked before anything is loaded; what a run returns; what a
resumed run may change. The CLI's ``train`` options are derived from ``TrainConfig``'s fields
(each field's ``help`` is its flag's help), so they are written once."""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from archscope.errors import UsageError

# The largest float32 (FLOAT32_MAX): an lr or weight decay above it overflows.
# Written out so that this module, which the CLI reads to build train's flags, needs no torch.
FLOAT32_MAX = 3.4028234663852886e38


def option(default: Any, help: str):
    """A field that is also a ``train`` flag (``--batch-size`` for ``batch_size``)."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """A run's options. None: the model's recipe (batch_size, lr, optimizer, weight_decay, schedule,
    label_smoothing), its default input side (resize), on for CUDA (amp), runs/MODEL-TIME (out).
    Each field with a help text is a flag of ``archscope train``; batch_size is the global batch."""

    model: str
    epochs: int = option(5, "Passes over the training set. \\[default: 5]")
    batch_size: Optional[int] = option(None, "The global batch. Default: the model's recipe (256 LeNet, 128 others).")
    lr: Optional[float] = option(None, "Peak learning rate. Default: the recipe (0.03 LeNet, 0.002 NiN/GoogLeNet, "
                                       "0.001 VGG, 0.0001 AlexNet).")
    optimizer: Optional[str] = option(None, "adam | sgd (momentum 0.9). Default adam.")
    weight_decay: Optional[float] = option(None, "Default 0.")
    schedule: Optional[str] = option(None, "none | cosine | onecycle. Default onecycle.")
    label_smoothing: Optional[float] = option(None, "Default 0.")
    seed: int = option(0, "Seeds the weights and the shuffles. \\[default: 0]")
    device: str = option("auto", "auto (CUDA if present) | cpu | cuda. \\[default: auto]")
    amp: Optional[bool] = option(None, "bf16 autocast. Default: on for CUDA.")
    compile: bool = option(False, "torch.compile the model.")
    resize: Optional[int] = option(None, "Input side. Default: the model's (224; 96 GoogLeNet; 28 LeNet).")
    limit_train: Optional[int] = option(None, "Use only the first N training images.")
    limit_test: Optional[int] = option(None, "Evaluate on the first N test images.")
    out: Optional[str] = option(None, "Run directory (one run per folder). Default runs/MODEL-TIME.")
    data_dir: Optional[str] = option(None, "Folder with the four Fashion-MNIST IDX files.")
    download: bool = option(False, "Fetch Fashion-MNIST through torchvision if it is not found.")
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    run_id: Optional[str] = None  # set when the run starts; every metrics row carries it

    def filled(self) -> "TrainConfig":
        """A copy with every None replaced by the model's recipe (the caller's object is left alone)."""
        from archscope.models import recipe_for  # the registry imports torch; --help must not

        r = recipe_for(self.model)
        d = asdict(self)
        for key in ("batch_size", "lr", "optimizer", "weight_decay", "schedule", "label_smoothing"):
            if d[key] is None:
                d[key] = getattr(r, key)
        if d["out"] is None:
            d["out"] = f"runs/{run_name(self.model)}-{time.strftime('%Y%m%d-%H%M%S')}"
        d["run_id"] = d["run_id"] or uuid.uuid4().hex[:12]
        return TrainConfig(**d)


def cli_options() -> List[Any]:
    """The fields a user sets with a flag of their own (not the model, its options or the run id)."""
    return [f for f in fields(TrainConfig) if "help" in f.metadata]


def run_name(model: str) -> str:
    """The folder name of a model's runs: ``lenet``, ``tv-resnet18``, ``net`` for ``path/net.py:build``."""
    prefix, sep, rest = model.partition(":")
    if sep and "/" not in prefix and not prefix.endswith(".py") and "." not in prefix:
        name = f"{prefix}-{rest}"  # tv:resnet18, timm:vit_tiny_patch16_224
    else:
        name = Path(model.rpartition(":")[0] if sep else model).stem or model
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


@dataclass
class TrainResult:
    run_dir: str
    history: List[Dict[str, Any]]
    best_test_acc: float
    interrupted: bool = False
    plot_note: Optional[str] = None
    points: List[Any] = field(default_factory=list)  # (epochs done, running loss, running acc) per log point

    def to_dict(self):
        return asdict(self)


OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine", "onecycle")


def validate(cfg: TrainConfig) -> None:
    """Every option, before any data is loaded or any folder is touched."""
    for name in ("epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("limit_train", "limit_test", "resize"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 < cfg.lr < FLOAT32_MAX:
        raise UsageError(f"--lr must be > 0 and below {FLOAT32_MAX:.3g}")
    if not 0 <= cfg.label_smoothing < 1:
        raise UsageError(f"--label-smoothing {cfg.label_smoothing:g}: it must be in [0, 1)")
    if not 0 <= cfg.weight_decay < FLOAT32_MAX:
        raise UsageError(f"--weight-decay {cfg.weight_decay:g}: it must be >= 0")
    if cfg.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown --optimizer '{cfg.optimizer}': use adam or sgd")
    if cfg.schedule not in SCHEDULES:
        raise UsageError(f"unknown --schedule '{cfg.schedule}': use none, cosine or onecycle")
    if cfg.device != "auto":
        from archscope.train.device import pick_device  # torch: only once a run is really configured

        pick_device(cfg.device)


# What a resumed run may change: where and how fast it runs, and how long it lasts.
RESUMABLE = ("device", "data_dir", "compile", "out", "epochs", "download")


def resume_config(path: str, overrides: Dict[str, Any]) -> TrainConfig:
    """The saved run's config. ``overrides`` holds the options given on the command line (None:
    not given): device, data_dir, compile, out and epochs may change; any other option that
    differs from the saved one is refused, naming it and its saved value. Without ``model`` (what
    the user typed), the model the file names must be one that runs no code of the file's choosing."""
    from archscope.train import checkpoint as ckpt

    state = ckpt.load(path)
    saved = dict(state["config"])
    saved.setdefault("run_id", None)
    for key, value in overrides.items():
        if value is None or key in RESUMABLE:
            continue
        if key not in saved:
            raise UsageError(f"--{key.replace('_', '-')} is not an option of a training run")
        if key == "model" and value != saved[key]:
            raise UsageError(f"checkpoint {path} is a run of '{saved[key]}', not '{value}'")
        if value != saved[key]:
            flag = "--arg/--ratio" if key == "model_kwargs" else f"--{key.replace('_', '-')}"
            raise UsageError(f"{flag} {_show(value)} differs from the run in {path} ({key}={_show(saved[key])}): "
                             f"drop it to resume that run, or start a new run with another --out")
    from archscope.models import check_named_by_file

    # What the file names was not typed: it may not choose code to run (a file or module spec, remote code).
    named = {"spec": saved.get("model")} if overrides.get("model") is None else {}
    check_named_by_file(f"checkpoint {path}", f"archscope train {{spec}} --resume {path}", **named,
                        kwargs=None if overrides.get("model_kwargs") else saved.get("model_kwargs"))
    for key in ("device", "data_dir", "compile"):
        if overrides.get(key) is not None:
            saved[key] = overrides[key]
    # The run continues in the folder the checkpoint is in now, wherever it was first written.
    saved["out"] = overrides.get("out") or str(Path(path).parent)
    epochs = overrides.get("epochs")
    if epochs is not None:
        if epochs < state["epoch"]:
            raise UsageError(f"--epochs {epochs}: the run in {path} has already done {state['epoch']} epochs")
        saved["epochs"] = epochs  # the learning rate is a function of the step: the plan simply gets longer
    return TrainConfig(**saved)


def _show(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v!r}" for k, v in value.items()) or "{}"
    return f"{value:g}" if isinstance(value, float) else str(value)
