"""Evaluate a saved checkpoint (``archscope eval``): the model is rebuilt from the checkpoint's own config."""
from __future__ import annotations

from typing import Any, Dict, Optional

from archscope.errors import UsageError
from archscope.train import checkpoint as ckpt
from archscope.train.data import Split, load
from archscope.train.evaluate import Evaluation, evaluate
from archscope.train.trainer import TrainConfig, build_model, check_side, pick_device


def evaluate_checkpoint(model: str, path: str, model_kwargs: Optional[Dict[str, Any]] = None, device: str = "auto",
                        batch_size: int = 256, resize: Optional[int] = None, limit_test: Optional[int] = None,
                        data_dir: Optional[str] = None) -> Evaluation:
    """``model_kwargs`` and ``resize`` default to the checkpoint's; given, they must agree with it."""
    if batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if limit_test is not None and limit_test < 1:
        raise UsageError("--limit-test must be >= 1 (leave it out to evaluate on all 10,000 test images)")
    if resize is not None and resize < 1:
        raise UsageError("--resize must be >= 1")
    state = ckpt.load(path)
    saved = state["config"]
    if saved["model"] != model:
        raise UsageError(f"checkpoint {path} is a run of '{saved['model']}', not '{model}'")
    if model_kwargs and model_kwargs != saved.get("model_kwargs", {}):
        raise UsageError(f"--arg/--ratio {model_kwargs} differ from the run's ({saved.get('model_kwargs') or 'none'}): "
                         f"leave them out, the checkpoint says how the model was built")
    dev = pick_device(device)
    cfg = TrainConfig(model=model, model_kwargs=saved.get("model_kwargs", {}), resize=resize or saved.get("resize"),
                      device=str(dev))
    net, side, channels = build_model(cfg, dev)
    from archscope.loader import load_model
    check_side(model, side, load_model(model, device="meta", **cfg.model_kwargs).module, channels)
    ckpt.load_weights(net, state["model"], path, model)
    _, test = load(data_dir or saved.get("data_dir"), device=str(dev))
    if limit_test:
        test = Split(test.images[:limit_test], test.labels[:limit_test])
    cuda = dev.type == "cuda"
    return evaluate(net, test, side, batch_size, amp=cuda, channels_last=False, channels=channels)
