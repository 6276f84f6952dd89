"""Test-set accuracy, per-class figures and the confusion matrix."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, List

import torch

from archscope.train.data import CLASSES, Split, batches, prepare


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    confusion: List[List[int]]  # confusion[true][predicted]

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


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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
