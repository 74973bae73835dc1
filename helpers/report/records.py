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
from ..evaluation.binary import (binary_metrics, bootstrap_auc_ci, choose_threshold, evaluate_binary,
                                 paired_auc_difference)
from ..evaluation.isic_csv import read_isic_predictions, write_isic_predictions
from ..evaluation.multiclass import multiclass_metrics
from ..models.saved import save_model
from ..models.transfer import count_trainable
from ..training.fitting import FitResult, predict_proba
from ..training.recipes import score_alone


# ---------------------------------------------------------------------------
# Binary models (notebooks 2 and 3)
# ---------------------------------------------------------------------------

def evaluate_and_record(name: str, model, fit: FitResult, split: SplitArrays, *, backbone: str, weights: str,
                        others: Mapping[str, SplitArrays] | None = None, pooled_threshold: bool = False,
                        target_sensitivity: float = 0.90, seed: int = 0, n_resamples: int = 1000,
                        extra: dict[str, Any] | None = None, out: OutputDirs | None = None
                        ) -> tuple[dict[str, Any], np.ndarray]:
    """Everything after training, identical for every binary model: save the model,
    predict validation and test, choose the threshold on validation for
    ``target_sensitivity`` and evaluate (``evaluation.evaluate_binary``), write
    the ISIC-format test predictions, and record it all in results.json (with
    the ``extra`` keys; ``trained_on`` defaults to ``split``'s data set). Returns
    (record, test probabilities of ``split``).

    ``split`` is the binary data set's split (its test split is the record's
    ``test``). ``others``: further data sets (e.g. HAM10000 as benign/malignant),
    scored at the same threshold, each under ``by_dataset`` with its own
    predictions file; ``selection_auc``, the validation AUC averaged over the
    data sets, is what the best model is chosen on. ``pooled_threshold``: choose
    the threshold on all the validation splits together (for a model trained on
    all of them), else on ``split``'s alone.
    """
    out = out or output_dirs()
    model_file = save_model(model, out.models / f"{name}.keras")
    sets = {_dataset_name(split): split, **{_dataset_name(a): a for a in (others or {}).values()}}
    probs = {d: {s: predict_proba(model, a.x[s]) for s in ("val", "test")} for d, a in sets.items()}
    primary = _dataset_name(split)
    y_val, p_val = split.y["val"], probs[primary]["val"]
    if pooled_threshold:
        y_val = np.concatenate([a.y["val"] for a in sets.values()])
        p_val = np.concatenate([probs[d]["val"] for d in sets])
    report = evaluate_binary(y_val, p_val, split.y["test"], probs[primary]["test"],
                             target_sensitivity=target_sensitivity, n_resamples=n_resamples, seed=seed)
    threshold = report["threshold"]
    by_dataset = {}
    for d, a in sets.items():
        files = {s: _write_binary_predictions(out, name, d, s, a, probs[d][s], primary=d == primary)
                 for s in ("val", "test")}
        by_dataset[d] = {"validation": _metrics_with_ci(a.y["val"], probs[d]["val"], threshold, n_resamples, seed),
                         "test": _metrics_with_ci(a.y["test"], probs[d]["test"], threshold, n_resamples, seed),
                         "predictions": files["test"], "val_predictions": files["val"]}
    val_aucs = [m["validation"]["auc"] for m in by_dataset.values() if m["validation"]["auc"] is not None]
    extra = {"backbone": backbone, "weights": weights, "image_size": split.image_size,
             "train_seconds": round(fit.seconds, 1), "seconds_per_epoch": round(fit.seconds_per_epoch, 2),
             "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
             "trainable_params": count_trainable(model), "model_file": model_file.name,
             "trained_on": [primary], "seed_note": "single seed", **(extra or {})}
    record = {**extra, **report, "seed": seed, "predictions": by_dataset[primary]["predictions"],
              "threshold_chosen_on": ("validation of " + " and ".join(sets)) if pooled_threshold
              else f"validation of {primary}"}
    if len(sets) > 1:
        record["by_dataset"] = by_dataset
        record["selection_auc"] = float(np.mean(val_aucs)) if val_aucs else None
    results.record_model(name, record, out.results)
    return record, probs[primary]["test"]


def record_members(name: str, members: Sequence, seeds: Sequence[int], split: SplitArrays, *,
                   others: Mapping[str, SplitArrays] | None = None, out: OutputDirs | None = None) -> pd.DataFrame:
    """Each member of an ensemble (``models.ensemble``) scored alone: its validation and
    test AUC on every data set, recorded under ``models[name]["members"]``. Their
    spread is what one seed of the recipe gives; the ensemble is their mean logit."""
    out = out or output_dirs()
    sets = {_dataset_name(split): split, **{_dataset_name(a): a for a in (others or {}).values()}}
    primary = _dataset_name(split)
    rows = [score_alone(model, seed, sets, primary) for model, seed in zip(members, seeds, strict=True)]
    results.update_results({"models": {name: {"members": rows}}}, out.results)
    return pd.DataFrame([{"seed": r["seed"], **{f"{d} {k.replace('_', ' ')}": v for d, m in r["by_dataset"].items()
                                                for k, v in m.items()}} for r in rows]).set_index("seed")


def _write_binary_predictions(out: OutputDirs, name: str, dataset: str, part: str, split: SplitArrays,
                              p: np.ndarray, primary: bool = False) -> str:
    """ISIC-format predictions of one model on one split of one data set; returns the file name
    (``<name>_test_predictions.csv`` for the binary data set's test split, as always)."""
    file = f"{name}_test_predictions.csv" if primary and part == "test" else f"{name}_{dataset}_{part}_predictions.csv"
    write_isic_predictions(out.models / file, split.tables[part]["image_id"].tolist(), np.column_stack([1 - p, p]),
                           list(CLASS_NAMES))
    return file


def _dataset_name(split: SplitArrays) -> str:
    names = split.tables["test"]["dataset"].unique()
    if len(names) != 1:
        raise ValueError(f"a split of one data set was expected, its test split holds {list(names)}")
    return str(names[0])


def _metrics_with_ci(y, p, threshold: float, n_resamples: int, seed: int) -> dict[str, Any]:
    """``binary_metrics`` at ``threshold`` with the bootstrap interval of the AUC."""
    lo, hi = bootstrap_auc_ci(y, p, n_resamples=n_resamples, seed=seed)
    return {**binary_metrics(y, p, threshold), "auc_ci95": [lo, hi] if lo is not None else None}


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


def record_mitigation(name: str, baseline: str, others: Mapping[str, SplitArrays], *, seed: int = 0,
                      n_resamples: int = 1000, out: OutputDirs | None = None) -> dict[str, Any]:
    """Does ``name`` (a mitigation) beat ``baseline`` on the data sets neither was
    trained on? Judged on their *validation* splits by the paired bootstrap of the
    AUC difference (test splits reported beside it, never used to decide):
    ``helps`` when the 95% interval is above zero, ``hurts`` when below, else
    ``no clear difference``; kept unless it hurts. Recorded as ``models[name]["mitigation"]``."""
    out = out or output_dirs()
    recorded = results.load_results(out.results).get("models", {})
    for model in (name, baseline):
        if "by_dataset" not in recorded.get(model, {}):
            raise LookupError(f"{model} has no per-data-set predictions in {out.results}: run notebook 3 first.")
    verdicts, lines = {}, []
    for other in others.values():
        d = _dataset_name(other)
        row = {}
        for part, key in (("val", "val_predictions"), ("test", "predictions")):
            ids = other.tables[part]["image_id"].tolist()
            p = [read_isic_predictions(out.models / recorded[m]["by_dataset"][d][key], ids, CLASS_NAMES)[:, 1]
                 for m in (baseline, name)]
            diff = paired_auc_difference(other.y[part], p[0], p[1], n_resamples=n_resamples, seed=seed)
            diff["method"] = diff["method"].replace("test images", f"{d} {'validation' if part == 'val' else 'test'} "
                                                    "images")
            row["validation" if part == "val" else "test"] = diff
        lo, hi = row["validation"]["ci95"]
        row["verdict"] = ("not judged" if lo is None else "helps" if lo > 0 else "hurts" if hi < 0
                          else "no clear difference")
        verdicts[d] = row
        v, t = row["validation"], row["test"]
        lines.append(f"{name} minus {baseline} on {d} (trained on neither): validation AUC "
                     f"{v['difference']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] "
                     f"(n={len(other.y['val'])}) -> {row['verdict']}; test AUC {t['difference']:+.3f} "
                     f"[{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}] (n={len(other.y['test'])}, reported only).")
    section = {"baseline": baseline, "by_dataset": verdicts,
               # It targets a shortcut, which notebook 4 measures by pasting artefacts on; AUC on
               # one more archive can show what it costs, rarely that it helps (n ~ 1000 lesions).
               "kept": bool(verdicts) and all(v["verdict"] in ("helps", "no clear difference")
                                               for v in verdicts.values()),
               "rule": "kept (and used for the model trained on both archives) unless the paired 95% CI "
                       "of the validation AUC difference on a data set it was not trained on lies below "
                       "zero",
               "sentence": " ".join(lines) if lines else f"no other data set: {name} not judged against {baseline}."}
    results.update_results({"models": {name: {"mitigation": jsonable(section)}}}, out.results)
    return section


def record_data_summary(report: dict[str, Any], data_root: Path, out: OutputDirs | None = None) -> dict:
    """The headline numbers of the data report, into results.json under "data".

    ``data_root``: the binary data set, whose split is the one every binary
    model is judged on (``split_counts``); with several data sets their
    counts are under ``split_counts_by_dataset`` and what each grouping rule
    added under ``grouping``.
    """
    out = out or output_dirs()
    dup = report["duplicates"]
    name = Path(data_root).name
    by_dataset = report["split"].get("counts_by_dataset")
    counts = by_dataset[name] if by_dataset else report["split"]["counts"]
    summary = {
        "name": name,
        "layout": report["data"]["layout"],
        "images_found": report["data"]["found"],
        "images_read": report["data"]["read"],
        "images_skipped": report["data"]["skipped"],
        "images_used": sum(sum(c.values()) for c in counts.values()),
        "duplicate_groups": dup["n_groups_with_several_images"],
        "exact_pairs": dup["n_exact_pairs"],
        "near_pairs": dup["n_near_pairs"],
        "test_duplicates_dropped": report["dropped_test_duplicates"]["count"],
        "split_counts": counts,
        "source_per_class": report["source_per_class"],
        **({"split_counts_by_dataset": by_dataset} if by_dataset else {}),
        **({"grouping": report["grouping"]["rules"]} if "grouping" in report else {}),
    }
    results.update_results({"data": summary}, out.results)
    return summary


def spread(values) -> dict[str, float]:
    """Mean, standard deviation (n - 1; 0 for one value) and range of one metric over runs."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max())}


def seed_summary(test_auc_by_seed: Mapping[int, float]) -> dict[str, Any]:
    """Seeds, test AUCs, mean, standard deviation (n - 1; 0 for one seed) and range."""
    values = [float(v) for v in test_auc_by_seed.values()]
    return {"seeds": [int(s) for s in test_auc_by_seed], "test_auc": values, **spread(values)}


def record_seed_studies(test_auc_by_model: Mapping[str, Mapping[int, float]],
                        out: OutputDirs | None = None) -> dict[str, dict[str, Any]]:
    """Each model's test AUC over several seeds, into results.json under ``seed_study``
    (replaced whole: a model left out of this study keeps no spread from an older one)."""
    out = out or output_dirs()
    studies = {name: seed_summary(aucs) for name, aucs in test_auc_by_model.items()}
    results.replace_section("seed_study", studies, out.results)
    return studies


def record_copy_study(name: str, copies: Sequence[Mapping[str, Any]], served: int,
                      out: OutputDirs | None = None) -> dict[str, Any]:
    """An ensemble's seed spread one copy at a time (``training.recipes.copy_seed_study``)
    under ``seed_study[name]``, marked ``"unit": "copy"`` with the number of copies the
    served model averages, so no reader takes it for the ensemble's spread; per data set
    too. Call it after ``record_seed_studies``, which replaces the section."""
    out = out or output_dirs()
    study = {**seed_summary({c["seed"]: c["test_auc"] for c in copies}), "unit": "copy", "served_copies": int(served),
             "by_dataset": {d: {"test_auc": [float(c["by_dataset"][d]["test_auc"]) for c in copies],
                                **spread([c["by_dataset"][d]["test_auc"] for c in copies])}
                            for d in copies[0]["by_dataset"]}}
    results.update_results({"seed_study": {name: study}}, out.results)
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


def record_malignant_view(name: str, own: SplitArrays, P_own: Mapping[str, np.ndarray], other: SplitArrays,
                          P_other: Mapping[str, np.ndarray], class_names: Sequence[str], *,
                          target_sensitivity: float = 0.90, n_resamples: int = 1000, seed: int = 0,
                          out: OutputDirs | None = None) -> dict[str, Any]:
    """A seven-class model read as benign/malignant: P(mel) + P(bcc) + P(akiec).

    The threshold is chosen on its own validation split (``own``, benign/malignant
    from the diagnoses) for ``target_sensitivity``; the model is then scored at it
    on its own test split and on ``other``'s validation and test splits (another
    archive). Recorded as ``results["multiclass"][name]["malignant_view"]`` with
    the predictions on ``other``'s test split; returns the view.
    """
    out = out or output_dirs()
    idx = [list(class_names).index(c) for c in MALIGNANT_DX]
    mal = {k: {s: np.asarray(P[s])[:, idx].sum(axis=1) for s in ("val", "test")}
           for k, P in (("own", P_own), ("other", P_other))}
    y_own = {s: own.tables[s]["label"].to_numpy(dtype=int) for s in ("val", "test")}
    threshold = choose_threshold(y_own["val"], mal["own"]["val"], target_sensitivity)
    sets = {_dataset_name(own): (own, y_own, mal["own"]),
            _dataset_name(other): (other, {s: other.y[s] for s in ("val", "test")}, mal["other"])}
    by_dataset = {}
    for d, (split, y, p) in sets.items():
        by_dataset[d] = {s_out: _metrics_with_ci(y[s], p[s], threshold, n_resamples, seed)
                         for s, s_out in (("val", "validation"), ("test", "test"))}
        by_dataset[d].update(predictions=_write_binary_predictions(out, f"{name}_malignant", d, "test", split, p["test"]),
                             val_predictions=_write_binary_predictions(out, f"{name}_malignant", d, "val", split,
                                                                       p["val"]))
    view = {"score": "P(" + ") + P(".join(MALIGNANT_DX) + ")", "threshold": float(threshold),
            "target_sensitivity": float(target_sensitivity), "threshold_chosen_on": f"validation of {_dataset_name(own)}",
            "trained_on": [_dataset_name(own)], "by_dataset": by_dataset}
    saved = results.load_results(out.results)
    saved.setdefault("multiclass", {}).setdefault(name, {})["malignant_view"] = jsonable(view)
    write_json(out.results, saved)
    return view


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


def record_cross_dataset(section: Mapping[str, Any], out: OutputDirs | None = None) -> dict[str, Any]:
    """Notebook 7's results at another clinic, under ``results["cross_dataset"]`` (replaced whole)."""
    out = out or output_dirs()
    saved = results.load_results(out.results)
    saved["cross_dataset"] = jsonable(dict(section))
    write_json(out.results, saved)
    return saved["cross_dataset"]


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
                     pasted: pd.DataFrame | None = None,
                     out: OutputDirs | None = None) -> dict[str, Any]:
    """Notebook 4's artefact study under ``results["artefacts"]``: detector
    precision and recall against the labels by eye on training images, how often
    each artefact is on each class, per model the AUC with and without it and
    what removing it did, and (``pasted``) what pasting it onto benign images did."""
    out = out or output_dirs()
    section: dict[str, Any] = {"n_images": int(n_images), "image_size": int(image_size), "sample": sample}
    if agreement is not None:
        section["detector_vs_eye"] = {
            a: {"n": int(r["n"]), "by_eye": int(r["by_eye"]), "detected": int(r["detected"]), "both": int(r["both"]),
                "agreement": float(r["agreement"]), "kappa": None if pd.isna(r["kappa"]) else float(r["kappa"]),
                "precision": None if pd.isna(r["precision"]) else float(r["precision"]),
                "precision_ci95": r["precision_ci95"],
                "recall": None if pd.isna(r["recall"]) else float(r["recall"]), "recall_ci95": r["recall_ci95"]}
            for a, r in agreement.iterrows()}
        section["detector_vs_eye_on"] = "tests/fixtures/artefact_labels_training.csv (training images)"
    if pasted is not None:
        section["pasted_on_benign"] = pasted.to_dict("records")
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
