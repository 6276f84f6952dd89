"""Test-set accuracy, per-class figures and the confusion matrix; of a model in training, or of a
saved checkpoint (``archscope eval``), rebuilt from the checkpoint's own config."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from archscope.analysis.records import Result
from archscope.errors import UsageError
from archscope.models import check_named_by_file
from archscope.train import checkpoint as ckpt
from archscope.train.config import TrainConfig
from archscope.train.data import CLASSES, Split, batches, load, prepare
from archscope.train.device import autocast, pick_device
from archscope.train.model import build_model, check_side, meta_model


@dataclass(repr=False)
class Evaluation(Result):
    loss: float
    accuracy: float
    confusion: List[List[int]]  # confusion[true][predicted]

    def summary(self) -> str:
        return f"test accuracy {self.accuracy:.4f}, loss {self.loss:.4f}, {sum(map(sum, self.confusion)):,} images"

    def per_class(self) -> List[Dict[str, Any]]:
        rows = []
        for i, name in enumerate(CLASSES):
            total = sum(self.confusion[i])
            predicted = sum(r[i] for r in self.confusion)
            hit = self.confusion[i][i]
            rows.append({"class": name, "count": total, "recall": hit / total if total else 0.0,
                         "precision": hit / predicted if predicted else 0.0})
        return rows

    def to_dict(self) -> Dict[str, Any]:
        return {"loss": self.loss, "accuracy": self.accuracy, "per_class": self.per_class(),
                "confusion": self.confusion, "classes": CLASSES}


@torch.no_grad()
def evaluate(model, split: Split, side: int, batch_size: int, amp: bool = False, channels_last: bool = False,
             channels: int = 1) -> Evaluation:
    """One pass over ``split`` in eval mode; everything stays on the device until the end."""
    was_training = model.training
    model.eval()
    device = split.images.device
    loss_sum = torch.zeros((), device=device)
    confusion = torch.zeros(len(CLASSES) * len(CLASSES), dtype=torch.long, device=device)
    for _, idx in batches(len(split), batch_size, device=device):
        x = prepare(split.images[idx], side, channels, channels_last)
        y = split.labels[idx]
        with autocast(device, amp):
            logits = model(x)
        loss_sum += torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        confusion += torch.bincount(y * len(CLASSES) + logits.argmax(1), minlength=len(CLASSES) ** 2)
    model.train(was_training)
    matrix = confusion.view(len(CLASSES), len(CLASSES)).tolist()
    n = max(len(split), 1)
    return Evaluation(loss_sum.item() / n, sum(matrix[i][i] for i in range(len(CLASSES))) / n, matrix)


def evaluate_checkpoint(model: Optional[str], path: str, model_kwargs: Optional[Dict[str, Any]] = None, device: str = "auto",
                        batch_size: int = 256, resize: Optional[int] = None, limit_test: Optional[int] = None,
                        data_dir: Optional[str] = None) -> Evaluation:
    """``model`` (None: the one the checkpoint names), ``model_kwargs`` and ``resize`` default to
    the checkpoint's; given, they must agree with it."""
    if batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if limit_test is not None and limit_test < 1:
        raise UsageError("--limit-test must be >= 1 (leave it out to evaluate on all 10,000 test images)")
    if resize is not None and resize < 1:
        raise UsageError("--resize must be >= 1")
    state = ckpt.load(path)
    saved = state["config"]
    # What the checkpoint names was not typed: it may not choose code to run.
    named = {"spec": saved.get("model")} if model is None else {}
    check_named_by_file(f"checkpoint {path}", f"archscope eval {{spec}} {path}", **named,
                        kwargs=None if model_kwargs else saved.get("model_kwargs"))
    model = model or saved["model"]
    if saved["model"] != model:
        raise UsageError(f"checkpoint {path} is a run of '{saved['model']}', not '{model}'")
    if model_kwargs and model_kwargs != saved.get("model_kwargs", {}):
        raise UsageError(f"--arg/--ratio {model_kwargs} differ from the run's ({saved.get('model_kwargs') or 'none'}): "
                         f"leave them out, the checkpoint says how the model was built")
    dev = pick_device(device)
    cfg = TrainConfig(model=model, model_kwargs=saved.get("model_kwargs", {}), resize=resize or saved.get("resize"),
                      device=str(dev))
    net, side, channels = build_model(cfg, dev)
    check_side(model, side, meta_model(model, cfg.model_kwargs), channels)
    ckpt.load_weights(net, state["model"], path, model)
    _, test = load(data_dir or saved.get("data_dir"), device=str(dev))
    if limit_test:
        test = Split(test.images[:limit_test], test.labels[:limit_test])
    cuda = dev.type == "cuda"
    return evaluate(net, test, side, batch_size, amp=cuda, channels_last=False, channels=channels)
