"""Figures of the explanations chapter: LIME beside Grad-CAM, contact sheets of
test images, artefacts found and removed, what removing them does, and what
pasting them onto benign images does."""
from __future__ import annotations

from typing import Mapping, Sequence

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from skimage.segmentation import mark_boundaries

from ..data.labels import CLASS_NAMES
from ..explain.artefacts import DEFAULT, DETECTED, Scan, Settings, remove
from ..explain.counterfactual import paste
from ..explain.focus import list_errors
from ..explain.gradcam import grad_cam
from ..explain.lime import Explained
from .style import model_colour


def plot_explanations(explained: list[Explained], threshold: float, model: keras.Model | None = None,
                      num_features: int = 5):
    """One row per image: the test image with its file, label and probability;
    LIME for benign and for malignant; Grad-CAM for malignant when ``model`` is given."""
    ncols = 4 if model is not None else 3
    fig, axes = plt.subplots(len(explained), ncols, figsize=(3.1 * ncols, 3.2 * len(explained)),
                             squeeze=False, layout="constrained")  # room for the colour bar
    for row, e in zip(axes, explained):
        name = e.path.rsplit("/", 1)[-1]
        pred = CLASS_NAMES[int(e.p_malignant >= threshold)]
        row[0].imshow(e.image)
        row[0].set_title(f"{name}\ntrue {CLASS_NAMES[e.label]}, P(malignant)={e.p_malignant:.2f}\n"
                         f"predicted {pred} | {e.reason}", fontsize=9)
        for ax, cls in zip(row[1:3], (0, 1)):
            ax.imshow(mark_boundaries(e.image, e.mask(cls, num_features).astype(int), color=(0, 1, 0)))
            ax.set_title(f"LIME: towards {CLASS_NAMES[cls]}", fontsize=9)
        if model is not None:
            row[3].imshow(e.image)
            row[3].imshow(grad_cam(model, e.image, cls=1), cmap="jet", alpha=0.4)
            row[3].set_title("Grad-CAM: malignant", fontsize=9)
        for ax in row:
            ax.axis("off")
    if model is not None:
        _cam_colour_bar(fig, axes[:, 3])
    return fig


def _cam_colour_bar(fig, axes) -> None:
    """One colour bar for the Grad-CAM panels: each map is scaled to [0, 1] per image,
    so the colours say where, within one image, the model's evidence is strongest."""
    bar = fig.colorbar(plt.cm.ScalarMappable(plt.Normalize(0, 1), "jet"), ax=list(axes), fraction=0.03,
                       pad=0.02)
    bar.set_label("Grad-CAM weight (per image, 0-1)", fontsize=9)


def _short(path: str) -> str:
    """``test/benign/1019.jpg`` from an absolute path: class folder and file."""
    parts = str(path).replace("\\", "/").split("/")
    return "/".join(parts[-3:])


def plot_lime_gradcam(explained: list[Explained], model: keras.Model, threshold: float, model_name: str,
                      num_features: int = 5, cams: list[dict[int, np.ndarray]] | None = None):
    """One row per image: the test image (file, true label, P(malignant), the rule
    that chose it); LIME for the predicted and for the other class; Grad-CAM for
    the predicted and for the other class."""
    fig, axes = plt.subplots(len(explained), 5, figsize=(13.5, 2.9 * len(explained)), squeeze=False,
                             layout="constrained")  # room for the colour bar
    for k, (row, e) in enumerate(zip(axes, explained)):
        pred = int(e.p_malignant >= threshold)
        row[0].imshow(e.image)
        row[0].set_title(f"{_short(e.path)}\ntrue {CLASS_NAMES[e.label]}, P(malignant) {e.p_malignant:.2f}\n"
                         f"{e.reason}", fontsize=9)
        for ax, cls, which in ((row[1], pred, "predicted"), (row[2], 1 - pred, "other")):
            ax.imshow(mark_boundaries(e.image, e.mask(cls, num_features).astype(int), color=(0, 1, 0)))
            ax.set_title(f"LIME, {which} class: {CLASS_NAMES[cls]}", fontsize=9)
        for ax, cls, which in ((row[3], pred, "predicted"), (row[4], 1 - pred, "other")):
            cam = cams[k][cls] if cams is not None else grad_cam(model, e.image, cls)
            ax.imshow(e.image)
            ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"Grad-CAM, {which} class: {CLASS_NAMES[cls]}", fontsize=9)
        for ax in row:
            ax.axis("off")
    _cam_colour_bar(fig, axes[:, 3:].ravel())
    fig.suptitle(f"{model_name}: LIME (green outlines: {num_features} strongest superpixels) and Grad-CAM, "
                 f"threshold {threshold:.2f} chosen on validation", fontsize=9)
    return fig


def contact_sheet(images: np.ndarray, titles: list[str], ncols: int = 8, size: float = 1.6,
                  suptitle: str | None = None):
    """Small images in a grid with a short title each; returns the Figure."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.45)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i])
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def error_contact_sheet(table: pd.DataFrame, images: np.ndarray, p: np.ndarray, threshold: float,
                        model_name: str, ncols: int = 8):
    """Every test error as a contact sheet: missed malignant lesions first, then
    false alarms, each by how far P(malignant) is from the threshold."""
    wrong = list_errors(table, p, threshold)
    titles = [f"{'FN' if r.label == 1 else 'FP'} {_short(r.path).rsplit('/', 1)[-1]}\np={r.p:.2f}"
              for r in wrong.itertuples()]
    n_fn = int((wrong["label"] == 1).sum())
    return contact_sheet(images[wrong["row"].to_numpy()], titles, ncols=ncols, suptitle=(
        f"{model_name}: all {len(wrong)} test errors at threshold {threshold:.2f}: {n_fn} missed malignant (FN), "
        f"then {len(wrong) - n_fn} false alarms (FP), most confident first"))


COLOURS = {"hair": (0, 255, 0), "vignette": (255, 255, 0), "ink": (0, 255, 255), "ruler": (255, 0, 255),
           "letterbox": (255, 128, 0)}


def overlay(image: np.ndarray, masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """The image with each artefact's mask painted in its colour (``COLOURS``)."""
    out = np.asarray(image, dtype=np.uint8).copy()
    for artefact, mask in masks.items():
        out[mask] = COLOURS.get(artefact, (255, 0, 0))
    return out


def _example_rows(found: Scan, paths: Sequence[str], per_artefact: int,
                  confirmed: Mapping[str, set[str]] | None) -> list[tuple[str, int]]:
    """Which flagged images to show: those confirmed by eye first, then the ones
    the artefact covers most."""
    rows = []
    for a in DETECTED:
        shares = found.table[a + "_share"].to_numpy()
        flagged = [i for i in shares.argsort()[::-1] if found.table.at[i, a]]
        seen = (confirmed or {}).get(a, set())
        flagged.sort(key=lambda i: paths[i] not in seen)  # stable: keeps the share order within each group
        rows += [(a, i) for i in flagged[:per_artefact]]
    return rows


def plot_examples(images: np.ndarray, paths: Sequence[str], found: Scan, per_artefact: int = 2,
                  settings: Settings = DEFAULT, method: str = "smooth",
                  confirmed: Mapping[str, set[str]] | None = None):
    """For each artefact, flagged images (those in ``confirmed[artefact]``, e.g.
    also tagged by eye, first; then those it covers most): the original, what
    the detector found, and the image with the artefact removed."""
    rows = _example_rows(found, paths, per_artefact, confirmed)
    fig, axes = plt.subplots(max(1, len(rows)), 3, figsize=(7.5, 2.6 * max(1, len(rows))), squeeze=False)
    for (artefact, i), row in zip(rows, axes):
        mask = found.masks[artefact][i]
        panels = (images[i], overlay(images[i], {artefact: mask}),
                  remove(images[i], artefact, mask, settings, method))
        titles = (paths[i].rsplit("/", 2)[-2] + "/" + paths[i].rsplit("/", 1)[-1],
                  f"{artefact} found ({found.table.at[i, artefact + '_share']:.1%})",
                  "removed" if artefact not in ("vignette", "letterbox") else "borders masked")
        for ax, im, title in zip(row, panels, titles):
            ax.imshow(im)
            ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def plot_effects(table: pd.DataFrame):
    """Three panels per artefact and model. Left: test AUC on images with
    (filled) and without (open) the artefact, 95% CI. Middle: mean |change| of
    P(malignant) when it is removed, beside the control (the same amount of
    filling elsewhere, black tick). Right: the signed mean change per true class
    (below zero: the model saw less malignancy once the artefact was gone)."""
    models = list(dict.fromkeys(table["model"]))
    artefacts_ = list(dict.fromkeys(table["artefact"]))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.3))
    width = 0.8 / (2 * len(models))
    for m, model in enumerate(models):
        colour = model_colour(model)
        part = table[table["model"] == model].set_index("artefact").reindex(artefacts_).reset_index()
        base = np.arange(len(part))
        for k, (col, ci, label, marker) in enumerate((("auc_with", "auc_with_ci95", "with", "o"),
                                                      ("auc_without", "auc_without_ci95", "without", "s"))):
            xs = base + (2 * m + k - len(models) + 0.5) * width
            face = "white" if k else colour
            for x, value, (lo, hi) in zip(xs, part[col], part[ci]):
                if value is None or pd.isna(value):
                    continue
                ax1.errorbar(x, value, yerr=[[value - lo], [hi - value]], fmt=marker, color=colour, mfc=face, capsize=2)
            ax1.plot([], [], marker, color=colour, mfc=face, label=f"{model}: {label}")
        xs = base + (m - (len(models) - 1) / 2) * 2 * width
        ax2.bar(xs, part["mean_abs_dp"].astype(float).fillna(0), 2 * width * 0.9, color=colour, alpha=0.8, label=model)
        ctrl = part["control_mean_abs_dp"].astype(float)
        ax2.plot(xs[ctrl.notna()], ctrl[ctrl.notna()], "k_", markersize=14, mew=2)
        for cls, hatch, off in (("malignant", "", -0.5), ("benign", "//", 0.5)):
            xs = base + (2 * m + off - len(models) + 0.5) * width
            ax3.bar(xs, part[f"mean_dp_{cls}"].astype(float).fillna(0), width, color=colour, hatch=hatch,
                    alpha=0.8, label=f"{model}: true {cls}", edgecolor="black", linewidth=0.4)
    ax2.plot([], [], "k_", markersize=14, mew=2, label="control: filling as many pixels elsewhere")
    n_with = table.groupby("artefact", sort=False)["n_with"].first()
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(range(len(artefacts_)), [f"{a}\n(n={n_with[a]})" for a in artefacts_])
        ax.legend(fontsize=9)
    ax1.set_ylabel("test ROC AUC")
    ax1.set_title("AUC with / without the artefact", fontsize=10)
    ax2.set_ylabel("mean |change| of P(malignant)")
    ax2.set_title("Artefact removed: how much predictions move", fontsize=10)
    ax3.axhline(0, color="grey", lw=0.8)
    ax3.set_ylabel("mean change of P(malignant)")
    ax3.set_title("Artefact removed: in which direction", fontsize=10)
    return fig


def plot_pasted(image: np.ndarray, stickers: Mapping[str, Sequence]):
    """One benign image as it is and with the first sticker of each artefact pasted on."""
    shown = [(a, pool[0]) for a, pool in stickers.items() if pool]
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(2.6 * (1 + len(shown)), 2.9), squeeze=False)
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("benign test image", fontsize=9)
    for ax, (artefact, sticker) in zip(axes[0, 1:], shown):
        ax.imshow(paste(image, sticker))
        origin = sticker.source if artefact == "letterbox" else f"cut from {_short(sticker.source)}"
        ax.set_title(f"+ {artefact}\n({origin})", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def plot_paste_effects(table: pd.DataFrame, small_change: float = 0.02, few_flips: float = 0.02):
    """Left: mean change of P(malignant) when each artefact is pasted on, 95% CI,
    per model; right: share of decisions flipped, 95% CI. Dashed: the targets.
    White diamonds (when recorded): the same places covered with plain skin, the control;
    crosses: the flips among the pastes that lie on the skin only (none on the lesion)."""
    models = list(dict.fromkeys(table["model"]))
    artefacts_ = list(dict.fromkeys(table["artefact"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / max(1, len(models))
    for m, model in enumerate(models):
        part = table[table["model"] == model].set_index("artefact").reindex(artefacts_)
        xs = np.arange(len(artefacts_)) + (m - (len(models) - 1) / 2) * width
        for ax, col, ci in ((ax1, "mean_dp", "mean_dp_ci95"), (ax2, "flip_rate", "flip_rate_ci95")):
            values = part[col].astype(float).to_numpy()
            lo = np.array([c[0] if isinstance(c, list) else np.nan for c in part[ci]], float)
            hi = np.array([c[1] if isinstance(c, list) else np.nan for c in part[ci]], float)
            ax.bar(xs, values, width * 0.9, color=model_colour(model), alpha=0.8, label=model)
            # clipped: a constant change has an interval equal to it, give or take rounding
            ax.errorbar(xs, values, yerr=np.clip([values - lo, hi - values], 0, None), fmt="none", ecolor="black",
                        capsize=2)
            if f"control_{col}" in part:
                ax.scatter(xs, part[f"control_{col}"].astype(float), marker="D", s=28, facecolor="white",
                           edgecolor="black", linewidths=1.2, zorder=3,
                           label="plain-skin patch (control)" if m == 0 else None)
        if "on_skin_flip_rate" in part:
            ax2.scatter(xs, part["on_skin_flip_rate"].astype(float), marker="x", s=36, color="black", zorder=4,
                        label="pasted on the skin only" if m == 0 else None)
    n = table.groupby("artefact", sort=False)["n"].first()
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(artefacts_)), [f"{a}\n(n={n[a]})" for a in artefacts_])
    ax2.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: no bar hides under it
    for y in (-small_change, small_change):
        ax1.axhline(y, color="grey", ls="--", lw=0.8)
    ax1.axhline(0, color="black", lw=0.6)
    ax2.axhline(few_flips, color="grey", ls="--", lw=0.8)
    ax1.set_ylabel("mean change of P(malignant)")
    ax1.set_title("Artefact pasted onto benign test images", fontsize=10)
    ax2.set_ylabel("share of decisions flipped")
    ax2.set_title("Decisions that flip at each model's threshold", fontsize=10)
    return fig
