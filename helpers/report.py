"""The summary of a run: tables and headline numbers read from results.json,
shared by the main notebook and the slide deck ``Presentation.pdf``.

Every number on a slide or in the main notebook comes from results.json; every
picture is a PNG the chain wrote into images/. Nothing is typed by hand.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages

from .atomic import atomic_path

SLIDE = (13.33, 7.5)  # 16:9 inches

NEXT_STEPS = [
    "Score the models on external test sets from other clinics and devices.",
    "Higher resolution (224 px) and ensembles on a GPU; test-time augmentation.",
    "Colour constancy and lesion segmentation to reduce reliance on artefacts.",
]


# ------------------------------------------------------------------ tables
def _ci(ci) -> str:
    return f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "n/a"


def binary_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per binary model: test metrics at the validation-chosen threshold."""
    rows = []
    for name, m in results.get("models", {}).items():
        t = m.get("test", {})
        rows.append({"model": name, "weights": m.get("weights"), "image size": m.get("image_size"),
                     "test n": t.get("n"), "AUC": t.get("auc"), "AUC 95% CI": _ci(t.get("auc_ci95")),
                     "sensitivity": t.get("sensitivity"), "specificity": t.get("specificity"),
                     "balanced acc.": t.get("balanced_accuracy"), "threshold": m.get("threshold"),
                     "validation AUC": m.get("validation", {}).get("auc"),
                     "train s": None if m.get("train_seconds") is None else round(m["train_seconds"])})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def multiclass_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per HAM10000 seven-class model (empty when that chapter has not run)."""
    rows = []
    for name, m in results.get("multiclass", {}).items():
        if not isinstance(m, dict) or "test" not in m:
            continue
        t = m["test"]
        rows.append({"model": name, "inputs": m.get("inputs"), "test n": t.get("n"),
                     "balanced acc.": t.get("balanced_accuracy"),
                     "95% CI": _ci(t.get("balanced_accuracy_ci95")), "macro AUC": t.get("auc_macro_ovr"),
                     "top-2 acc.": t.get("top2_accuracy"),
                     "malignant AUC": (t.get("malignant") or {}).get("auc")})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def best_binary_model(results: dict[str, Any]) -> str | None:
    """The binary model with the best validation AUC (the test set plays no part)."""
    scored = {n: m["validation"]["auc"] for n, m in results.get("models", {}).items()
              if m.get("validation", {}).get("auc") is not None}
    return max(scored, key=scored.get) if scored else None


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers the summary leads with."""
    data, models = results.get("data", {}), results.get("models", {})
    best = best_binary_model(results)
    out = {"data_name": data.get("name"), "images_used": data.get("images_used"),
           "duplicate_groups": data.get("duplicate_groups"),
           "test_duplicates_dropped": data.get("test_duplicates_dropped"), "best_model": best}
    if best:
        m = models[best]
        out.update(best_auc=m["test"]["auc"], best_auc_ci=m["test"].get("auc_ci95"),
                   best_sensitivity=m["test"]["sensitivity"], best_specificity=m["test"]["specificity"],
                   best_threshold=m["threshold"], best_weights=m.get("weights"))
    study = results.get("seed_study")
    if study:
        out.update(seed_model=study["model"], seed_n=len(study["seeds"]), seed_mean=study["mean"],
                   seed_sd=study["sd"])
    return out


def comparison_lines(results: dict[str, Any]) -> list[str]:
    """The paired test-AUC differences notebook 3 recorded for the best model."""
    best = best_binary_model(results)
    vs = results.get("models", {}).get(best, {}).get("auc_vs", {}) if best else {}
    return [f"{best} minus {other}: test AUC {r['difference']:+.3f} (paired bootstrap 95% CI "
            f"{r['ci95'][0]:+.3f} to {r['ci95'][1]:+.3f})." for other, r in vs.items()]


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Plain sentences stating the main results, generated from results.json."""
    h = headline(results)
    lines = []
    if h.get("images_used") is not None:
        lines.append(f"{h['images_used']} images of {h['data_name']} were used; "
                     f"{h['duplicate_groups']} groups of duplicate photos were found and "
                     f"{h['test_duplicates_dropped']} test images with a copy in the training split were "
                     "dropped from the test set.")
    if h.get("best_model"):
        lines.append(f"Best model on validation: {h['best_model']} (weights: {h['best_weights']}). "
                     f"Cleaned test set ROC AUC {h['best_auc']:.3f} (95% CI {_ci(h['best_auc_ci'])}); at the "
                     f"threshold chosen on validation ({h['best_threshold']:.3f}) sensitivity "
                     f"{h['best_sensitivity']:.3f}, specificity {h['best_specificity']:.3f}.")
    if h.get("seed_n", 0) > 1:
        lines.append(f"Over {h['seed_n']} seeds, {h['seed_model']} reached a mean test AUC of "
                     f"{h['seed_mean']:.3f} (standard deviation {h['seed_sd']:.3f}).")
    mc = multiclass_table(results)
    if len(mc):
        best_mc = mc["balanced acc."].idxmax()
        lines.append(f"Seven HAM10000 diagnoses: best balanced accuracy {mc.loc[best_mc, 'balanced acc.']:.3f} "
                     f"(95% CI {mc.loc[best_mc, '95% CI']}) with {best_mc}.")
    return lines


def _sizes(results: dict[str, Any]) -> str:
    sizes = sorted({m.get("image_size") for m in results.get("models", {}).values() if m.get("image_size")})
    return " and ".join(f"{s}x{s}" for s in sizes) or "n/a"


def _target(results: dict[str, Any]) -> str:
    targets = {m.get("target_sensitivity") for m in results.get("models", {}).values()} - {None}
    return ", ".join(f"{t:.2f}" for t in sorted(targets)) or "n/a"


def limitations(results: dict[str, Any]) -> list[str]:
    data = results.get("data", {})
    return [
        f"Small data: {data.get('images_used', 'n/a')} images from one processed ISIC Archive set "
        f"({data.get('name', 'n/a')}); one split; one seed per model except the seed study.",
        f"Low resolution for a CPU budget: {_sizes(results)} pixels.",
        "External validity unknown: other clinics, cameras and skin types may differ; scored separately.",
        "Published reader-study operating points were measured on other images: orientation, not a contest.",
        "A research and teaching project, not a medical device: no prediction here is a diagnosis.",
    ]


def method_lines(results: dict[str, Any]) -> list[str]:
    n_resamples = {m.get("bootstrap", {}).get("n_resamples") for m in results.get("models", {}).values()} - {None}
    return [
        "Validation split carved from the training data, grouped by duplicate group, stratified, fixed seed.",
        f"Threshold chosen on validation for sensitivity of at least {_target(results)}; the test set only reports.",
        "Augmentation drawn afresh every epoch: flips, 90-degree rotations, crops, colour jitter.",
        "Transfer learning in two stages: head on frozen features, then the top blocks fine-tuned.",
        f"AUC with a 95% bootstrap interval ({', '.join(map(str, sorted(n_resamples))) or 'n/a'} resamples "
        "of the test images).",
    ]


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub markdown table (floats to ``digits`` places, None as n/a)."""
    def cell(v):
        if v is None or (isinstance(v, float) and v != v):
            return "n/a"
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    cols = [table.index.name or ""] + list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in (idx, *row)) + " |"
              for idx, row in zip(table.index, table.itertuples(index=False))]
    return "\n".join(lines) + "\n"


def readme_markdown(results: dict[str, Any]) -> str:
    """README's generated results block: tables, seed spread, timings, run."""
    if not results.get("models"):
        return "_No results yet: run `make reproduce`._\n"
    parts = ["**Benign vs malignant**, cleaned test set; sensitivity and specificity at the threshold "
             "chosen on validation; one seed per model.\n\n", markdown_table(binary_table(results))]
    study = results.get("seed_study")
    if study and len(study["seeds"]) > 1:
        parts.append(f"\n{study['model']} over {len(study['seeds'])} seeds: test AUC mean {study['mean']:.3f}, "
                     f"sd {study['sd']:.3f} (range {study['min']:.3f}-{study['max']:.3f}).\n")
    comparisons = comparison_lines(results)
    if comparisons:
        parts.append("\n" + "".join(f"- {line}\n" for line in comparisons))
    mc = multiclass_table(results)
    if len(mc):
        parts += ["\n**Seven HAM10000 diagnoses**, test set; balanced accuracy = mean per-class recall.\n\n",
                  markdown_table(mc)]
    timings, run = results.get("timings", {}), results.get("run", {})
    if timings:
        parts.append("\nWall time per notebook (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
                     + (f"; whole chain {run['chain_seconds'] / 60:.1f} min" if run.get("chain_seconds") else "")
                     + ".\n")
    if run:
        parts.append(f"\nRun: commit `{(run.get('commit') or 'unknown')[:10]}`, {run.get('date')}, "
                     f"{run.get('machine', {}).get('cpu_cores')} CPU cores, no GPU, quick={run.get('quick')}.\n")
    return "".join(parts)


# ------------------------------------------------------------------ slides
def _text_slide(pdf: PdfPages, title: str, lines: list[str], size: int = 19) -> None:
    fig = plt.figure(figsize=SLIDE)
    fig.text(0.05, 0.88, title, fontsize=32, weight="bold")
    y = 0.76
    for line in lines:
        wrapped = textwrap.wrap(line, 80) or [""]
        for i, part in enumerate(wrapped):
            fig.text(0.06, y, ("- " if i == 0 else "  ") + part, fontsize=size)
            y -= 0.06
        y -= 0.02
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
            f"Run of {run.get('date', 'n/a')}, commit {str(run.get('commit'))[:10]}, "
            f"{run.get('machine', {}).get('cpu_cores', 'n/a')} CPU cores, quick={run.get('quick')}.",
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
                         binary_table(results)[["weights", "image size", "AUC", "AUC 95% CI", "sensitivity",
                                                "specificity", "threshold"]],
                         "Sensitivity and specificity at the threshold chosen on validation; one seed per model.")
        figure("transfer_roc", "ROC curves: transfer learning",
               "Markers: operating points chosen on validation; published reader studies on other images.")
        best = h.get("best_model")
        if best:
            figure(f"{best}_confusion", f"Confusion matrix of {best} (test set)")
        figure("lime_explanations", "What the best model looks at (LIME, Grad-CAM)")
        figure("artefact_effects", "Does the model rely on artefacts?")
        mc = multiclass_table(results)
        if len(mc):
            _table_slide(pdf, "Seven HAM10000 diagnoses: test set", mc,
                         "Balanced accuracy = mean per-class recall (the ISIC 2018 metric), 95% bootstrap CI.")
            figure("ham10000_confusion", "Seven diagnoses: normalised confusion matrix")
        _text_slide(pdf, "Limitations", limitations(results))
        _text_slide(pdf, "Next steps", NEXT_STEPS)
        pdf.infodict()["Title"] = "Dermoscopic skin-lesion classification"
    return target
