"""Evaluate a saved checkpoint (``archscope eval``)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from archscope.train import checkpoint as ckpt
from archscope.train.data import Split, load
from archscope.train.evaluate import Evaluation, evaluate
from archscope.train.trainer import TrainConfig, build_model, pick_device


def evaluate_checkpoint(model: str, path: str, model_kwargs: Dict[str, Any], device: str = "auto",
                        batch_size: int = 256, resize: Optional[int] = None, limit_test: Optional[int] = None,
                        data_dir: Optional[str] = None) -> Evaluation:
    state = ckpt.load(path)
    saved = state.get("config", {})
    dev = pick_device(device)
    cfg = TrainConfig(model=model, model_kwargs=model_kwargs, resize=resize or saved.get("resize"), device=str(dev))
    net, side, channels = build_model(cfg, dev)
    ckpt.load_weights(net, state["model"], path, model)
    _, test = load(data_dir or saved.get("data_dir"), device=str(dev))
    if limit_test:
        test = Split(test.images[:limit_test], test.labels[:limit_test])
    cuda = dev.type == "cuda"
    return evaluate(net, test, side, batch_size, amp=cuda, channels_last=False, channels=channels)
