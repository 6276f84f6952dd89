"""curves.png: loss and accuracy per epoch (needs the optional ``archscope[plot]`` extra)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

PLOT_HINT = "install matplotlib (pip install 'archscope[plot]') to get curves.png"


def plot_curves(history: List[dict], path: Path, title: Optional[str] = None) -> Optional[str]:
    """Write the plot (whole-epoch ticks, the run's ``title`` above); return None on success, else the
    reason it was skipped."""
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
    left.legend()
    right.plot(epochs, [h["train_acc"] for h in history], "o-", label="train acc")
    right.plot(epochs, [h["test_acc"] for h in history], "s--", label="test acc")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):  # epochs are whole: no 0.975 ticks after one epoch
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
