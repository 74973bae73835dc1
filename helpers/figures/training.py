"""Training curves: loss and a validation metric per epoch."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .style import model_colour


def training_curves(histories: Mapping[str, Any], metric: str = "auc",
                    best_epochs: Mapping[str, int] | None = None, head_names: Sequence[str] | None = None):
    """Loss and ``metric`` per epoch, train (dashed) and validation (solid), one colour per model.

    ``histories``: name -> a history (``{"loss": [...], "val_auc": [...], ...}``) or a
    ``training.fitting.FitResult``; from a FitResult the kept epoch is marked (dotted
    line) and, for a two-stage transfer fit, the first fine-tuning epoch (grey band).
    ``best_epochs``: name -> the epoch whose weights were kept, for plain histories.
    ``head_names``: for a history of a jointly trained model with several
    heads (``val_<metric>_per_head``), one dotted curve per head beside the
    mean that chose the epoch. The legend sits under the plots, so it hides no curve.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    best_epochs = dict(best_epochs or {})
    for name, run in histories.items():
        hist = getattr(run, "history", run)
        if hasattr(run, "best_epoch"):
            best_epochs.setdefault(name, run.best_epoch)
        colour = model_colour(name)
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
        if name in best_epochs:
            for ax in axes:
                ax.axvline(best_epochs[name], color=colour, ls=":", lw=1.2)
        finetuned = getattr(run, "finetune_epochs_run", 0)
        if finetuned:  # stage 2 (backbone unfrozen) starts after the head-only epochs
            start = run.epochs_run - finetuned + 0.5
            for ax in axes:
                ax.axvspan(start - 0.08, start + 0.08, color=colour, alpha=0.25, lw=0)
    for ax, key in zip(axes, ["loss", metric]):
        ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title=key.replace("_", " "))
    handles, labels = axes[1].get_legend_handles_labels()
    extra = [(h, lab) for h, lab in zip(*axes[0].get_legend_handles_labels()) if lab not in labels]
    handles += [h for h, _ in extra]
    labels += [lab for _, lab in extra]
    if best_epochs:
        handles.append(plt.Line2D([], [], color="black", ls=":", lw=1.2))
        labels.append("kept epoch (best on validation)")
    if any(getattr(r, "finetune_epochs_run", 0) for r in histories.values()):
        handles.append(plt.Rectangle((0, 0), 1, 1, color="black", alpha=0.25, lw=0))
        labels.append("fine-tuning starts")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=9, frameon=False)
    return fig
