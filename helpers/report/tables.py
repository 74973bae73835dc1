"""What a run says, read from results.json: tables, headline numbers and plain
sentences, shared by the notebooks, the main notebook, README and the slides.

Nothing here trains or evaluates; every number comes from results.json.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_text
from ..evaluation.binary import predictive_values
from ..results import best_on_validation, model_records
from .cross import candidates, paired_sentences


# A clinic's share of malignant lesions for the PPV/NPV the summary restates (an
# illustration, not a measured rate: it differs between clinics and referral levels).
CLINIC_PREVALENCE = 0.05

NEXT_STEPS = [
    "Score the models on further test sets from other clinics, devices and skin types.",
    "Better artefact detectors (the ruler detector misses most rulers): a classifier on learned features, "
    "trained on more images labelled by eye.",
    "Higher resolution (224 px) and ensembles on a GPU; test-time augmentation.",
    "Lesion segmentation, so a model can be told to look at the lesion only.",
]


def _ci(ci) -> str:
    return f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "n/a"


def seed_studies(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Notebook 6's seed studies by model (a results.json of before 2026-12-03 held one
    study, with its model's name inside)."""
    study = results.get("seed_study") or {}
    return {study["model"]: study} if "model" in study else dict(study)


def seed_name(name: str, study: dict[str, Any]) -> str:
    """A model's name as its seed study measured it: an ensemble studied one copy at a
    time (``records.record_copy_study``) reads "<name> (one copy)"."""
    return f"{name} (one copy)" if study.get("unit") == "copy" else name


def _seed_cell(study: dict[str, Any] | None, members: list[dict[str, Any]] | None = None) -> str:
    if study and len(study["seeds"]) >= 2:
        unit = " copies" if study.get("unit") == "copy" else ""
        return f"{study['mean']:.3f} ± {study['sd']:.3f} ({len(study['seeds'])}{unit})"
    if members:  # an ensemble: each member alone is one seed of its recipe
        return "members " + ", ".join(f"{m['test_auc']:.3f}" for m in members)
    return "1 seed"


def binary_table(models: dict[str, Any], seeds: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per binary model record (``results["models"]``, or a notebook's own
    records): test metrics at the validation-chosen threshold. With ``seeds``
    (``seed_studies``), a column gives each model's test AUC over seeds: mean ± sd (seeds)."""
    rows = []
    for name, m in models.items():
        t = m.get("test", {})
        rows.append({"model": name, "weights": m.get("weights"), "image size": m.get("image_size"),
                     "test n": t.get("n"), "AUC": t.get("auc"), "AUC 95% CI": _ci(t.get("auc_ci95")),
                     "sensitivity": t.get("sensitivity"), "specificity": t.get("specificity"),
                     "balanced acc.": t.get("balanced_accuracy"), "threshold": m.get("threshold"),
                     "validation AUC": m.get("validation", {}).get("auc"),
                     "train s": None if m.get("train_seconds") is None else round(m["train_seconds"])})
        if seeds is not None:
            rows[-1]["AUC over seeds"] = _seed_cell(seeds.get(name), m.get("members"))
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def cross_dataset_table(models: dict[str, Any]) -> pd.DataFrame:
    """One row per binary model scored on several data sets: what it was trained on,
    and per data set its test AUC (95% CI) and sensitivity / specificity at its
    validation-chosen threshold. Empty when no model was scored on a second data set."""
    rows = []
    for name, m in models.items():
        if "by_dataset" not in m:
            continue
        row = {"model": name, "trained on": " + ".join(m.get("trained_on", [])),
               "threshold": m.get("threshold"), "selection AUC": m.get("selection_auc")}
        for dataset, d in m["by_dataset"].items():
            t = d["test"]
            row[f"{dataset} test n"] = t.get("n")
            row[f"{dataset} AUC"] = t.get("auc")
            row[f"{dataset} AUC 95% CI"] = _ci(t.get("auc_ci95"))
            row[f"{dataset} sens / spec"] = (f"{t['sensitivity']:.3f} / {t['specificity']:.3f}"
                                            if t.get("sensitivity") is not None and t.get("specificity") is not None
                                            else "n/a")
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def cross_dataset_lines(results: dict[str, Any]) -> list[str]:
    """Plain sentences on notebook 7: each model on each archive's test split, the paired
    differences, what a transferred and a refitted threshold do (empty before notebook 7)."""
    section = results.get("cross_dataset")
    if not section:
        return []
    lines = []
    for name, c in candidates(results).items():
        scores = [f"{d['test']['auc']:.3f} (95% CI {_ci(d['test'].get('auc_ci95'))}, n={d['test']['n']}) on {ds}"
                  for ds, d in c.by_dataset.items()]
        lines.append(f"{name} (trained on {' + '.join(c.trained_on)}): test AUC " + ", ".join(scores) + ".")
    for row in section.get("paired", []):
        lines.append(f"On {row['test set']}: {section['reference']} minus {row['minus']}, test AUC "
                     f"{row['AUC difference']:+.3f} (paired bootstrap 95% CI {row['95% CI low']:+.3f} to "
                     f"{row['95% CI high']:+.3f}, n={row['n']}).")
    for key, t in section.get("thresholds", {}).items():
        moved = t["transferred"]
        text = (f"{key}: the threshold from its own validation gave sensitivity {moved['sensitivity']:.3f}, "
                f"specificity {moved['specificity']:.3f}")
        for kind, how in (("refitted", "refitted"), ("refitted_with_margin", "refitted with calibrate's margin")):
            for size, r in t.get(kind, {}).items():
                if r.get("sensitivity"):
                    text += (f"; {how} on {size} of its images: sensitivity {r['sensitivity']['mean']:.3f} "
                             f"(5-95% of samples {r['sensitivity']['p5']:.3f}-{r['sensitivity']['p95']:.3f}, "
                             f"{r['share_meeting_target']:.0%} reach the target), specificity "
                             f"{r['specificity']['mean']:.3f}")
        lines.append(text + ".")
    if section.get("best_on_validation"):
        lines.append(f"Chosen on validation across both archives (mean validation AUC): "
                     f"{section['best_on_validation']}, the model `predict` uses.")
    return lines


def multiclass_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per HAM10000 seven-class model (empty when that chapter has not run)."""
    rows = []
    for name, m in model_records({"multiclass": results.get("multiclass", {})}, include_multiclass=True).items():
        t = m["test"]
        rows.append({"model": name, "inputs": m.get("inputs"), "test n": t.get("n"),
                     "balanced acc.": t.get("balanced_accuracy"),
                     "95% CI": _ci(t.get("balanced_accuracy_ci95")), "macro AUC": t.get("auc_macro_ovr"),
                     "top-2 acc.": t.get("top2_accuracy"),
                     "malignant AUC": (t.get("malignant") or {}).get("auc")})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def multiclass_seed_lines(results: dict[str, Any]) -> list[str]:
    """What retraining notebook 5's models with further seeds showed (notebook 6),
    in sentences; empty without a study of two or more seeds."""
    study = results.get("multiclass", {}).get("seed_study", {})
    seeds = study.get("seeds", [])
    if len(seeds) < 2:
        return []
    lines = []
    for name in ("lite0_7class", "lite0_7class_metadata"):
        s = study.get(name)
        if s:
            lines.append(f"{name} over {len(seeds)} seeds ({', '.join(map(str, seeds))}): test balanced accuracy "
                         f"mean {s['test']['mean']:.3f}, range {s['test']['min']:.3f} to {s['test']['max']:.3f} "
                         f"(validation {s['validation']['min']:.3f} to {s['validation']['max']:.3f}).")
    gain = study.get("metadata_gain", {})
    test = [v for v in gain.get("test", []) if v is not None]
    if test:
        n_ci = len([c for c in gain.get("test_ci95", []) if c])
        above, below = gain.get("test_ci_above_zero", 0), gain.get("test_ci_below_zero", 0)
        parts = [f"{where} zero for {k}" for where, k in (("above", above), ("below", below),
                                                           ("including", n_ci - above - below)) if k]
        verdict = (parts[0].replace(" for ", " for all ") + " seeds" if len(parts) == 1 else
                   ", ".join(parts[:-1]) + f" and {parts[-1]} of the {n_ci} seeds")
        lines.append("What the metadata adds, seed by seed (test balanced accuracy): "
                     + ", ".join(f"{v:+.3f}" for v in test)
                     + f"; its paired 95% CI (test images resampled, one network each) was {verdict}.")
    return lines


def multiclass_summary_lines(results: dict[str, Any]) -> list[str]:
    """Plain sentences on the seven-class chapter, generated from results.json
    (notebook 5 prints them; empty when that chapter has not run)."""
    section = results.get("multiclass", {})
    recs = model_records({"multiclass": section}, include_multiclass=True)
    by_inputs = {r.get("inputs"): (name, r) for name, r in recs.items()}
    if not {"image", "image+metadata"} <= set(by_inputs):
        return []
    data, gain = section.get("data", {}), section.get("metadata_gain", {})
    img, fus = by_inputs["image"][1]["test"], by_inputs["image+metadata"][1]["test"]

    def with_ci(m: dict, key: str) -> str:
        return f"{m[key]:.3f} (95% CI {_ci(m.get(key + '_ci95'))})"

    size = data.get("image_size")
    lines = [f"Seven diagnoses, {img['n']} held-out test images of HAM10000 ({data.get('images_used', 'n/a')} used "
             f"in all, {'a quick subset' if data.get('quick') else 'the whole set'}).",
             f"Image model (Lite0{f', {size}x{size}' if size else ''}): balanced accuracy "
             f"{with_ci(img, 'balanced_accuracy')}, macro AUC {img['auc_macro_ovr']:.3f}, top-2 accuracy "
             f"{img['top2_accuracy']:.3f}, malignant AUC {img['malignant']['auc']:.3f}.",
             f"With age, sex and site: balanced accuracy {with_ci(fus, 'balanced_accuracy')}, macro AUC "
             f"{fus['auc_macro_ovr']:.3f}, malignant AUC {with_ci(fus['malignant'], 'auc')}."]
    mel = fus["per_class"].get("mel", {})
    if mel.get("recall") is not None:
        lines.append(f"Melanoma (image + metadata model, {mel['support']} test images): recall {mel['recall']:.3f}, "
                     f"precision {mel['precision']:.3f}." if mel.get("precision") is not None
                     else f"Melanoma: recall {mel['recall']:.3f}, no image called melanoma.")
    if "metadata" in by_inputs:
        kind, meta = by_inputs["metadata"][0], by_inputs["metadata"][1]["test"]
        lines.append(f"Metadata alone ({kind}): balanced accuracy {meta['balanced_accuracy']:.3f} (chance: 1/7 = "
                     f"0.143), malignant AUC {meta['malignant']['auc']:.3f}.")
    if gain.get("ci95"):
        lo, hi = gain["ci95"]
        verdict = ("the interval includes zero: no gain that this test split can distinguish from chance"
                   if lo <= 0 <= hi else "the interval excludes zero: a " + ("gain" if lo > 0 else "loss")
                   + " beyond resampling noise on this test split")
        lines.append(f"What the metadata adds (same network, paired bootstrap over the test images): "
                     f"{gain['difference']:+.3f} balanced accuracy (95% CI {lo:+.3f} to {hi:+.3f}; {verdict}); "
                     f"on validation {gain.get('validation_difference', float('nan')):+.3f}.")
    stage1 = data.get("stage1_validation_balanced_accuracy", {})
    if {"image", "image+metadata"} <= set(stage1) and "validation_difference" in gain:
        lines.append(f"On frozen ImageNet features (stage 1) the metadata changed validation balanced accuracy by "
                     f"{stage1['image+metadata'] - stage1['image']:+.3f}; after fine-tuning, by "
                     f"{gain['validation_difference']:+.3f}.")
    recall = {c: m["recall"] for c, m in fus["per_class"].items() if m.get("recall") is not None}
    if recall:
        worst = min(recall, key=recall.get)
        lines.append(f"Hardest diagnosis for the fused model: {worst} (recall {recall[worst]:.2f} on "
                     f"{fus['per_class'][worst]['support']} test images).")
    return lines + multiclass_seed_lines(results)


def best_binary_model(results: dict[str, Any]) -> str | None:
    """The binary model with the best validation AUC (the test set plays no part)."""
    return best_on_validation(results.get("models", {}))


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers the summary leads with."""
    data, models = results.get("data", {}), results.get("models", {})
    best = best_binary_model(results)
    out = {"data_name": data.get("name"), "images_used": data.get("images_used"),
           "duplicate_groups": data.get("duplicate_groups"),
           "test_duplicates_dropped": data.get("test_duplicates_dropped"), "best_model": best}
    if best:
        m = models[best]
        t = m["test"]
        out.update(best_auc=t["auc"], best_auc_ci=t.get("auc_ci95"),
                   best_sensitivity=t["sensitivity"], best_specificity=t["specificity"],
                   best_threshold=m["threshold"], best_weights=m.get("weights"),
                   best_ppv=t.get("ppv"), best_npv=t.get("npv"), best_n=t.get("n"),
                   best_prevalence=t["n_pos"] / t["n"] if t.get("n") and "n_pos" in t else None)
    studies = {k: v for k, v in seed_studies(results).items() if len(v["seeds"]) > 1}
    if studies:  # the best model's spread when it was studied, else the pretrained Lite0's
        name = next((k for k in (best, "lite0_imagenet") if k in studies), next(iter(studies)))
        study = studies[name]
        widest = max(studies, key=lambda k: studies[k]["sd"])
        out.update(seed_model=seed_name(name, study), seed_n=len(study["seeds"]), seed_mean=study["mean"],
                   seed_sd=study["sd"], seed_served_copies=study.get("served_copies"),
                   seed_sd_max=studies[widest]["sd"], seed_sd_max_model=seed_name(widest, studies[widest]),
                   seed_models=[seed_name(k, v) for k, v in studies.items()])
    return out


def comparison_lines(results: dict[str, Any]) -> list[str]:
    """The paired test-AUC differences of the best model: those notebook 3 recorded for
    it, else notebook 7's on each archive's test split (read out by ``paired_sentences``)
    when the best model was notebook 7's reference."""
    best = best_binary_model(results)
    vs = results.get("models", {}).get(best, {}).get("auc_vs", {}) if best else {}
    if vs:
        return [f"{best} minus {other}: test AUC {r['difference']:+.3f} (paired bootstrap 95% CI "
                f"{r['ci95'][0]:+.3f} to {r['ci95'][1]:+.3f})." for other, r in vs.items()]
    cross = results.get("cross_dataset", {})
    if best and cross.get("reference") == best and cross.get("paired"):
        return paired_sentences(pd.DataFrame(cross["paired"]), best)
    return []


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
        if h.get("best_prevalence") and h.get("best_ppv") is not None:
            ppv5, npv5 = predictive_values(h["best_sensitivity"], h["best_specificity"], CLINIC_PREVALENCE)
            lines.append(f"Its PPV {h['best_ppv']:.2f} and NPV {h['best_npv']:.2f} hold at this test set's "
                         f"{h['best_prevalence']:.0%} malignant (n = {h['best_n']}); where "
                         f"{CLINIC_PREVALENCE:.0%} of lesions are malignant the same sensitivity and specificity "
                         f"give PPV {ppv5:.2f} and NPV {npv5:.3f}"
                         + (": most lesions it calls malignant would be benign." if ppv5 < 0.5 else "."))
    if h.get("seed_n", 0) > 1:
        lines.append(f"Over {h['seed_n']} seeds, {h['seed_model']} reached a mean test AUC of "
                     f"{h['seed_mean']:.3f} (standard deviation {h['seed_sd']:.3f})"
                     + (f"; the served model averages {h['seed_served_copies']} copies." if h.get("seed_served_copies")
                        else "."))
        if len(h["seed_models"]) > 1:
            lines.append(f"Of the {len(h['seed_models'])} models retrained with further seeds "
                         f"({', '.join(h['seed_models'])}), {h['seed_sd_max_model']}'s test AUC moved most from seed "
                         f"to seed (standard deviation {h['seed_sd_max']:.3f}); gaps smaller than that say little.")
    found = candidates(results)
    best = h.get("best_model")
    if best and f"{best}" in found:
        scores = [f"{d['test']['auc']:.3f} (95% CI {_ci(d['test'].get('auc_ci95'))}, n={d['test']['n']}) on {ds}"
                  for ds, d in found[best].by_dataset.items()]
        lines.append(f"On each archive's test split, {best} (trained on {' + '.join(found[best].trained_on)}) "
                     "reaches a test AUC of " + " and ".join(scores) + ".")
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


def _on_skin_words(r: dict[str, Any]) -> str:
    """The flips among the pastes that lie on the skin only, when recorded."""
    if not r.get("on_skin_n"):
        return ""
    lo, hi = r["on_skin_flip_rate_ci95"]
    return (f"; where it lies on the skin only ({r['on_skin_n']} images; the rest cover part of the lesion) it "
            f"flips {r['on_skin_flip_rate']:.1%} [{lo:.1%}-{hi:.1%}]")


def shortcut_lines(results: dict[str, Any], models: tuple[str | None, ...] | None = None) -> list[str]:
    """What notebooks 3 and 4 found about artefacts: how good the detectors are
    (labels by eye on training images), what pasting an artefact onto benign
    test images does to each model (only ``models``, if given), and whether the
    mitigation was kept."""
    art = results.get("artefacts", {})
    lines = []
    checked = {a: r for a, r in art.get("detector_vs_eye", {}).items() if "precision" in r}
    if checked:  # records of older runs have no precision and recall
        n = next(iter(checked.values()))["n"]
        lines.append(f"Detectors checked on {n} training images labelled by eye: " + "; ".join(
            f"{a} precision {_p(r.get('precision'))} recall {_p(r.get('recall'))} ({r.get('by_eye')} marked)"
            for a, r in checked.items()) + ".")
    for r in art.get("pasted_on_benign", []):
        if models is not None and r["model"] not in models:
            continue
        lo, hi = r["mean_dp_ci95"]
        control = (f" (a plain-skin patch in the same place: {r['control_mean_dp']:+.3f}, "
                   f"{r['control_flip_rate']:.1%} flipped)" if r.get("control_flips") is not None else "")
        lines.append(f"{r['model']}: a pasted {r['artefact']} moves P(malignant) on {r['n']} benign isic-mvb test "
                     f"images by {r['mean_dp']:+.3f} [{lo:+.3f}, {hi:+.3f}] and flips {r['flip_rate']:.1%} "
                     f"[{r['flip_rate_ci95'][0]:.1%}-{r['flip_rate_ci95'][1]:.1%}] of decisions{control}"
                     + _on_skin_words(r) + ".")
    for name, record in results.get("models", {}).items():
        if "mitigation" in record:
            m = record["mitigation"]
            lines.append(f"{name} ({'kept' if m['kept'] else 'not kept'}: {m['rule']}): {m['sentence']}")
    return lines


def _p(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def limitations(results: dict[str, Any]) -> list[str]:
    data = results.get("data", {})
    return [
        f"Small data: {data.get('images_used', 'n/a')} images from one processed ISIC Archive set "
        f"({data.get('name', 'n/a')}); one split; one seed per model except the seed study.",
        f"Low resolution for a CPU budget: {_sizes(results)} pixels.",
        ("Two archives, both mostly pigmented lesions of light-skinned patients under a dermatoscope: notebook 7 "
         "shows how much the numbers move from one to the other; other clinics, phone cameras and darker skin "
         "may move them further." if results.get("cross_dataset") else
         "External validity unknown: the models were scored on one archive only; other clinics, cameras and skin "
         "types may differ."),
        "Published reader-study operating points were measured on other images: orientation, not a contest.",
        "A research and teaching project, not a medical device: no prediction here is a diagnosis.",
    ]


def method_lines(results: dict[str, Any]) -> list[str]:
    models = results.get("models", {}).values()
    n_resamples = {m.get("bootstrap", {}).get("n_resamples") for m in models} - {None}
    pools = sorted({(m.get("recipe") or {}).get("pool_copies") for m in models} - {None})
    augmentation = "Augmentation drawn afresh every epoch: flips, 90-degree rotations, crops, colour jitter."
    if pools:
        augmentation = ("Augmentation: flips, 90-degree rotations, crops, colour jitter; drawn afresh every epoch, "
                        f"except in Lite0's fine-tuning, which draws from {' or '.join(map(str, pools))} cached "
                        "copies of each training image (the original and augmented ones).")
    ensembles = [f"{name} is the mean logit of {m['recipe']['members']} copies trained with different seeds"
                 for name, m in results.get("models", {}).items() if (m.get("recipe") or {}).get("members", 1) > 1]
    return [
        "Validation split carved from the training data, grouped by duplicate group, stratified, fixed seed.",
        f"Threshold chosen on validation for sensitivity of at least {_target(results)}; the test set only reports.",
        augmentation,
        "Transfer learning in two stages: head on frozen features, then the top blocks fine-tuned"
        + (f"; {'; '.join(ensembles)}." if ensembles else "."),
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
    seeds = seed_studies(results)
    parts = ["**Benign vs malignant**, cleaned test set; sensitivity and specificity at the threshold "
             "chosen on validation, all from the run with the recorded seed; \"AUC over seeds\": test AUC "
             "mean ± standard deviation over the seeds notebook 6 trained (number of seeds), where it did; "
             "for an ensemble, over single copies of it (number of copies).\n\n",
             markdown_table(binary_table(results["models"], seeds))]
    for name, study in seeds.items():
        if len(study["seeds"]) > 1:
            others = {d: v for d, v in study.get("by_dataset", {}).items() if v["test_auc"] != study["test_auc"]}
            parts.append(f"\n{seed_name(name, study)} over {len(study['seeds'])} seeds: test AUC mean "
                         f"{study['mean']:.3f}, sd {study['sd']:.3f} (range {study['min']:.3f}-{study['max']:.3f})"
                         + "".join(f"; on {d}: mean {v['mean']:.3f}, sd {v['sd']:.3f} (range {v['min']:.3f}-"
                                   f"{v['max']:.3f})" for d, v in others.items())
                         + (f"; the served model averages {study['served_copies']} copies"
                            if study.get("unit") == "copy" else "") + ".\n")
    comparisons = comparison_lines(results)
    if comparisons:
        parts.append("\n" + "".join(f"- {line}\n" for line in comparisons))
    cross = cross_dataset_table(results["models"])
    if len(cross):
        parts += ["\n**On each archive's test split** (the binary data set and HAM10000 as benign/malignant; "
                  "lesions shared by the two archives kept on one side): test AUC with 95% CI, and sensitivity / "
                  "specificity at each model's validation-chosen threshold.\n\n", markdown_table(cross)]
    mc = multiclass_table(results)
    if len(mc):
        parts += ["\n**Seven HAM10000 diagnoses**, test set; balanced accuracy = mean per-class recall.\n\n",
                  markdown_table(mc)]
        seeds = multiclass_seed_lines(results)
        if seeds:  # notebook 6: the table's models retrained with further seeds
            parts.append("\nRetrained with further seeds (notebook 6): " + " ".join(seeds) + "\n")
    timings, run = results.get("timings", {}), results.get("run", {})
    if timings:
        whole = ""
        if run.get("chain_seconds"):
            whole = f"; whole chain {run['chain_seconds'] / 60:.1f} min"
            if run.get("partial_reruns"):  # the times above then mix that run with the reruns since
                whole += (f" at its last full run (commit `{str(run.get('commit', ''))[:10]}`); with the notebooks "
                          f"rerun since, the times above add up to {sum(timings.values()) / 60:.1f} min")
        parts.append("\nWall time per notebook (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
                     + whole + ".\n")
    profile = profile_line(results)
    if profile:
        parts.append(f"\n{profile}\n")
    page = page_load_line(results)
    if page:
        parts.append(f"\n{page}\n")
    if run:
        parts.append(f"\nRun: commit `{(run.get('commit') or 'unknown')[:10]}`, {run.get('date')}, "
                     f"{_cpu_words(run)}, {_gpu_words(run)}, quick={run.get('quick')}"
                     + (", full setting" if run.get("full") else "") + "."
                     + "".join(_rerun_words(run, r) for r in run.get("partial_reruns", [])) + "\n")
    return "".join(parts)


def _rerun_words(run: dict[str, Any], rerun: dict[str, Any]) -> str:
    """One partial rerun: its notebooks, commit and date, and its CPU where that is not the
    whole run's (its numbers and times then come from another machine's arithmetic)."""
    words = (f" Rerun since: {', '.join(rerun['notebooks'])} at commit `{(rerun.get('commit') or 'unknown')[:10]}`"
             f", {rerun.get('date')}")
    cpu = rerun.get("machine", {}).get("cpu")
    if cpu and cpu != run.get("machine", {}).get("cpu"):
        words += f", on another machine: {_cpu_words(rerun)}"
    return words + "."


def _cpu_words(run: dict[str, Any]) -> str:
    machine = run.get("machine", {})
    words = f"{machine.get('cpu_cores')} CPU cores"
    if machine.get("cpu"):  # runs before 2026-12-03 did not record the CPU
        flags = machine.get("cpu_vector_flags")
        words += f" ({machine['cpu']}" + (f"; {', '.join(flags)}" if flags else "") + ")"
    return words


def _gpu_words(run: dict[str, Any]) -> str:
    gpus = run.get("machine", {}).get("gpus") or []  # runs before the GPU profile did not record any
    return f"{len(gpus)} GPU ({run.get('devices', 'auto')})" if gpus else "no GPU"


def profile_line(results: dict[str, Any], top: int = 5) -> str:
    """The slowest cells of the run (papermill's time per cell), or ''."""
    profile = results.get("profile", {})
    slowest = profile.get("slowest_cells", [])[:top]
    if not slowest:
        return ""
    cells = "; ".join(f"notebook {c['notebook'].split('_')[0]} \"{c['section'] or 'cell ' + str(c['cell'])}\" "
                      f"{c['seconds']:.0f} s ({c['share']:.0%})" for c in slowest)
    return (f"Where the time goes (papermill's time per cell; {profile['n_code_cells']} code cells, "
            f"{profile['chain_code_cell_seconds'] / 60:.1f} min in all): {cells}.")


def page_load_line(results: dict[str, Any]) -> str:
    """The web page's load test (``serve --load-test``) in one sentence, or ''."""
    t = results.get("web_page", {}).get("load_test")
    if not t:
        return ""
    seven = f"seven-class model {t['seven_class_model']}" if t.get("seven_class_model") else "no seven-class model"
    return (f"Web page (`python -m helpers serve`, model {t['model']}, Grad-CAM on, {seven}; measured "
            f"{str(t.get('date', ''))[:10]}): {t['requests']} uploads of one image from {t['clients']} clients at "
            f"once on 127.0.0.1, {t['cpu_cores']} CPU cores: latency p50 {t['p50_seconds']:.2f} s, p95 "
            f"{t['p95_seconds']:.2f} s, {t['errors']} errors, {t['requests_per_second']:.1f} requests/s.")


def input_benchmark_block(report: dict[str, Any]) -> str:
    """README's block on streaming input, from the JSON ``apps.stream_benchmark`` wrote."""
    rows = {(r["n"], r["path"], r["task"]): r for r in report["results"]}
    ns = sorted({n for n, _, _ in rows})
    machine = report.get("machine", {})
    lines = [f"Measured {report['date'][:10]} by `python -m helpers.apps.stream_benchmark` on "
             f"{machine.get('cpu_count')} CPU cores (no GPU), the images linked from {report['source']} "
             f"(cycled past its size) at {report['image_size']} px, one configuration per fresh process. "
             "Decode: one pass of decode and resize; epoch: the files to the end of one epoch of the small "
             f"CNN (batch {report['batch_size']}).", "",
             "| images | path | decode images/s | decode peak RSS (MB) | epoch images/s | epoch peak RSS (MB) |",
             "|---|---|---|---|---|---|"]

    def cell(n, path, task, key, fmt):
        row = rows.get((n, path, task))
        return fmt.format(row[key]) if row and row.get(key) is not None else "-"

    for n in ns:
        for path in ("memory", "stream"):
            lines.append(f"| {n:,} | {'in memory' if path == 'memory' else 'streamed'} | "
                         f"{cell(n, path, 'decode', 'images_per_s', '{:.0f}')} | "
                         f"{cell(n, path, 'decode', 'peak_rss_mb', '{:.0f}')} | "
                         f"{cell(n, path, 'epoch', 'images_per_s', '{:.0f}')} | "
                         f"{cell(n, path, 'epoch', 'peak_rss_mb', '{:.0f}')} |")
    small, large = ns[0], ns[-1]
    notes = []
    for path, words in (("stream", "streamed"), ("memory", "in memory")):
        a, b = rows.get((small, path, "epoch")), rows.get((large, path, "epoch"))
        if a and b and len(ns) > 1:
            notes.append(f"{words} {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x")
    if notes:
        lines += ["", f"Peak memory of an epoch at {large:,} images over that at {small:,}: " + ", ".join(notes)
                  + " (aim: streamed within 1.3x)."]
    m, st = rows.get((large, "memory", "epoch")), rows.get((large, "stream", "epoch"))
    if m and st:
        lines.append(f"Streamed epoch throughput at {large:,} images: {st['images_per_s'] / m['images_per_s']:.0%} "
                     "of the in-memory path's (aim: within 10%).")
    return "\n".join(lines) + "\n"


def replace_readme_block(readme: str | os.PathLike, name: str, content: str) -> bool:
    """Rewrite the block between ``<!-- name:start -->`` and ``<!-- name:end -->``;
    True when README changed."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {start} ... {end} block.")
    new = pattern.sub(lambda _: f"{start}\n{content}{end}", text)
    if new != text:
        write_text(readme, new)
    return new != text


def update_readme(readme: str | os.PathLike, results: dict[str, Any]) -> bool:
    """Regenerate README's results block from results.json."""
    return replace_readme_block(readme, "results", readme_markdown(results))
