"""What the notebooks write into results.json, built the same way for every model.

* ``evaluate_and_record``: everything after training a binary model (save it,
  predict validation and test, choose the threshold on validation, metrics
  with CIs, ISIC-format predictions, the record);
* ``record_multiclass_model``: the same for a seven-class model;
* the chapter summaries: data (notebook 1), paired comparisons (3),
  explanations and artefacts (4), the seven-class chapter (5), the seed study (6).

Figures are not drawn here: the notebooks draw them with ``figures``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import results
from ..atomic import jsonable, write_json
from ..config import OutputDirs, output_dirs
from ..data.arrays import SplitArrays
from ..data.labels import CLASS_NAMES, DX_CLASSES, MALIGNANT_DX
from ..evaluation.binary import evaluate_binary, paired_auc_difference
from ..evaluation.isic_csv import read_isic_predictions, write_isic_predictions
from ..evaluation.multiclass import multiclass_metrics
from ..models.saved import save_model
from ..models.transfer import count_trainable
from ..training.fitting import FitResult, predict_proba


# ---------------------------------------------------------------------------
# Binary models (notebooks 2 and 3)
# ---------------------------------------------------------------------------

def evaluate_and_record(name: str, model, fit: FitResult, arrays: SplitArrays, *, backbone: str, weights: str,
                        target_sensitivity: float = 0.90, seed: int = 0, n_resamples: int = 1000,
                        extra: dict[str, Any] | None = None, out: OutputDirs | None = None
                        ) -> tuple[dict[str, Any], np.ndarray]:
    """Everything after training, identical for every binary model: save the model,
    predict validation and test, choose the threshold on validation for
    ``target_sensitivity`` and evaluate (``evaluation.evaluate_binary``), write
    the ISIC-format test predictions, and record it all in results.json (with
    the ``extra`` keys). Returns (record, test probabilities)."""
    out = out or output_dirs()
    model_file = save_model(model, out.models / f"{name}.keras")
    p_val, p_test = predict_proba(model, arrays.x["val"]), predict_proba(model, arrays.x["test"])
    report = evaluate_binary(arrays.y["val"], p_val, arrays.y["test"], p_test,
                             target_sensitivity=target_sensitivity, n_resamples=n_resamples, seed=seed)
    pred_path = write_isic_predictions(out.models / f"{name}_test_predictions.csv",
                                       arrays.tables["test"]["image_id"].tolist(),
                                       np.column_stack([1 - p_test, p_test]), list(CLASS_NAMES))
    extra = {"backbone": backbone, "weights": weights, "image_size": arrays.image_size,
             "train_seconds": round(fit.seconds, 1), "seconds_per_epoch": round(fit.seconds_per_epoch, 2),
             "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
             "trainable_params": count_trainable(model), "model_file": model_file.name,
             "seed_note": "single seed", **(extra or {})}
    record = {**extra, **report, "seed": seed, "predictions": pred_path.name}
    results.record_model(name, record, out.results)
    return record, p_test


def paired_auc_comparison(name: str, others: list[str], arrays: SplitArrays, *, seed: int = 0,
                          n_resamples: int = 1000, out: OutputDirs | None = None) -> pd.DataFrame:
    """Test AUC of ``name`` minus that of each model in ``others``, with paired bootstrap
    intervals, from the test predictions every model's notebook wrote. Recorded in
    results.json as ``models[name]["auc_vs"]``; returns one row per other model."""
    out = out or output_dirs()
    recorded = results.load_results(out.results).get("models", {})
    ids = arrays.tables["test"]["image_id"].tolist()

    def test_probabilities(model: str) -> np.ndarray:
        if model not in recorded:
            raise LookupError(f"{model} is not recorded in {out.results}: run the notebook that trains it first.")
        path = out.models / recorded[model]["predictions"]
        return read_isic_predictions(path, ids, CLASS_NAMES)[:, 1]

    p_name = test_probabilities(name)
    rows = {other: paired_auc_difference(arrays.y["test"], test_probabilities(other), p_name,
                                                    n_resamples=n_resamples, seed=seed) for other in others}
    results.update_results({"models": {name: {"auc_vs": rows}}}, out.results)
    return pd.DataFrame({other: {"AUC difference": r["difference"], "95% CI low": r["ci95"][0],
                                 "95% CI high": r["ci95"][1], "P(not better)": r["p_b_not_better"]}
                         for other, r in rows.items()}).T.rename_axis(f"{name} minus")


def record_data_summary(report: dict[str, Any], data_root: Path, out: OutputDirs | None = None) -> dict:
    """The headline numbers of the data report, into results.json under "data"."""
    out = out or output_dirs()
    dup = report["duplicates"]
    summary = {
        "name": Path(data_root).name,
        "layout": report["data"]["layout"],
        "images_found": report["data"]["found"],
        "images_read": report["data"]["read"],
        "images_skipped": report["data"]["skipped"],
        "images_used": sum(sum(c.values()) for c in report["split"]["counts"].values()),
        "duplicate_groups": dup["n_groups_with_several_images"],
        "exact_pairs": dup["n_exact_pairs"],
        "near_pairs": dup["n_near_pairs"],
        "test_duplicates_dropped": report["dropped_test_duplicates"]["count"],
        "split_counts": report["split"]["counts"],
        "source_per_class": report["source_per_class"],
    }
    results.update_results({"data": summary}, out.results)
    return summary


def record_seed_study(name: str, test_auc_by_seed: dict[int, float], out: OutputDirs | None = None) -> dict:
    """Mean and spread of one model's test AUC over several seeds, into results.json."""
    out = out or output_dirs()
    values = np.array(list(test_auc_by_seed.values()), dtype=float)
    study = {"model": name, "seeds": [int(s) for s in test_auc_by_seed], "test_auc": values.tolist(),
             "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
             "min": float(values.min()), "max": float(values.max())}
    results.update_results({"seed_study": study}, out.results)
    return study


# ---------------------------------------------------------------------------
# Seven-class models (notebook 5)
# ---------------------------------------------------------------------------

def record_multiclass_model(name: str, *, inputs: str, y: Mapping[str, np.ndarray], P: Mapping[str, np.ndarray],
                            image_ids: Sequence[str], n_resamples: int, seed: int,
                            out: OutputDirs | None = None, **describe) -> dict[str, Any]:
    """Metrics (with CIs) on validation and test of one seven-class model, its
    ISIC-format test predictions, and its record under ``results["multiclass"]``.

    ``y`` and ``P``: labels and (n, 7) probabilities by split ("val", "test");
    ``inputs``: "image", "image+metadata" or "metadata"; ``describe``: what
    else the record says about the model (file, size, loss, ...).
    """
    if inputs not in ("image", "image+metadata", "metadata"):
        raise ValueError(f"inputs must be image, image+metadata or metadata, not {inputs!r}")
    out = out or output_dirs()
    predictions = write_isic_predictions(out.models / f"{name}_test_predictions.csv", list(image_ids), P["test"],
                                         list(DX_CLASSES))

    def metrics(split: str) -> dict[str, Any]:
        return multiclass_metrics(y[split], P[split], DX_CLASSES, n_resamples=n_resamples, seed=seed,
                                  malignant_classes=MALIGNANT_DX)

    record = {"task": "multiclass", "inputs": inputs, "class_names": list(DX_CLASSES), **describe,
              "predictions": predictions.name, "seed": int(seed),
              "validation": metrics("val"), "test": metrics("test")}
    record_multiclass({name: record}, out.results)
    return record


def reset_multiclass(path: str | os.PathLike | None = None) -> None:
    """Drop this chapter's section, so nothing of an older run survives a new one."""
    p = results.results_path(path)
    saved = results.load_results(p)
    if "multiclass" in saved:
        del saved["multiclass"]
        write_json(p, saved)


def record_multiclass(entries: Mapping[str, Any], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Set ``results["multiclass"][key] = value`` for each entry, replacing (not merging)
    any older value; numpy values become JSON, NaN becomes null."""
    p = results.results_path(path)
    saved = results.load_results(p)
    section = saved.setdefault("multiclass", {})
    for key, value in entries.items():
        section[key] = jsonable(value)
    write_json(p, saved)
    return saved


# ---------------------------------------------------------------------------
# Explanations and artefacts (notebook 4)
# ---------------------------------------------------------------------------

def record_explanations(models: Mapping[str, Mapping[str, Any]], best_family: str, *, lime: Mapping[str, Any],
                        checks: Mapping[str, bool], focus: pd.DataFrame, errors: pd.DataFrame,
                        data_root: str | os.PathLike, out: OutputDirs | None = None) -> dict[str, Any]:
    """Notebook 4's explanations under ``results["explanations"]``: which models
    (chosen on validation), the LIME settings, the checks that ran, every
    explained image, how much of the maps fell on the lesion, and the best
    model's test errors. ``models``: family -> {name, explained, threshold}."""
    out = out or output_dirs()
    section = {
        "models": {f: m["name"] for f, m in models.items()},
        "best_on_validation": models[best_family]["name"],
        "lime": dict(lime),
        "checks": {k: bool(v) for k, v in checks.items()},
        "images": {m["name"]: [{"file": os.path.relpath(e.path, data_root), "reason": e.reason, "label": e.label,
                                "p_malignant": e.p_malignant, "predicted": int(e.p_malignant >= m["threshold"])}
                               for e in m["explained"]] for m in models.values()},
        "lesion_focus": {name: {"median_gradcam_on_lesion": float(part["gradcam_on_lesion"].median()),
                                "median_lime_on_lesion": float(part["lime_on_lesion"].median()),
                                "median_lesion_area": float(part["lesion_area"].median())}
                         for name, part in focus.groupby("model")},
        "test_errors": {"model": models[best_family]["name"], "missed_malignant": int((errors["label"] == 1).sum()),
                        "false_alarms": int((errors["label"] == 0).sum())},
    }
    results.update_results({"explanations": jsonable(section)}, out.results)
    return section


_EFFECT_KEYS = ("auc_with", "auc_with_ci95", "auc_without", "auc_without_ci95", "mean_dp", "mean_abs_dp",
                "control_mean_abs_dp", "flips", "auc_all_before", "auc_all_after")


def record_artefacts(*, n_images: int, image_size: int, sample: str, agreement: pd.DataFrame | None,
                     rates: pd.DataFrame, effects: pd.DataFrame, summary: Sequence[str],
                     out: OutputDirs | None = None) -> dict[str, Any]:
    """Notebook 4's artefact study under ``results["artefacts"]``: detector
    agreement with the tags by eye, how often each artefact is on each class,
    and per model the AUC with and without it and what removing it did."""
    out = out or output_dirs()
    section: dict[str, Any] = {"n_images": int(n_images), "image_size": int(image_size), "sample": sample}
    if agreement is not None:
        section["detector_vs_eye"] = {a: {"n": int(r["n"]), "agreement": float(r["agreement"]),
                                          "kappa": None if pd.isna(r["kappa"]) else float(r["kappa"])}
                                      for a, r in agreement.iterrows()}
    for artefact in rates.index:
        block = {"rate_benign": float(rates.loc[artefact, "benign"]),
                 "rate_malignant": float(rates.loc[artefact, "malignant"])}
        for r in effects[effects["artefact"] == artefact].to_dict("records"):
            block["n_with"] = r["n_with"]
            for key in _EFFECT_KEYS:
                value = r[key]
                missing = value is None or (np.isscalar(value) and pd.isna(value))
                block[f"{r['model']}_{key}"] = None if missing else value
        section[artefact] = block
    section["summary"] = list(summary)
    results.update_results({"artefacts": jsonable(section)}, out.results)
    return section
