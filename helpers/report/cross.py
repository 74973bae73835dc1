"""Results that hold at another clinic (notebook 7): every binary model scored on every
data set's test split, read back from the predictions the chain wrote.

A *candidate* is a benign/malignant model with predictions on more than one data
set: the binary models of notebooks 2-3 (``results["models"]``, ``by_dataset``)
and the seven-class model of notebook 5 read as P(mel) + P(bcc) + P(akiec)
(``results["multiclass"][name]["malignant_view"]``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data.labels import CLASS_NAMES, DX_CLASSES, MALIGNANT_DX
from ..evaluation.binary import paired_auc_difference, proportion_ci
from ..evaluation.isic_csv import read_isic_predictions
from ..results import selection_score


@dataclass
class Candidate:
    """A benign/malignant model scored on several data sets."""

    name: str
    trained_on: list[str]
    threshold: float
    threshold_chosen_on: str
    by_dataset: dict[str, dict[str, Any]]  # data set -> {"validation", "test", "predictions", "val_predictions"}
    selection_auc: float | None

    def probabilities(self, models_dir: Path, dataset: str, part: str, image_ids) -> np.ndarray:
        """P(malignant) on ``part`` ("val" or "test") of ``dataset``, in the order of ``image_ids``."""
        file = self.by_dataset[dataset]["predictions" if part == "test" else "val_predictions"]
        return read_isic_predictions(models_dir / file, list(image_ids), CLASS_NAMES)[:, 1]


def candidates(results: Mapping[str, Any]) -> dict[str, Candidate]:
    """Every model of the run with predictions on more than one data set, by name."""
    found = {}
    for name, m in results.get("models", {}).items():
        if "by_dataset" in m:
            found[name] = Candidate(name, list(m.get("trained_on", [])), m["threshold"], m.get("threshold_chosen_on", ""),
                                    m["by_dataset"], selection_score(m))
    for name, m in results.get("multiclass", {}).items():
        view = m.get("malignant_view") if isinstance(m, dict) else None
        if view:
            aucs = [d["validation"]["auc"] for d in view["by_dataset"].values() if d["validation"]["auc"] is not None]
            found[f"{name} (malignant)"] = Candidate(f"{name} (malignant)", view["trained_on"], view["threshold"],
                                                     view["threshold_chosen_on"], view["by_dataset"],
                                                     float(np.mean(aucs)) if aucs else None)
    return found


def summary_table(found: Mapping[str, Candidate]) -> pd.DataFrame:
    """One row per candidate: what it was trained on, and per data set its test AUC
    (95% CI) and sensitivity / specificity at its validation-chosen threshold."""
    rows = []
    for name, c in found.items():
        row: dict[str, Any] = {"model": name, "trained on": " + ".join(c.trained_on),
                               "selection AUC (validation, mean over data sets)": c.selection_auc}
        for dataset, d in c.by_dataset.items():
            t = d["test"]
            ci = t.get("auc_ci95")
            row[f"{dataset}: test AUC (95% CI)"] = (f"{t['auc']:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci
                                                   else f"{t['auc']:.3f}" if t.get("auc") is not None else "n/a")
            row[f"{dataset}: sens / spec"] = f"{t['sensitivity']:.3f} / {t['specificity']:.3f}"
            row[f"{dataset}: n"] = t["n"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def paired_differences(found: Mapping[str, Candidate], reference: str, tests: Mapping[str, pd.DataFrame],
                       models_dir: Path, *, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Test AUC of ``reference`` minus each other candidate's, on each data set's test
    split, with paired bootstrap intervals (the same resampled images for both)."""
    rows = []
    for dataset, table in tests.items():
        y = table["label"].to_numpy(dtype=int)
        ids = table["image_id"]
        if dataset not in found[reference].by_dataset:
            continue
        p_ref = found[reference].probabilities(models_dir, dataset, "test", ids)
        for name, c in found.items():
            if name == reference or dataset not in c.by_dataset:
                continue
            d = paired_auc_difference(y, c.probabilities(models_dir, dataset, "test", ids), p_ref,
                                      n_resamples=n_resamples, seed=seed)
            rows.append({"test set": dataset, "minus": name, "AUC difference": d["difference"],
                         "95% CI low": d["ci95"][0], "95% CI high": d["ci95"][1],
                         "P(not better)": d["p_b_not_better"], "n": int(len(y))})
    return pd.DataFrame(rows)


def per_diagnosis(found: Mapping[str, Candidate], table: pd.DataFrame, dataset: str,
                  models_dir: Path) -> pd.DataFrame:
    """On a test split with diagnoses (HAM10000): per diagnosis and candidate, the share
    of images called malignant at the candidate's threshold, with its 95% Wilson
    interval: the sensitivity for a malignant diagnosis, the false-alarm rate for a
    benign one."""
    rows = []
    for name, c in found.items():
        if dataset not in c.by_dataset:
            continue
        called = c.probabilities(models_dir, dataset, "test", table["image_id"]) >= c.threshold
        for dx in DX_CLASSES:
            at = (table["dx"] == dx).to_numpy()
            if not at.any():
                continue
            k, n = int(called[at].sum()), int(at.sum())
            lo, hi = proportion_ci(k, n)
            rows.append({"model": name, "diagnosis": dx, "malignant": dx in MALIGNANT_DX, "n": n,
                         "called malignant": k, "rate": k / n, "95% CI low": lo, "95% CI high": hi,
                         "reads as": "sensitivity" if dx in MALIGNANT_DX else "false-alarm rate"})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- readings
# Plain-language readings of notebook 7's tables, written from the numbers: a reader
# sees what each table says, and the words change when the numbers do.

def paired_sentences(paired: pd.DataFrame, reference: str) -> list[str]:
    """Per test set: which models ``reference`` clearly beats (paired 95% CI above zero),
    which it cannot be told from, and which clearly beat it."""
    lines = []
    for dataset, part in paired.groupby("test set", sort=False):
        above = part[part["95% CI low"] > 0]["minus"].tolist()
        below = part[part["95% CI high"] < 0]["minus"].tolist()
        unclear = part[(part["95% CI low"] <= 0) & (part["95% CI high"] >= 0)]
        where = f"On the {dataset} test split (n = {int(part['n'].iloc[0])}), "
        words = [where + (f"{reference}'s AUC is higher than that of {_names(above)} (paired 95% CI above zero)"
                          if above else f"{reference} clearly beats no model")]
        if len(unclear):
            words.append("no different beyond noise from " + _names(
                [f"{r['minus']} ({r['AUC difference']:+.3f}, CI {r['95% CI low']:+.3f} to {r['95% CI high']:+.3f})"
                 for _, r in unclear.iterrows()]))
        if below:
            words.append(f"lower than {_names(below)}")
        lines.append("; ".join(words) + ".")
    return lines


def recipe_differences(models: Mapping[str, Any], reference: str) -> list[str]:
    """What, besides its training data, sets ``reference`` apart from each model recorded with
    a recipe of the same kind (the same fields): the fields whose values differ, e.g.
    "finetune_blocks 12 (vs 8)". A paired win is only the data's where this list is empty."""
    mine = (models.get(reference) or {}).get("recipe")
    if not mine:
        return []
    lines = []
    for name, m in models.items():
        theirs = m.get("recipe") if name != reference else None
        if not theirs or set(theirs) != set(mine):
            continue
        aug = "artefact_augmentation"
        toggled = bool(mine.get(aug)) != bool(theirs.get(aug))  # then on/off, last, rather than its settings
        fields = [f"{k} {mine[k]} (vs {theirs[k]})" for k in mine if mine[k] != theirs[k] and not (k == aug and toggled)]
        fields += [f"artefact augmentation {_on(mine[aug])} (vs {_on(theirs[aug])})"] if toggled else []
        if fields:
            lines.append(f"{reference} differs from {name} in its recipe too: {', '.join(fields)}.")
    return lines


def per_diagnosis_sentences(by_dx: pd.DataFrame, model: str) -> list[str]:
    """For ``model``: the malignant diagnosis it misses most and the benign diagnosis it
    most often calls malignant, each with n and its 95% Wilson interval."""
    mine = by_dx[by_dx["model"] == model] if len(by_dx) else by_dx
    if not len(mine):
        return []
    lines = []
    malignant, benign = mine[mine["malignant"]], mine[~mine["malignant"]]
    if len(malignant):
        r = malignant.loc[malignant["rate"].idxmin()]
        lines.append(f"{model} misses {r['diagnosis']} most: it calls {r['called malignant']} of {r['n']} "
                     f"malignant ({r['rate']:.0%}, 95% CI {r['95% CI low']:.0%}-{r['95% CI high']:.0%}).")
    if len(benign):
        r = benign.loc[benign["rate"].idxmax()]
        lines.append(f"Among benign diagnoses, {r['diagnosis']} raises most false alarms: {r['called malignant']} "
                     f"of {r['n']} called malignant ({r['rate']:.0%}, 95% CI {r['95% CI low']:.0%}-"
                     f"{r['95% CI high']:.0%}).")
    return lines


def threshold_sentences(travel: Mapping[str, Any], target_sensitivity: float) -> list[str]:
    """Across the models scored on an archive they were not trained on: how often their
    own validation threshold reaches the target sensitivity there, and what a threshold
    refitted on a few of that archive's labelled images does (the range over models of
    the mean sensitivity and of the share of samples that reach the target), without
    and, where notebook 7 measured it, with calibrate's margin."""
    if not travel:
        return []
    moved = [t["transferred"]["sensitivity"] for t in travel.values()]
    met = sum(m >= target_sensitivity for m in moved)
    lines = [f"Carried over unchanged, the validation threshold reaches sensitivity {target_sensitivity:.2f} for "
             f"{met} of {len(moved)} models on an archive they were not trained on (sensitivity {min(moved):.3f} to "
             f"{max(moved):.3f})."]

    def runs(kind: str, size: str) -> list[dict]:
        return [t[kind][size] for t in travel.values() if (t.get(kind, {}).get(size) or {}).get("sensitivity")]

    def span(values: list[float], fmt: str) -> str:
        return f"{min(values):{fmt}} to {max(values):{fmt}}"

    sizes = list(dict.fromkeys(size for t in travel.values() for size in t["refitted"]))
    shares, margin_shares = [], []
    for size in sizes:
        plain = runs("refitted", size)
        if not plain:
            continue
        share = [r["share_meeting_target"] for r in plain]
        shares += share
        lines.append(f"Refitted on {size} labelled images ({plain[0]['repeats']} samples per model): mean "
                     f"sensitivity {span([r['sensitivity']['mean'] for r in plain], '.3f')}; {span(share, '.0%')} "
                     f"of the samples reach {target_sensitivity:.2f}.")
        margin = runs("refitted_with_margin", size)
        if margin:
            confidence = next(t["margin_confidence"] for t in travel.values() if "margin_confidence" in t)
            margin_share = [r["share_meeting_target"] for r in margin]
            margin_shares += margin_share
            lines.append(f"With calibrate's margin ({confidence:.0%} confidence), refitted on {size} images: "
                         f"{span(margin_share, '.0%')} of the samples reach {target_sensitivity:.2f}, at mean "
                         f"specificity {span([r['specificity']['mean'] for r in margin], '.3f')} (without the margin "
                         f"{span([r['specificity']['mean'] for r in plain], '.3f')}).")
    if shares and max(shares) < 0.6:
        text = "A threshold fitted for exactly the target on so few images falls short about as often as not"
        lines.append(text + (f"; the margin raises the share that reach it to {span(margin_shares, '.0%')}, paid for "
                             "in specificity." if margin_shares else
                             ": a clinic should aim above its target, or label more images."))
    return lines


def _on(setting: Any) -> str:
    return "on" if setting else "off"


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
