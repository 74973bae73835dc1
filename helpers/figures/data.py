"""Figures of the data: image grids, duplicate pairs, colour statistics, patient metadata,
and what streaming the images costs against holding them in memory."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data.images import load_image
from ..data.labels import CLASS_NAMES, DX_CLASSES
from ..data.metadata import UNKNOWN, normalise_category


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
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_pairs(pairs: Sequence[tuple[str, str]], captions: Sequence[str], size: int = 128):
    """Side-by-side image pairs (e.g. a test image and its near-copy in train)."""
    n = max(len(pairs), 1)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.1), squeeze=False)
    for i, ((a, b), cap) in enumerate(zip(pairs, captions)):
        for row, path in enumerate((a, b)):
            axes[row, i].imshow(load_image(path, size))
            axes[row, i].set_title(path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] if row == 0
                                   else cap, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def plot_image_statistics(stats: pd.DataFrame, labels: Sequence[int]):
    """Brightness, contrast and mean colour per class: differences here are
    shortcuts a model could learn instead of the lesion."""
    stats = stats.assign(label=[CLASS_NAMES[i] for i in labels])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for name in CLASS_NAMES:
        part = stats[stats["label"] == name]
        axes[0].hist(part["brightness"], bins=30, alpha=0.6, label=name)
        axes[1].hist(part["contrast"], bins=30, alpha=0.6, label=name)
    axes[0].set_xlabel("mean brightness (0-255)")
    axes[1].set_xlabel("brightness spread within image")
    means = stats.groupby("label")[["mean_r", "mean_g", "mean_b"]].mean().reindex(list(CLASS_NAMES))
    means.columns = ["red", "green", "blue"]
    means.plot.bar(ax=axes[2], color=["tab:red", "tab:green", "tab:blue"], rot=0)
    axes[2].set_ylabel("mean channel value")
    for ax in axes[:2]:
        ax.set_ylabel("images")
        ax.legend()
    return fig


def plot_metadata(table: pd.DataFrame, by: str = "label"):
    """Age, sex, body site and (where recorded) how the diagnosis was confirmed,
    per class (``by="label"``: benign/malignant) or per diagnosis (``by="dx"``).

    Differences here are confounders to keep in mind: a model may learn the
    typical site or age of a class rather than the lesion. Columns a data set
    does not have are left out; returns None when it has none of them.
    """
    if by == "label":
        groups, order = table["label"].map(dict(enumerate(CLASS_NAMES))), list(CLASS_NAMES)
    else:
        groups, order = table[by].astype("str"), [c for c in DX_CLASSES if (table[by] == c).any()]
    age = pd.to_numeric(table["age"], errors="coerce") if "age" in table else pd.Series(dtype=float)
    panels = (["age"] if age.notna().any() else []) + [c for c in ("sex", "site", "dx_type")
                                                         if c in table and table[c].notna().any()
                                                         and (normalise_category(table[c]) != UNKNOWN).any()]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    titles = {"age": "age (years)", "sex": "sex", "site": "body site", "dx_type": "how the diagnosis was confirmed"}
    for ax, col in zip(axes[0], panels):
        if col == "age":
            ax.boxplot([age[groups == g].dropna() for g in order], tick_labels=order)
            ax.set_ylabel("age (years)")
        else:
            share = pd.crosstab(normalise_category(table[col]), groups, normalize="columns").reindex(columns=order)
            image = ax.imshow(share.to_numpy(), cmap="Blues", aspect="auto", vmin=0, vmax=1)
            ax.set_xticks(range(len(order)), order, rotation=45 if len(order) > 2 else 0)
            ax.set_yticks(range(len(share)), share.index, fontsize=9)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=f"share of the {'class' if by == 'label' else 'diagnosis'}")
        ax.set_title(titles[col])
    return fig


def input_benchmark(rows: Sequence[dict]):
    """Peak memory and images/s against the number of images, in memory vs streamed
    (``apps.stream_benchmark``'s rows: one per path, task and N); returns the Figure.

    Colour: the input path; line style: the task (one decode pass, one training epoch).
    The grey dotted line is the memory of a process that has only imported TensorFlow
    and the project's modules.
    """
    table = pd.DataFrame(list(rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours, styles = {"memory": "C0", "stream": "C1"}, {"decode": "-", "epoch": "--"}
    for (path, task), part in table.groupby(["path", "task"], sort=True):
        part = part.sort_values("n")
        label = (f"{'in memory' if path == 'memory' else 'streamed'}, "
                 f"{'decode pass' if task == 'decode' else 'epoch'}")
        for ax, key in zip(axes, ("peak_rss_mb", "images_per_s")):
            ax.plot(part["n"], part[key], styles.get(task, ":"), marker="o", color=colours.get(path, "C2"),
                    label=label)
    if len(table):
        baseline = table.groupby("n")["rss_after_import_mb"].median().sort_index()
        axes[0].plot(baseline.index, baseline.values, ":", color="grey", label="after the imports")
    axes[0].set(xlabel="images (N)", ylabel="peak resident memory (MB)", title="peak memory")
    axes[1].set(xlabel="images (N)", ylabel="images per second", title="throughput")
    axes[1].set_yscale("log")  # a decode pass is tens of times faster than a training epoch
    for ax in axes:
        ax.set_xscale("log")
        if len(table):
            ax.set_xticks(sorted(table["n"].unique()), [f"{n:,}" for n in sorted(table["n"].unique())])
            ax.minorticks_off()
        ax.legend(fontsize=9)
    return fig
