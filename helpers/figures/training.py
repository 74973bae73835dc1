"""Training curves: loss and a validation metric per epoch."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], metric: str = "auc",
                    best_epochs: Mapping[str, int] | None = None, head_names: Sequence[str] | None = None):
    """Loss and ``metric`` per epoch, train (dashed) and validation (solid), one colour per model.

    ``best_epochs``: name -> the epoch whose weights were kept (dotted line).
    ``head_names``: for a history of a jointly trained model with several
    heads (``val_<metric>_per_head``), one dotted curve per head beside the
    mean that chose the epoch.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, hist) in enumerate(histories.items()):
        colour = f"C{i}"
        for ax, key in zip(axes, ["loss", metric]):
            for k, style, part in ((key, "--", "train"), (f"val_{key}", "-", "validation")):
                if k in hist:
                    epochs = np.arange(1, len(hist[k]) + 1)
                    ax.plot(epochs, hist[k], style, color=colour, alpha=0.6 if part == "train" else 1.0,
                            label=f"{name} {part}")
        per_head = hist.get(f"val_{metric}_per_head")
        if head_names and per_head:
            for h, head in enumerate(head_names):
                axes[1].plot(np.arange(1, len(per_head) + 1), np.asarray(per_head)[:, h], ":",
                             color=f"C{len(histories) + h}", label=f"{name}: {head} head")
        if best_epochs and name in best_epochs:
            for ax in axes:
                ax.axvline(best_epochs[name], color=colour, ls=":", lw=1)
    for ax, key in zip(axes, ["loss", metric]):
        ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title=key.replace("_", " "))
        ax.legend(fontsize=8)
    return fig
