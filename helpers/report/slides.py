"""The slide deck ``Presentation.pdf``: a 10-15 slide talk built from results.json
and the PNGs the chain wrote into images/. Nothing is typed by hand: every
number on a slide comes from results.json (``deck_numbers_not_in_results``
checks that), and each title states what the slide shows, worded no stronger
than its numbers.
"""
from __future__ import annotations

import json
import math
import os
import re
import textwrap
from pathlib import Path
from typing import Any, Iterator

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages

from ..atomic import atomic_path
from ..evaluation.binary import predictive_values
from .cross import candidates
from .tables import (CLINIC_PREVALENCE, NEXT_STEPS, _ci, binary_table, headline, limitations, method_lines,
                     multiclass_table, seed_studies)


SLIDE = (13.33, 7.5)  # 16:9 inches; every font below is >= 11 pt at this size
TITLE_PT, TEXT_PT, SMALL_PT = 25, 17, 11
MAX_SLIDES = 15


# ----------------------------------------------------------------------------- layout

def _slide(pdf: PdfPages, title: str, *, lines: list[str] = (), png: Path | None = None,
           table: pd.DataFrame | None = None, note: str = "", text_pt: int = TEXT_PT) -> None:
    """One slide: a takeaway title, bullets, and a figure or a table. A tall figure
    goes beside the bullets; a wide one below them, across the slide."""
    fig = plt.figure(figsize=SLIDE)
    title_lines = textwrap.wrap(title, 58)
    for i, part in enumerate(title_lines):
        fig.text(0.04, 0.935 - i * 0.07, part, fontsize=TITLE_PT, weight="bold", va="top")
    top = 0.935 - len(title_lines) * 0.07 - 0.02
    note_lines = textwrap.wrap(note, 150)
    bottom = 0.03 + 0.028 * len(note_lines) + (0.01 if note_lines else 0)
    for i, part in enumerate(note_lines):
        fig.text(0.04, bottom - 0.01 - (i + 1) * 0.028, part, fontsize=SMALL_PT, color="0.3", va="bottom")
    image = mpimg.imread(png) if png is not None and png.exists() else None
    beside = image is not None and lines and image.shape[1] / image.shape[0] < 1.5
    y = top
    if lines:
        y = _bullets(fig, lines, x=0.045, top=top, width=0.42 if beside else 0.91, size=text_pt)
    if image is not None:
        # beside: the right half, full height; otherwise below the bullets, the whole width
        rect = [0.49, bottom, 0.48, top - bottom] if beside else [0.04, bottom, 0.92, y - bottom - 0.01]
        ax = fig.add_axes(rect)
        ax.imshow(image)
        ax.axis("off")
    if table is not None and len(table):
        ax = fig.add_axes([0.04, bottom, 0.92, y - bottom - 0.02])
        ax.axis("off")
        cells = [[_cell(v) for v in row] for row in table.itertuples()]
        t = ax.table(cellText=cells, colLabels=[table.index.name or ""] + list(table.columns),
                     loc="upper center", cellLoc="center")
        t.auto_set_font_size(False)
        t.scale(1.0, 2.3)
        renderer = fig.canvas.get_renderer()
        for size in (15, 13, 11, 9):  # the largest font at which the table fits across the slide (>= 9 pt)
            t.set_fontsize(size)
            t.auto_set_column_width(list(range(len(table.columns) + 1)))
            if t.get_window_extent(renderer).width <= ax.get_window_extent(renderer).width:
                break
    pdf.savefig(fig)
    plt.close(fig)


def _bullets(fig, lines: list[str], *, x: float, top: float, width: float, size: int) -> float:
    """Draw bullets from ``top`` down; return where they end (figure fraction)."""
    chars = round(width * SLIDE[0] * 72 / (size * 0.56))  # ~0.56 em per character in DejaVu Sans
    step = size / 72 / SLIDE[1] * 1.3
    y = top
    for line in lines:
        for i, part in enumerate(textwrap.wrap(line, chars) or [""]):
            fig.text(x, y, ("\u2022 " if i == 0 else "   ") + part, fontsize=size, va="top")
            y -= step
        y -= step * 0.4
    return y


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------- what the slides say

def _percent(x: float) -> str:
    return f"{x:.0%}"


def clinic_numbers(results: dict[str, Any]) -> dict[str, float]:
    """The best model's PPV and NPV at ``CLINIC_PREVALENCE`` (an illustration, not a
    measured rate) and the test set's own share of malignant images; the chain
    records them in results.json under "headline" so the deck's numbers are all there."""
    h = headline(results)
    if h.get("best_prevalence") is None:
        return {}
    ppv, npv = predictive_values(h["best_sensitivity"], h["best_specificity"], CLINIC_PREVALENCE)
    if not (math.isfinite(ppv) and math.isfinite(npv)):  # a model that calls nothing malignant
        return {}
    return {"clinic_prevalence": CLINIC_PREVALENCE, "test_prevalence": h["best_prevalence"],
            "ppv_at_clinic_prevalence": ppv, "npv_at_clinic_prevalence": npv}


def headline_record(results: dict[str, Any]) -> dict[str, Any]:
    """What the chain writes under "headline" in results.json before the deck is drawn:
    the derived numbers the summary, the deck and README lead with."""
    h = {k: v for k, v in headline(results).items() if v is not None}
    h.update(clinic_numbers(results))
    images = results.get("explanations", {}).get("images", {})
    h["explained_images"] = {name: len(rows) for name, rows in images.items()}
    return h


def _data_lines(results: dict[str, Any]) -> list[str]:
    data = results.get("data", {})
    sources = "; ".join(f"{src}: " + ", ".join(f"{n} {cls}" for cls, n in c.items())
                        for src, c in data.get("source_per_class", {}).items())
    lines = [f"{data.get('name')}: {data.get('images_found')} images found, {data.get('images_read')} read, "
             f"{data.get('images_skipped')} skipped (each listed in data_report.json).",
             f"{data.get('exact_pairs')} byte-identical and {data.get('near_pairs')} near-duplicate pairs form "
             f"{data.get('duplicate_groups')} groups; a group never straddles two splits.",
             f"{data.get('test_duplicates_dropped')} test images had a copy in training and were dropped.",
             f"Benign and malignant come from the same source ({sources}), so the source cannot give the "
             "answer away."]
    ham = results.get("multiclass", {}).get("data", {})
    if ham.get("images_used"):
        lines.append(f"HAM10000 (seven diagnoses, one image per lesion): {ham['images_used']} images used.")
    return lines


def _results_title(h: dict[str, Any]) -> str:
    return (f"Best on validation, {h['best_model']}: test AUC {h['best_auc']:.3f} "
            f"(95% CI {_ci(h['best_auc_ci'])}, n = {h['best_n']})")


def _operating_title(h: dict[str, Any]) -> str:
    return (f"At its validation threshold {h['best_model']} finds {_percent(h['best_sensitivity'])} of malignant "
            f"and clears {_percent(h['best_specificity'])} of benign test images")


def _prevalence_slide(results: dict[str, Any]) -> tuple[str, list[str]] | None:
    h, c = headline(results), clinic_numbers(results)
    if not c or h.get("best_ppv") is None:
        return None
    lines = [f"On this test set {_percent(c['test_prevalence'])} of images are malignant (n = {h['best_n']}): "
             f"PPV {h['best_ppv']:.2f}, NPV {h['best_npv']:.2f}.",
             f"Same sensitivity and specificity where {_percent(CLINIC_PREVALENCE)} of lesions are malignant "
             f"(an illustration, not a measured clinic): PPV {c['ppv_at_clinic_prevalence']:.2f}, "
             f"NPV {c['npv_at_clinic_prevalence']:.3f}.",
             "PPV and NPV depend on how common malignancy is where the model is used; sensitivity, specificity "
             "and AUC do not (if the images are alike)."]
    if c["ppv_at_clinic_prevalence"] < 0.5:
        title = (f"Where {_percent(CLINIC_PREVALENCE)} of lesions are malignant, most lesions it calls malignant "
                 "would be benign")
    else:
        title = f"Where {_percent(CLINIC_PREVALENCE)} of lesions are malignant its PPV would be " \
                f"{c['ppv_at_clinic_prevalence']:.2f}"
    return title, lines


def _other_clinic_slide(results: dict[str, Any]) -> tuple[str, list[str]] | None:
    section = results.get("cross_dataset")
    found = candidates(results)
    best = section.get("best_on_validation") if section else None
    if not best or best not in found:
        return None
    c = found[best]
    scores = {ds: d["test"] for ds, d in c.by_dataset.items()}
    lines = [f"{best} (trained on {' + '.join(c.trained_on)}): test AUC {t['auc']:.3f} "
             f"(95% CI {_ci(t.get('auc_ci95'))}, n = {t['n']}) on {ds}." for ds, t in scores.items()]
    for key, t in section.get("thresholds", {}).items():
        if key.startswith(best):
            moved = t["transferred"]
            text = (f"{key}: its own validation threshold gave sensitivity {moved['sensitivity']:.3f} and "
                    f"specificity {moved['specificity']:.3f} there; `calibrate` refits it on a clinic's images")
            refits = {size: r for size, r in t.get("refitted_with_margin", {}).items() if r.get("sensitivity")}
            if refits:
                size, r = list(refits.items())[-1]
                text += (f": on {size} of them, with its margin, {r['share_meeting_target']:.0%} of "
                         f"{r['repeats'] - r['skipped']} samples reached the target, at mean specificity "
                         f"{r['specificity']['mean']:.3f}")
            lines.append(text + ".")
    lines.append("Lesions shared by the two archives are kept on one side; other clinics, cameras and darker "
                 "skin are not in either archive.")
    (ds_a, a), (ds_b, b) = list(scores.items())[0], list(scores.items())[-1]
    if len(scores) > 1:
        overlap = a.get("auc_ci95") and b.get("auc_ci95") and not (
            a["auc_ci95"][1] < b["auc_ci95"][0] or b["auc_ci95"][1] < a["auc_ci95"][0])
        verb = "with overlapping 95% CIs" if overlap else "and the 95% CIs do not overlap"
        title = f"{best}: test AUC {a['auc']:.3f} on {ds_a}, {b['auc']:.3f} on {ds_b}, {verb}"
    else:
        title = f"{best} on each archive's test split"
    return title, lines


def _explanation_note(results: dict[str, Any]) -> str:
    ex = results.get("explanations", {})
    parts = []
    for name, f in ex.get("lesion_focus", {}).items():
        n = len(ex.get("images", {}).get(name, []))
        parts.append(f"{name}: Grad-CAM puts a median {_percent(f['median_gradcam_on_lesion'])} of its weight on "
                     f"the lesion, which covers a median {_percent(f['median_lesion_area'])} of the image (n = {n})")
    return ("; ".join(parts) + ". A lesion-blind map would put as much on the lesion as the lesion's area.") \
        if parts else "Heat maps on a few test images: where evidence sits, not what the model relies on."


def _shortcut_slide(results: dict[str, Any]) -> tuple[str, list[str]] | None:
    rows = results.get("artefacts", {}).get("pasted_on_benign", [])
    if not rows:
        return None
    best = headline(results).get("best_model")
    models = results.get("models", {})
    # The served model beside the one-archive model without the mitigation; the others are in notebook 4.
    shown = [r for r in rows if r["model"] in (best, "lite0_imagenet")] or rows
    served = [r for r in shown if r["model"] == best] or shown
    top = max(served, key=lambda r: r["mean_dp"])
    reference = next((r for r in shown if r["model"] == "lite0_imagenet" and r["artefact"] == top["artefact"]
                      and r["model"] != top["model"]), None)
    lines = ["Mean change of P(malignant) when an artefact is pasted onto benign test images (95% CI), and the "
             "share of decisions it flips:"]
    for model in dict.fromkeys(r["model"] for r in shown):  # one bullet per model, so the figure keeps room
        mine = [r for r in shown if r["model"] == model]
        how = ("; trained with rulers, ink and black bars pasted onto both classes"
               if (models.get(model, {}).get("recipe") or {}).get("artefact_augmentation") else "")
        lines.append(f"{model} (n = {mine[0]['n']}{how}): " + "; ".join(
            f"{r['artefact']} {r['mean_dp']:+.3f} [{r['mean_dp_ci95'][0]:+.3f}, {r['mean_dp_ci95'][1]:+.3f}], "
            f"{r['flip_rate']:.1%} flipped"
            + (f" ({r['control_flip_rate']:.1%} by a plain-skin patch there)"
               if r.get("control_flips") is not None else "")
            + (f", {r['on_skin_flip_rate']:.1%} of the {r['on_skin_n']} on the skin only"
               if r.get("on_skin_n") else "") for r in mine) + ".")
    for name, record in models.items():
        m = record.get("mitigation")
        if m:
            judged = [f"{d['validation']['difference']:+.3f} (95% CI {d['validation']['ci95'][0]:+.3f} to "
                      f"{d['validation']['ci95'][1]:+.3f}) on {ds} validation"
                      for ds, d in m.get("by_dataset", {}).items() if d.get("validation", {}).get("ci95")]
            lines.append(f"{name} minus {m.get('baseline', 'its baseline')}, AUC: {'; '.join(judged) or 'n/a'}, so "
                         f"{'kept' if m['kept'] else 'not kept'} (rule: {m['rule']}).")
    if reference:
        title = (f"A pasted {top['artefact']} moves {top['model']}'s P(malignant) by {top['mean_dp']:+.3f}, "
                 f"{reference['model']}'s by {reference['mean_dp']:+.3f}")
    elif top["mean_dp_ci95"][0] > 0:
        title = f"A pasted {top['artefact']} raises {top['model']}'s P(malignant) by {top['mean_dp']:+.3f}"
    else:
        title = f"Pasted artefacts: no rise in {top['model']}'s P(malignant) that the test images can tell from zero"
    return title, lines


def _multiclass_slide(results: dict[str, Any], table: pd.DataFrame) -> tuple[str, list[str]]:
    """Title and bullets for the seven-class chapter; no model is picked on the test set."""
    lo, hi = table["balanced acc."].min(), table["balanced acc."].max()
    title = (f"Seven diagnoses: test balanced accuracy {lo:.3f} to {hi:.3f} across {len(table)} models "
             "(chance: one in seven)")
    section, lines = results.get("multiclass", {}), []
    for name, record in section.items():
        mel = record.get("test", {}).get("per_class", {}).get("mel", {}) if isinstance(record, dict) else {}
        if mel.get("recall") is not None and record.get("inputs") != "metadata":
            precision = "n/a" if mel.get("precision") is None else f"{mel['precision']:.2f}"
            lines.append(f"Melanoma with {name}: recall {mel['recall']:.2f}, precision {precision} "
                         f"(n = {mel['support']} melanomas in the test split).")
    gain = section.get("metadata_gain", {})
    study = section.get("seed_study", {})
    gains = [g for g in study.get("metadata_gain", {}).get("test", []) if g is not None]
    if gain.get("ci95"):
        lines.append(f"Adding age, sex and site to the image: balanced accuracy {gain['difference']:+.3f} "
                     f"(paired 95% CI {gain['ci95'][0]:+.3f} to {gain['ci95'][1]:+.3f})"
                     + ("; no gain the test split can tell from zero." if gain["ci95"][0] <= 0 else
                        # the interval resamples test images of one network; seeds may move it more
                        " for one trained network." if len(gains) > 1 else
                        " for one trained network; retraining with another seed may move it more than that."))
    if len(gains) > 1:  # notebook 6 retrained both models with further seeds
        fused = study.get("lite0_7class_metadata", {}).get("test", {})
        lines.append(f"Retrained with {len(study['seeds'])} seeds: the metadata's gain ranged from {min(gains):+.3f} "
                     f"to {max(gains):+.3f}" + (f", the image + metadata model's balanced accuracy from "
                                                f"{fused['min']:.3f} to {fused['max']:.3f}." if fused else "."))
    return title, lines


def _conclusion_lines(results: dict[str, Any]) -> list[str]:
    h = headline(results)
    lines = []
    if h.get("best_model"):
        lines.append(f"On held-out {h['data_name']} images, {h['best_model']} separates benign from malignant with "
                     f"test AUC {h['best_auc']:.3f} (95% CI {_ci(h['best_auc_ci'])}, n = {h['best_n']}).")
    if h.get("seed_n", 0) > 1 and len(h["seed_models"]) > 1:
        lines.append(f"Seed to seed ({', '.join(h['seed_models'])}) the test AUC moves with standard deviation up "
                     f"to {h['seed_sd_max']:.3f} ({h['seed_sd_max_model']}): smaller differences are noise.")
    elif h.get("seed_n", 0) > 1:
        lines.append(f"Seed to seed ({h['seed_n']} seeds of {h['seed_model']}) the test AUC moves with standard "
                     f"deviation {h['seed_sd']:.3f}: differences smaller than that are noise.")
    other = _other_clinic_slide(results)
    if other:
        found = candidates(results).get(h.get("best_model", ""))
        both = found and set(found.by_dataset) <= set(found.trained_on)
        lines.append(("On each archive it was trained on: " if both else "At the other archive: ")
                     + other[0].split(": ", 1)[-1] + ".")
    shortcut = _shortcut_slide(results)
    if shortcut:
        rows = [r for r in results["artefacts"]["pasted_on_benign"] if r["model"] == h.get("best_model")]
        still = any(r["mean_dp_ci95"][0] > 0 for r in rows)
        lines.append(shortcut[0] + (f" on benign test images: {h.get('best_model')} still partly uses what is "
                                    "around the lesion." if still else " on benign test images."))
    lines.append("Thresholds, PPV and NPV must be set again at each clinic; this is research, not a diagnosis.")
    return lines


# ----------------------------------------------------------------------------- the deck

def _plan(results: dict[str, Any], images_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(title, slide contents) in talk order; a section without results is left out."""
    h = headline(results)
    png = lambda stem: images_dir / f"{stem}.png"  # noqa: E731
    yield ("Classifying dermoscopic images of skin lesions", {"lines": [
        "Benign or malignant from the image alone, then seven HAM10000 diagnoses.",
        "How well it works on held-out images, what it looks at, and how far the numbers travel to another "
        "archive.",
        "A research and teaching project, not a medical device."]})
    yield ("Why: a skin-lesion classifier is only worth its numbers at a new clinic", {"lines": [
        "Dermoscopy needs training; a second opinion from a model is tempting.",
        "Earlier public projects put copies of one lesion in train and test, took benign and malignant images "
        "from different sources, and judged at a fixed 0.5 threshold by accuracy alone.",
        "Here: splits grouped by lesion, both classes from one source, thresholds chosen on validation, "
        "AUC with bootstrap intervals, and a second archive kept for testing."],
        "png": png("duplicates_across_split")})
    if results.get("data"):
        data = results["data"]
        yield (f"{data.get('images_used')} images of {data.get('name')}; copies of one lesion never "
               "straddle two splits", {"lines": _data_lines(results), "png": png("samples_per_class")})
    yield ("Models and thresholds are chosen on validation; the test set only reports",
           {"lines": method_lines(results), "png": png("augmentation_examples")})
    if h.get("best_model"):
        table = binary_table(results["models"], seed_studies(results))
        table.insert(0, "pretrained", ["ImageNet" if str(w).startswith("imagenet") else "no"
                                       for w in table.pop("weights")])
        table = table[["pretrained", "image size", "AUC", "AUC 95% CI", "sensitivity", "specificity",
                       "validation AUC", "AUC over seeds"]]
        note = ("Test AUC, sensitivity and specificity (at the threshold chosen on validation) of the run with "
                "the recorded seed; AUC over seeds: mean ± standard deviation over the seed study's runs "
                "(how many). A gap smaller than the seed spread means little.")
        yield _results_title(h), {"table": table, "note": note}
        yield _operating_title(h), {"png": png("threshold_sweep"), "note":
                                    f"Sensitivity and specificity of {h['best_model']} on each archive's test "
                                    "split as the threshold moves; the dashed line is the threshold chosen on "
                                    "validation, before any test image was scored."}
    prevalence = _prevalence_slide(results)
    if prevalence:
        yield prevalence[0], {"lines": prevalence[1], "png": png(f"{h['best_model']}_confusion")}
    other = _other_clinic_slide(results)
    if other:
        yield other[0], {"lines": other[1], "png": png("cross_dataset_roc"), "text_pt": 14,
                         "note": "Every benign/malignant model of the series; markers: each model's threshold "
                                 "chosen on validation."}
    if png("lime_explanations").exists():
        yield ("Heat maps show where evidence sits, not proof of what the model uses",
               {"png": png("lime_explanations"), "note": _explanation_note(results)})
    shortcut = _shortcut_slide(results)
    if shortcut:
        yield shortcut[0], {"lines": shortcut[1], "png": png("counterfactual_effects"), "text_pt": 13,
                             "note": "Every model's results for pasting artefacts on and removing them: notebook 4."}
    mc = multiclass_table(results)
    if len(mc):
        title, lines = _multiclass_slide(results, mc)
        yield title, {"lines": lines, "text_pt": 15,
                      "table": mc[["inputs", "test n", "balanced acc.", "95% CI", "macro AUC", "malignant AUC"]],
                      "note": "Balanced accuracy = mean recall over the seven diagnoses; 95% bootstrap CI over the "
                              "test images. Confusion matrices in notebook 5."}
    yield "Limitations: what these numbers do not show", {"lines": limitations(results)}
    yield "What holds, and on which data", {"lines": _conclusion_lines(results)}
    run = results.get("run", {})
    reruns = "".join(f" {', '.join(r['notebooks'])} rerun {r.get('date', 'n/a')}, commit {str(r.get('commit'))[:10]}."
                     for r in run.get("partial_reruns", []))
    yield ("Next steps", {"lines": NEXT_STEPS, "note":
                          f"Made by the chain (python -m helpers reproduce) from results.json: run of "
                          f"{run.get('date', 'n/a')}, commit {str(run.get('commit'))[:10]}, "
                          f"{run.get('machine', {}).get('cpu_cores', 'n/a')} CPU cores, quick={run.get('quick')}."
                          + reruns})


def build_presentation(results: dict[str, Any], images_dir: str | os.PathLike,
                       target: str | os.PathLike) -> Path:
    """Write the slide deck; atomic, so a failure keeps the previous deck."""
    images_dir, target = Path(images_dir), Path(target)
    plan = list(_plan(results, images_dir))
    if len(plan) > MAX_SLIDES:
        raise ValueError(f"The deck would have {len(plan)} slides; a 15-minute talk has at most {MAX_SLIDES}.")
    with atomic_path(target) as tmp, PdfPages(tmp) as pdf:
        for title, content in plan:
            _slide(pdf, title, **content)
        pdf.infodict()["Title"] = "Dermoscopic skin-lesion classification"
    return target


# ----------------------------------------------------------------------------- checking a deck

# A number on a slide: not part of a name (lite0, vgg16, HAM10000, top-2) and not a hash.
_NUMBER = re.compile(r"(?<![A-Za-z_.\d])(\d+(?:\.\d+)?)(%?)(?![\w])")
# Numbers in the deck's prose that are not results: the confidence level, the fixed
# 0.5 threshold earlier projects used, the augmentation's right angles, the 224 px of
# the next steps, names such as top-2. Anything else must be traceable to results.json.
_FIXED = re.compile(r"95% (?:CI|bootstrap|confidence|intervals?)|fixed 0\.5 threshold|90-degree|\(224 px\)|top-2")


def slide_texts(pdf_path: str | os.PathLike) -> list[str]:
    """The text of each page of a PDF (pypdf), for tests and checks."""
    from pypdf import PdfReader  # only the deck checks need it

    return [page.extract_text() or "" for page in PdfReader(str(pdf_path)).pages]


def _numbers_in(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield abs(float(value))
    elif isinstance(value, str):
        yield from (float(m.group(1)) for m in _NUMBER.finditer(value.replace("-", " ")))
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers_in(v)


def deck_numbers_not_in_results(pdf_path: str | os.PathLike, results: dict[str, Any]) -> list[str]:
    """Every number printed on the deck that no value in ``results`` rounds to
    (a percentage counts as its fraction); an empty list means each number on a
    slide can be traced to results.json. Numbers inside figures are not read."""
    known = sorted(set(_numbers_in(results)) | set(_numbers_in(json.loads(json.dumps(results, default=str)))))
    missing = []
    for page, text in enumerate(slide_texts(pdf_path), start=1):
        text = _FIXED.sub(" ", text.replace("\n", " "))
        for m in _NUMBER.finditer(text):
            digits = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
            shown = float(m.group(1))
            if m.group(2):  # 16.7% is the fraction 0.167
                shown, digits = shown / 100, digits + 2
            if not any(abs(round(v, digits) - shown) < 10 ** -(digits + 3) for v in known):
                missing.append(f"slide {page}: {m.group(0)}")
    return missing
