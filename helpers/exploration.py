"""Image statistics and exploration plots for notebook 1."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from .data import CLASS_NAMES, load_image


def image_statistics(paths: Sequence[str]) -> pd.DataFrame:
    """Original size, mode and colour statistics (on a 64x64 thumbnail) of each image."""
    rows = []
    for path in paths:
        with Image.open(path) as im:
            (width, height), mode = im.size, im.mode
        pix = load_image(path, 64).reshape(-1, 3).astype("float32")
        rows.append({"path": path, "width": width, "height": height, "mode": mode,
                     "mean_r": pix[:, 0].mean(), "mean_g": pix[:, 1].mean(), "mean_b": pix[:, 2].mean(),
                     "brightness": pix.mean(), "contrast": pix.mean(axis=1).std()})
    return pd.DataFrame(rows)


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


def plot_pairs(pairs: Sequence[tuple[str, str]], captions: Sequence[str], size: int = 128):
    """Side-by-side image pairs (e.g. a test image and its near-copy in train)."""
    n = max(len(pairs), 1)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.1), squeeze=False)
    for i, ((a, b), cap) in enumerate(zip(pairs, captions)):
        for row, path in enumerate((a, b)):
            axes[row, i].imshow(load_image(path, size))
            axes[row, i].set_title(path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] if row == 0
                                   else cap, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    return fig


METADATA_COLUMNS = {"age": "age (years)", "sex": "sex", "site": "body site", "dx_type": "how the diagnosis was confirmed"}


def available_metadata(table: pd.DataFrame) -> list[str]:
    """The metadata columns that hold any value in this data set."""
    return [c for c in METADATA_COLUMNS if c in table and table[c].notna().any()]


def plot_metadata_by_class(table: pd.DataFrame):
    """Age, sex, body site and diagnosis method per class (HAM10000, isic-cli exports).

    Differences here are confounders to keep in mind: a model may learn the
    typical site of a class rather than the lesion."""
    cols = available_metadata(table)
    fig, axes = plt.subplots(1, len(cols), figsize=(4.6 * len(cols), 4), squeeze=False)
    labels = table["label"].map(dict(enumerate(CLASS_NAMES)))
    for ax, col in zip(axes[0], cols):
        if col == "age":
            for name in CLASS_NAMES:
                ax.hist(table.loc[labels == name, "age"].dropna(), bins=18, alpha=0.6, label=name, density=True)
            ax.legend()
        else:
            share = pd.crosstab(table[col].fillna("missing"), labels, normalize="columns")
            share.plot.barh(ax=ax, legend=col == cols[-1])
            ax.set_xlabel("share of the class")
        ax.set_title(METADATA_COLUMNS[col])
    return fig
