"""curves.png: loss and accuracy per epoch (needs the optional ``archscope[plot]`` extra)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

PLOT_HINT = "install matplotlib (pip install 'archscope[plot]') to get curves.png"


FEW_EPOCHS = 3  # up to this many, the running loss and accuracy within each epoch are drawn too


def plot_curves(history: List[dict], path: Path, title: Optional[str] = None,
                points: Optional[List[tuple]] = None) -> Optional[str]:
    """Write the plot (whole-epoch ticks, the run's ``title`` above); return None on success, else the
    reason it was skipped. ``points``: (epochs done, running loss, running accuracy) at each log point
    (every 1/20 epoch); after a short run, two or three epoch points say little, so those are drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return PLOT_HINT
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    left.plot(epochs, [h["test_loss"] for h in history], "s--", label="test loss")
    left.set_xlabel("epoch")
    left.set_ylabel("cross-entropy")
    right.plot(epochs, [h["train_acc"] for h in history], "o-", label="train acc")
    right.plot(epochs, [h["test_acc"] for h in history], "s--", label="test acc")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    steps = points if points and len(epochs) <= FEW_EPOCHS else []
    if steps:
        xs = [p[0] for p in steps]
        left.plot(xs, [p[1] for p in steps], ".", color="C0", alpha=0.5, markersize=4,
                  label="train loss so far in the epoch")
        right.plot(xs, [p[2] for p in steps], ".", color="C0", alpha=0.5, markersize=4,
                   label="train acc so far in the epoch")
    left.legend()
    right.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):  # epochs are whole: no 0.975 ticks after one epoch
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
            ax.set_xlim(min([min(epochs) - 0.5] + [p[0] - 0.1 for p in steps]), max(epochs) + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
