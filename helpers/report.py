"""Presentation.pdf, generated from results.json and the chain's figures.

Every number on a slide is read from results.json; every picture is a PNG the
chain wrote into images/. Nothing is typed by hand.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from .atomic import atomic_path

SLIDE = (13.33, 7.5)  # 16:9 inches

# (figure file stem, slide title), shown when the chain produced them.
KEY_FIGURES = [
    ("samples_per_class", "What the images look like"),
    ("duplicates_across_split", "Near-duplicates between the given train and test split"),
    ("image_statistics", "Image statistics per class"),
    ("augmentation_examples", "Augmentation, drawn afresh every epoch"),
    ("baselines_training_curves", "Baselines: training curves"),
    ("baselines_roc", "Baselines: ROC on the cleaned test set"),
    ("transfer_roc", "Transfer learning: ROC on the cleaned test set"),
    ("lime_explanations", "What the best model looks at (LIME)"),
]


def _text_slide(pdf: PdfPages, title: str, lines: list[str], size: int = 20) -> None:
    fig = plt.figure(figsize=SLIDE)
    fig.text(0.05, 0.88, title, fontsize=32, weight="bold")
    for i, line in enumerate(lines):
        fig.text(0.06, 0.76 - i * 0.075, line, fontsize=size)
    pdf.savefig(fig)
    plt.close(fig)


def _image_slide(pdf: PdfPages, title: str, png: Path) -> None:
    fig = plt.figure(figsize=SLIDE)
    fig.text(0.05, 0.92, title, fontsize=28, weight="bold")
    ax = fig.add_axes([0.04, 0.03, 0.92, 0.85])
    ax.imshow(mpimg.imread(png))
    ax.axis("off")
    pdf.savefig(fig)
    plt.close(fig)


def _results_slide(pdf: PdfPages, results: dict[str, Any]) -> None:
    models = results.get("models", {})
    header = ["model", "weights", "test n", "AUC (95% CI)", "sensitivity", "specificity", "threshold"]
    rows = []
    for name, m in models.items():
        t = m.get("test", {})
        ci = t.get("auc_ci95")
        rows.append([name, str(m.get("weights")), str(t.get("n")),
                     f"{t.get('auc', float('nan')):.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else ""),
                     f"{t.get('sensitivity', float('nan')):.3f}", f"{t.get('specificity', float('nan')):.3f}",
                     f"{m.get('threshold', float('nan')):.3f}"])
    fig = plt.figure(figsize=SLIDE)
    fig.text(0.05, 0.88, "Results on the cleaned test set", fontsize=32, weight="bold")
    ax = fig.add_axes([0.04, 0.2, 0.92, 0.6])
    ax.axis("off")
    if rows:
        table = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(14)
        table.scale(1, 2.2)
    fig.text(0.05, 0.1, "Sensitivity and specificity at the threshold chosen on validation "
             "(target sensitivity 0.90). One seed per model.", fontsize=16)
    pdf.savefig(fig)
    plt.close(fig)


def build_presentation(results: dict[str, Any], images_dir: str | os.PathLike,
                       target: str | os.PathLike) -> Path:
    """Write the slide deck; atomic, so a failure keeps the previous deck."""
    images_dir, target = Path(images_dir), Path(target)
    run = results.get("run", {})
    data = results.get("data", {})
    with atomic_path(target) as tmp, PdfPages(tmp) as pdf:
        _text_slide(pdf, "Classifying dermoscopic images of skin lesions", [
            "Benign vs malignant, from pixels: baselines, transfer learning, explanations.",
            f"Data: {data.get('name', 'n/a')} - {data.get('images_used', 'n/a')} images used, "
            f"{data.get('test_duplicates_dropped', 'n/a')} test images dropped as copies of training images.",
            f"Run: {run.get('date', 'n/a')}, commit {str(run.get('commit'))[:10]}, "
            f"{run.get('machine', {}).get('cpu_cores', 'n/a')} CPU cores, quick={run.get('quick')}.",
            "A research project, not a medical device.",
        ])
        _results_slide(pdf, results)
        for stem, title in KEY_FIGURES:
            png = images_dir / f"{stem}.png"
            if png.exists():
                _image_slide(pdf, title, png)
        pdf.infodict()["Title"] = "Dermoscopic skin-lesion classification"
    return target
