"""Figures: the one ``save_fig`` every notebook uses, and the plots they share.

Every figure in ``images/`` is written by the chain through ``save_fig``; none
is exported by hand.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .atomic import atomic_path
from .config import output_dirs


def save_fig(fig_id: str, fig=None, tight_layout: bool = True, resolution: int = 110,
             images_dir: str | os.PathLike | None = None) -> Path:
    """Save the current (or given) figure as ``images/<fig_id>.png``, atomically."""
    fig = fig or plt.gcf()
    target = Path(images_dir or output_dirs().images) / f"{fig_id}.png"
    if tight_layout:
        fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=resolution)
    return target


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8,
               size: float = 1.6, suptitle: str | None = None):
    """Show uint8 images in a grid; returns the Figure."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def training_curves(histories: dict[str, dict[str, list[float]]], metric: str = "auc"):
    """Loss and ``metric`` per epoch, train (dashed) and validation (solid), one colour per model."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, hist) in enumerate(histories.items()):
        colour = f"C{i}"
        for ax, key in zip(axes, ["loss", metric]):
            if key in hist:
                ax.plot(hist[key], "--", color=colour, alpha=0.6, label=f"{name} train")
            if f"val_{key}" in hist:
                ax.plot(hist[f"val_{key}"], "-", color=colour, label=f"{name} validation")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
    axes[0].legend(fontsize=8)
    axes[0].set_title("loss")
    axes[1].set_title(metric)
    return fig
