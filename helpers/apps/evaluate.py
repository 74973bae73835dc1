"""`python -m helpers evaluate`: score a saved model on any folder of labelled images.

The threshold is the one chosen on the chain's validation split; nothing is
tuned on the folder being scored. Before scoring, every image is checked (by
file hash, then by perceptual hash for a resized, re-encoded or shifted copy of
the same photo, then by learned features for a second photo of the same lesion)
against the images the model was trained and validated on: a model scored on
its own training lesions looks better than it is, so an overlap is reported
loudly, and ``--exclude-training`` leaves those images out.

* a binary model is scored on benign/malignant labels (a folder per class, or
  a folder per HAM10000 diagnosis, where mel, bcc and akiec count as malignant):
  AUC with its bootstrap interval, and sensitivity, specificity, PPV, NPV,
  balanced accuracy and F1 at its threshold;
* a seven-class model is scored on the diagnoses (a folder per diagnosis, or
  HAM10000 with its metadata): balanced accuracy with its interval, per-class
  recall, and the malignant AUC of P(mel) + P(bcc) + P(akiec); on data with
  benign/malignant labels only, the malignant AUC alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import OutputDirs, output_dirs
from ..data.arrays import load_split_table
from ..data.checksums import file_sha256
from ..data.duplicates import (FEATURE_COSINE, FEATURE_FLOOR, FEATURE_MARGIN, FEATURE_MIN_IMAGES, FEATURE_NEIGHBOUR,
                               PHASH_THRESHOLD, compute_hashes, near_pairs, similar_pairs)
from ..data.labels import CLASS_NAMES, MALIGNANT_DX
from ..data.layouts import read_dataset
from ..data.splits import load_split
from ..evaluation.binary import binary_metrics, bootstrap_auc_ci
from ..evaluation.multiclass import multiclass_metrics
from ..models.features import lite0_features
from ..models.saved import Predictor, load_predictor

EXIT_OK, EXIT_ATTENTION, EXIT_ERROR = 0, 1, 2

# What each check beyond the file hash finds, as a warning says it ({where}: how many of which split).
LOOKALIKES = {
    "near": "are near-copies of the model's training/validation images (the same photo resized, re-encoded or "
            "shifted; perceptual hash: {where})",
    "similar": "look like another photo of a lesion in the model's training/validation images, or a re-cropped "
               "or re-coloured copy (learned features, right in 30 of 36 pairs judged by eye: {where})",
}


def _none_found(why: str | None = None) -> dict[str, Any]:
    """A check's result with nothing found: checked, or (with ``why``) not checked and why."""
    return {"checked": why is None, "n": 0, "by_split": {}, "paths": [], **({"why": why} if why else {})}


def training_split_file(predictor: Predictor, out: OutputDirs) -> Path | None:
    """The split file of the data the model was trained on (None for a model outside the chain)."""
    if not predictor.record:
        return None
    return out.split  # one split of both archives: the binary and the seven-class models' images


def training_overlap(table: pd.DataFrame, predictor: Predictor, out: OutputDirs, *,
                     features: bool = True) -> dict[str, Any]:
    """Which images of ``table`` are byte-identical to the model's training or
    validation images, by SHA-256 against the chain's saved split; which others are
    near-copies of them (``near_copies``); and which of the rest look like a second
    photo of a lesion the model was trained on (``second_photos``; not with
    ``features=False``)."""
    split_file = training_split_file(predictor, out)
    if split_file is None or not split_file.is_file():
        return {"checked": False, "why": "no training split recorded for this model: overlap not checked",
                "n": 0, "paths": []}
    split = load_split(split_file)
    seen = split.loc[split["split"].isin(["train", "val"])].groupby("sha256")["split"].first().to_dict()
    hashes = [file_sha256(p) for p in table["path"]]
    hits = [(p, seen[h]) for p, h in zip(table["path"], hashes) if h in seen]
    by_split = pd.Series([s for _, s in hits], dtype="str").value_counts().to_dict()
    exact = {p for p, _ in hits}
    rest = [p for p in table["path"] if p not in exact]
    report = {"checked": True, "split_file": split_file.name, "n": len(hits),
              "by_split": {k: int(v) for k, v in by_split.items()}, "paths": [p for p, _ in hits]}
    if not rest:
        return {**report, "near": _none_found(), "similar": _none_found()}
    try:
        training = training_images(out)
    except FileNotFoundError as exc:  # DataNotFoundError too
        why = (f"near-copies and second photos of training images not checked: the training images are not on "
               f"this machine ({str(exc).splitlines()[0]})")
        return {**report, "near": _none_found(why), "similar": _none_found(why)}
    near = near_copies(rest, training)
    if not features:
        return {**report, "near": near,
                "similar": _none_found("second photos of training lesions not checked (--no-feature-check)")}
    found = set(near["paths"])
    return {**report, "near": near, "similar": second_photos([p for p in rest if p not in found], training)}


def training_images(out: OutputDirs) -> pd.DataFrame:
    """The split's training and validation rows whose image files are on this machine
    (``$SKIN_DATA_DIR``, ``$SKIN_HAM10000_DIR``); FileNotFoundError when the data are not."""
    split = load_split_table(out=out)
    return split[split["split"].isin(["train", "val"]) & split["path"].map(lambda p: Path(p).is_file())]


def _matches(paths: list[str], training: pd.DataFrame, pairs: pd.DataFrame, closest: str,
             ascending: bool) -> dict[str, Any]:
    """Each of ``paths`` linked by ``pairs`` (rows i, j of ``paths`` followed by the training
    images) to a training image, with the split of its closest one by column ``closest``."""
    n = len(paths)
    pairs = pairs[(pairs["i"] < n) & (pairs["j"] >= n)]  # one of the folder's against one of training's
    nearest = pairs.sort_values(closest, ascending=ascending, kind="stable").drop_duplicates("i").sort_values("i")
    found = [(paths[i], training["split"].iloc[j - n]) for i, j in zip(nearest["i"], nearest["j"])]
    by_split = pd.Series([s for _, s in found], dtype="str").value_counts().to_dict()
    return {"checked": True, "n": len(found), "by_split": {k: int(v) for k, v in by_split.items()},
            "paths": [p for p, _ in found], "n_training_images": int(len(training))}


def near_copies(paths: list[str], training: pd.DataFrame) -> dict[str, Any]:
    """Which of ``paths`` are near-copies of the ``training`` images (``training_images``):
    the same photo resized, re-encoded, colour-corrected, flipped or shifted by a few
    pixels, which the file hash misses (the 1024-bit perceptual hash and threshold
    notebook 1 groups the split with, ``data.duplicates``)."""
    if not paths:
        return _none_found()
    pairs = near_pairs(compute_hashes(list(paths) + training["path"].tolist()))
    return {**_matches(paths, training, pairs, "distance", True), "threshold": PHASH_THRESHOLD}


def second_photos(paths: list[str], training: pd.DataFrame) -> dict[str, Any]:
    """Which of ``paths`` look like another photo of a lesion among the ``training``
    images, or a re-cropped or re-coloured copy that the perceptual hash misses: the
    pooled ImageNet features of Lite0 and the rule notebook 1 groups the split with
    (``data.duplicates.similar_pairs``: cosine >= 0.94, or >= 0.75 and standing out from
    both images' 10 nearest neighbours, the neighbours here taken among the folder and the
    training images). The rule was right in 30 of 36 such pairs judged by eye, so a link
    is a likely second photo, not a certain one."""
    if not paths:
        return _none_found()
    every = list(paths) + training["path"].tolist()
    try:
        features, bad = lite0_features(every)
    except (ImportError, FileNotFoundError) as exc:  # the offline ImageNet weights package is not installed
        return _none_found(f"second photos of training lesions not checked: no ImageNet Lite0 weights ({exc})")
    unread = {p for p, _ in bad}
    kept = [i for i, p in enumerate(every) if p not in unread]  # the rows of ``features``
    folder = [every[i] for i in kept if i < len(paths)]
    rows = training.iloc[[i - len(paths) for i in kept if i >= len(paths)]]
    found = _matches(folder, rows, similar_pairs(features), "cosine", False)
    return {**found, "rule": {"cosine": FEATURE_COSINE, "floor": FEATURE_FLOOR, "margin": FEATURE_MARGIN,
                              "neighbour": FEATURE_NEIGHBOUR, "min_images": FEATURE_MIN_IMAGES}}


def _class_counts(table: pd.DataFrame, predictor: Predictor) -> tuple[dict[str, int], list[str]]:
    """Images per class the model is scored on, and the classes with none."""
    if predictor.binary or table["dx"].isna().all():
        counts = {name: int((table["label"] == i).sum()) for i, name in enumerate(CLASS_NAMES)}
    else:
        counts = {c: int((table["dx"] == c).sum()) for c in predictor.class_names}
    return counts, [c for c, n in counts.items() if n == 0]


def evaluate_folder(ref: str | None, data_dir: str | os.PathLike, *, n_resamples: int = 1000, seed: int = 0,
                    exclude_training: bool = False, use_clinic: bool = True, feature_check: bool = True,
                    out: OutputDirs | None = None) -> dict[str, Any]:
    """Score a saved model on a labelled image folder (any layout the data layer reads).

    Returns the report ``format_evaluation`` prints: the metrics, the images
    skipped, the classes found (and missing), the overlap with the model's
    training and validation images, and ``warnings`` in plain words.
    """
    out = out or output_dirs()
    predictor = load_predictor(ref, out, use_clinic=use_clinic)
    read = read_dataset(data_dir)
    table = read.table
    warnings = []
    if predictor.clinic is not None:
        refitted_on = set(predictor.clinic.get("sha256", []))
        n_same = sum(file_sha256(p) in refitted_on for p in table["path"])
        if n_same:
            warnings.append(f"{n_same} image(s) are those the clinic threshold was refitted on: its sensitivity "
                            "and specificity here are optimistic. Score other images of the clinic.")
    overlap = training_overlap(table, predictor, out, features=feature_check)
    if overlap["n"]:
        where = ", ".join(f"{n} in {s}" for s, n in overlap["by_split"].items())
        if exclude_training:
            table = table[~table["path"].isin(overlap["paths"])]
            warnings.append(f"{overlap['n']} image(s) are the model's own training/validation images ({where}); "
                            "left out (--exclude-training)")
        else:
            warnings.append(f"{overlap['n']} of {len(table)} image(s) are the model's own training/validation "
                            f"images ({where}): these metrics are optimistic. Rerun with --exclude-training.")
    elif not overlap["checked"]:
        warnings.append(overlap["why"])
    for key, what in LOOKALIKES.items():
        found = overlap.get(key, {"n": 0})
        if found["n"]:
            where = ", ".join(f"{n} of {s}" for s, n in found["by_split"].items())
            what = f"{found['n']} more image(s) {what.format(where=where)}"
            if exclude_training:
                table = table[~table["path"].isin(found["paths"])]
                warnings.append(f"{what}; left out (--exclude-training)")
            else:
                warnings.append(f"{what}: these metrics are optimistic. Rerun with --exclude-training.")
    counts, missing = _class_counts(table, predictor)
    for key in ("missing_class_folders", "empty_class_folders"):
        for folder in read.notes.get(key, []):
            warnings.append(f"{key.replace('_', ' ')[:-1]}: {folder}")
    if missing:
        warnings.append(f"no image of class {', '.join(missing)}: the metrics that need it are undefined")
    P, bad = predictor.probabilities_of_files(table["path"].tolist())  # a batch at a time: any folder fits
    table = table[~table["path"].isin({p for p, _ in bad})]
    if not len(table):
        raise ValueError(f"No readable image in {data_dir} to score the model on.")
    skipped = [{"path": str(r.path), "reason": r.reason} for r in read.skipped.itertuples()]
    skipped += [{"path": str(path), "reason": reason} for path, reason in bad]
    report: dict[str, Any] = {"model": predictor.name, "model_file": str(predictor.path),
                              "data": str(Path(data_dir).resolve()),
                              "task": "binary" if predictor.binary else "multiclass",
                              "classes": counts, "missing_classes": missing,
                              "training_overlap": {**overlap, "paths": overlap["paths"][:20],  # the first 20
                                                   **{k: {**overlap[k], "paths": overlap[k]["paths"][:20]}
                                                      for k in LOOKALIKES if k in overlap}},
                              "excluded_training": bool(exclude_training)}
    y = table["label"].to_numpy(dtype=int)
    if predictor.binary:
        threshold, how = predictor.threshold
        p = P[:, 1]
        report.update(binary_metrics(y, p, threshold), threshold_source=how)
    else:
        idx = [predictor.class_names.index(c) for c in MALIGNANT_DX if c in predictor.class_names]
        p = P[:, idx].sum(axis=1)
        report["malignant_auc"] = binary_metrics(y, p, 0.5)["auc"]
        if table["dx"].notna().all() and set(table["dx"]) <= set(predictor.class_names):
            dx = table["dx"].map({c: i for i, c in enumerate(predictor.class_names)}).to_numpy(dtype=int)
            report["multiclass"] = multiclass_metrics(
                dx, P, predictor.class_names, n_resamples=n_resamples, seed=seed,
                malignant_classes=[c for c in MALIGNANT_DX if c in predictor.class_names])
            report["n"] = int(len(dx))
        else:
            report["n"] = int(len(y))
            warnings.append("the folder has no diagnosis labels: only the malignant AUC "
                            "(P(mel) + P(bcc) + P(akiec)) is scored")
    ci = bootstrap_auc_ci(y, p, n_resamples=n_resamples, seed=seed)
    report.update(auc_ci95=list(ci) if ci[0] is not None else None, skipped=skipped, n_skipped=len(skipped),
                  warnings=warnings)
    return report


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_evaluation(report: dict[str, Any]) -> str:
    """A short human-readable summary of ``evaluate_folder``'s report."""
    ci = report["auc_ci95"]
    lines = [f"model {report['model']} on {report['data']}",
             f"images: {report['n']} (" + ", ".join(f"{n} {c}" for c, n in report["classes"].items())
             + f"), skipped: {report['n_skipped']}"]
    if report["task"] == "binary":
        lines += [f"ROC AUC {_fmt(report['auc'])}" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""),
                  f"threshold {report['threshold']:.3f} ({report['threshold_source']})"]
        lines += [f"  {key:<18} {_fmt(report[key])}"
                  for key in ("sensitivity", "specificity", "ppv", "npv", "balanced_accuracy", "f1", "accuracy")]
    else:
        lines.append(f"malignant ROC AUC (P(mel) + P(bcc) + P(akiec)) {_fmt(report['malignant_auc'])}"
                     + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""))
        m = report.get("multiclass")
        if m:
            lo, hi = m["balanced_accuracy_ci95"] or (None, None)
            lines.append(f"balanced accuracy {m['balanced_accuracy']:.3f}"
                         + (f" (95% CI {lo:.3f}-{hi:.3f})" if lo is not None else ""))
            lines += [f"  recall {c:<6} {_fmt(v['recall'])} (n={v['support']})" for c, v in m["per_class"].items()]
    lines += [f"  skipped {item['path']}: {item['reason']}" for item in report["skipped"]]
    lines += [f"WARNING: {w}" for w in report["warnings"]]
    overlap = report["training_overlap"]
    # both checks need the training images: one note when neither could run
    notes = dict.fromkeys(overlap[k]["why"] for k in LOOKALIKES if overlap.get(k, {}).get("why"))
    lines += [f"note: {why}" for why in notes]
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """Score the model and print the report (or one JSON object). Exit code 0: scored;
    1: scored, but read the warnings (overlap with training, missing classes,
    skipped files); 2: nothing could be scored (no model, no data)."""
    try:
        report = evaluate_folder(args.model, args.data, n_resamples=args.resamples,
                                 exclude_training=args.exclude_training, use_clinic=args.threshold == "clinic",
                                 feature_check=not args.no_feature_check)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(report) if args.json else format_evaluation(report))
    for warning in report["warnings"]:
        print(f"evaluate: WARNING: {warning}", file=sys.stderr)
    return EXIT_ATTENTION if report["warnings"] or report["n_skipped"] else EXIT_OK
