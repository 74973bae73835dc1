"""The slide deck ``Presentation.pdf``, built from results.json and the PNGs the
chain wrote into images/. Nothing is typed by hand."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages

from ..atomic import atomic_path
from .tables import (NEXT_STEPS, binary_table, cross_dataset_lines, headline, limitations, method_lines,
                     multiclass_table, shortcut_lines, summary_lines)


SLIDE = (13.33, 7.5)  # 16:9 inches


def _text_slide(pdf: PdfPages, title: str, lines: list[str], size: int = 19) -> None:
    fig = plt.figure(figsize=SLIDE)
    fig.text(0.05, 0.88, title, fontsize=32, weight="bold")
    y = 0.76
    scale = size / 19  # smaller type: more characters per line, closer lines
    for line in lines:
        wrapped = textwrap.wrap(line, round(80 / scale)) or [""]
        for i, part in enumerate(wrapped):
            fig.text(0.06, y, ("- " if i == 0 else "  ") + part, fontsize=size)
            y -= 0.06 * scale
        y -= 0.02 * scale
    pdf.savefig(fig)
    plt.close(fig)


def _image_slide(pdf: PdfPages, title: str, png: Path, caption: str = "") -> None:
    fig = plt.figure(figsize=SLIDE)
    fig.text(0.05, 0.92, title, fontsize=28, weight="bold")
    ax = fig.add_axes([0.04, 0.08 if caption else 0.03, 0.92, 0.8])
    ax.imshow(mpimg.imread(png))
    ax.axis("off")
    if caption:
        fig.text(0.05, 0.03, caption, fontsize=15)
    pdf.savefig(fig)
    plt.close(fig)


def _table_slide(pdf: PdfPages, title: str, table: pd.DataFrame, note: str) -> None:
    fig = plt.figure(figsize=SLIDE)
    fig.text(0.05, 0.88, title, fontsize=32, weight="bold")
    ax = fig.add_axes([0.03, 0.2, 0.94, 0.6])
    ax.axis("off")
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples()]
    t = ax.table(cellText=cells, colLabels=[table.index.name or ""] + list(table.columns),
                 loc="upper center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(13)
    t.auto_set_column_width(list(range(len(table.columns) + 1)))
    t.scale(1.9, 2.4)  # auto widths are tight; fill the slide
    fig.text(0.05, 0.1, note, fontsize=15)
    pdf.savefig(fig)
    plt.close(fig)


def build_presentation(results: dict[str, Any], images_dir: str | os.PathLike,
                       target: str | os.PathLike) -> Path:
    """Write the slide deck; atomic, so a failure keeps the previous deck."""
    images_dir, target = Path(images_dir), Path(target)
    run, data, h = results.get("run", {}), results.get("data", {}), headline(results)

    def figure(stem: str, title: str, caption: str = "") -> None:
        png = images_dir / f"{stem}.png"
        if png.exists():
            _image_slide(pdf, title, png, caption)

    with atomic_path(target) as tmp, PdfPages(tmp) as pdf:
        _text_slide(pdf, "Classifying dermoscopic images of skin lesions", [
            "Benign vs malignant from pixels, then seven HAM10000 diagnoses: baselines, transfer learning, "
            "explanations, with leakage-free splits and thresholds chosen on validation.",
            "A research and teaching project, not a medical device.",
        ])
        _text_slide(pdf, "Summary", summary_lines(results))
        if data:
            sources = "; ".join(f"{src}: " + ", ".join(f"{n} {cls}" for cls, n in c.items())
                                for src, c in data.get("source_per_class", {}).items())
            _text_slide(pdf, "Data", [
                f"{data.get('name')}: {data.get('images_found')} images found, {data.get('images_read')} read, "
                f"{data.get('images_skipped')} skipped (listed in data_report.json).",
                f"{data.get('exact_pairs')} byte-identical pairs and {data.get('near_pairs')} near-duplicate pairs "
                f"form {data.get('duplicate_groups')} groups; a group never straddles two splits.",
                f"{data.get('test_duplicates_dropped')} test images had a copy in the training split and were "
                "dropped from the test set.",
                f"Both classes come from the same source ({sources}).",
            ])
        figure("duplicates_across_split", "Copies of training images in the given test split",
               "Top: test image (dropped); bottom: its training twin and the hash distance.")
        figure("samples_per_class", "What the images look like")
        _text_slide(pdf, "Method", method_lines(results))
        if results.get("models"):
            _table_slide(pdf, "Benign vs malignant: cleaned test set",
                         binary_table(results["models"])[["weights", "image size", "AUC", "AUC 95% CI", "sensitivity",
                                                "specificity", "threshold"]],
                         "Sensitivity and specificity at the threshold chosen on validation; one seed per model.")
        figure("transfer_roc", "ROC curves: transfer learning",
               "Markers: operating points chosen on validation; published reader studies on other images.")
        cross_lines = cross_dataset_lines(results)
        if cross_lines:
            figure("cross_dataset_auc", "Each model on each archive's test split",
                   "Test AUC with 95% bootstrap intervals; lesions shared by the two archives kept on one side.")
            _text_slide(pdf, "At another clinic", cross_lines[:3] + cross_lines[-1:], size=15)
        best = h.get("best_model")
        if best:
            figure(f"{best}_confusion", f"Confusion matrix of {best} (test set)")
        figure("lime_explanations", "Where LIME and Grad-CAM put the evidence (not proof of what the model uses)")
        figure("artefact_effects", "Does the model rely on artefacts?")
        figure("counterfactual_effects", "A ruler, ink or black bars pasted onto benign lesions",
               "Mean change of P(malignant) and decisions flipped, 95% CIs; dashed: the project's targets.")
        shortcut = shortcut_lines(results, models=(best, "lite0_imagenet", "lite0_artefact_aug"))
        if shortcut:
            _text_slide(pdf, "Shortcuts", shortcut, size=11)
        mc = multiclass_table(results)
        if len(mc):
            _table_slide(pdf, "Seven HAM10000 diagnoses: test set", mc,
                         "Balanced accuracy = mean per-class recall (the ISIC 2018 metric), 95% bootstrap CI.")
            figure("ham10000_confusion", "Seven diagnoses: normalised confusion matrix")
        _text_slide(pdf, "Limitations", limitations(results))
        # Provenance in small print on the last slide, not on the title slide.
        _text_slide(pdf, "Next steps", NEXT_STEPS + [
            f"Made by the chain: run of {run.get('date', 'n/a')}, commit {str(run.get('commit'))[:10]}, "
            f"{run.get('machine', {}).get('cpu_cores', 'n/a')} CPU cores, quick={run.get('quick')}."])
        pdf.infodict()["Title"] = "Dermoscopic skin-lesion classification"
    return target
