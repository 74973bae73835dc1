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
