"""Figures: every plot of the project, and the one ``save_fig``.

The rule: a plotting function here builds its figure with the object-oriented
matplotlib API and *returns* it; it never saves, shows or closes it. The
notebook that asked for the figure saves it with ``save_fig`` (into
``images/``, atomically), so every PNG in ``images/`` is written by the chain
and none is exported by hand.

==============  ==============================================================
``data``        image grids, duplicate pairs, colour statistics, patient metadata,
                in-memory vs streamed input
``training``    training curves
``evaluation``  ROC, PR, confusion, reliability, per-class bars, paired gains
``explain``     LIME and Grad-CAM, contact sheets, artefacts and their effects
``style``       one colour per model in every figure, font sizes (>= 9 pt)
==============  ==============================================================
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

from ..atomic import atomic_path
from ..config import output_dirs
from . import style

# Every figure of the series is drawn after this package is imported (notebooks, CLI):
# one set of font sizes for all of them, none under style.MIN_FONT_PT.
style.apply()


def save_fig(fig_id: str, fig=None, tight_layout: bool = True, resolution: int = 110,
             images_dir: str | os.PathLike | None = None) -> Path:
    """Save the current (or given) figure as ``images/<fig_id>.png``, atomically."""
    fig = fig or plt.gcf()
    target = Path(images_dir or output_dirs().images) / f"{fig_id}.png"
    if tight_layout and fig.get_layout_engine() is None:  # a constrained layout is already laid out
        fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=resolution)
    return target


__all__ = ["save_fig"]
