"""Evaluation of the lesion classifiers: metrics, confidence intervals, calibration.

Pure numpy / scikit-learn / scipy (no TensorFlow), so it can be tested and used
without a model. Conventions used throughout:

* binary labels are 0 = benign, 1 = malignant; ``p`` is the malignant probability;
* an image is called malignant when ``p >= threshold`` (ties go to malignant);
* a metric that is undefined on the data at hand (PPV with no positive calls,
  AUC with one class, ...) is ``None``, never NaN, because results.json is
  written with ``allow_nan=False``;
* every number returned is a plain Python ``int``/``float`` so the reports can
  be written as JSON directly.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from .atomic import atomic_path

# Published reader-study operating points (dermoscopy, melanoma vs benign lesions).
DERMATOLOGIST_NOTE = (
    "Published dermatologist operating points from reader studies on their own image sets "
    "(melanoma vs. benign lesions). They are shown for orientation only: different images, "
    "different task definition and case mix, so they are not a head-to-head comparison."
)
DERMATOLOGIST_POINTS: list[dict[str, Any]] = [
    {
        "label": "Haenssle et al. 2018 (58 dermatologists)",
        "sensitivity": 0.866,
        "specificity": 0.713,
        "source": "Haenssle HA et al. Man against machine: diagnostic performance of a deep "
                  "learning convolutional neural network for dermoscopic melanoma recognition in "
                  "comparison to 58 dermatologists. Ann Oncol 2018;29(8):1836-1842 (level I).",
    },
    {
        "label": "Brinker et al. 2019 (157 dermatologists)",
        "sensitivity": 0.741,
        "specificity": 0.600,
        "source": "Brinker TJ et al. Deep learning outperformed 136 of 157 dermatologists in a "
                  "head-to-head dermoscopic melanoma image classification task. "
                  "Eur J Cancer 2019;113:47-54.",
    },
    {
        "label": "Marchetti et al. 2018 (8 dermatologists)",
        "sensitivity": 0.82,
        "specificity": 0.59,
        "source": "Marchetti MA et al. Results of the 2016 ISIC ISBI challenge: comparison of the "
                  "accuracy of computer algorithms to dermatologists for the diagnosis of melanoma "
                  "from dermoscopic images. J Am Acad Dermatol 2018;78(2):270-277.",
    },
]

# HAM10000 diagnoses usually grouped as malignant (akiec: actinic keratosis /
# intraepithelial carcinoma, counted as (pre)malignant).
HAM10000_MALIGNANT = ("mel", "bcc", "akiec")

# Probabilities are clipped this far from 0 and 1 before taking logits / logs.
_EPS = 1e-7
# Bootstrap work is done in chunks of at most this many (resample, item) cells.
_CHUNK_CELLS = 4_000_000
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


# ---------------------------------------------------------------- helpers


def _ratio(num: float, den: float) -> float | None:
    """num / den as a float, or None when the denominator is zero."""
    return float(num) / float(den) if den else None


def _as_binary(y, p) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert labels (0/1) and scores (finite) to numpy arrays."""
    y = np.asarray(y).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {p.shape[0]}")
    if y.size == 0:
        raise ValueError("no samples")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(y)[:10].tolist()}")
    if not np.isfinite(p).all():
        raise ValueError("scores contain NaN or infinity")
    return y.astype(np.int64), p


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def _bootstrap_counts(n: int, n_resamples: int, rng: np.random.Generator):
    """Yield (chunk, n) matrices: how often each item is drawn in each resample.

    Counts instead of index lists let every statistic below be a weighted sum,
    which vectorises over resamples.
    """
    per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_resamples:
        b = min(per_chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n)
        done += b


def _weighted_auc(y: np.ndarray, p: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``counts`` (item multiplicities), ties counted 1/2.

    Mann-Whitney form: items are sorted once and tied scores grouped; for every
    resample AUC = sum_g Pos_g * (Neg_below_g + Neg_g / 2) / (Pos * Neg).
    Rows with a single class give NaN (the caller skips them).
    """
    order = np.argsort(p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    starts = np.flatnonzero(np.r_[True, np.diff(p_sorted) != 0])
    c = counts[:, order].astype(np.float64)
    pos = np.add.reduceat(c * y_sorted, starts, axis=1)
    neg = np.add.reduceat(c * (1 - y_sorted), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)


def _percentile_interval(values: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    if values.size == 0:
        return None, None
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


# ---------------------------------------------------------------- binary metrics


def choose_threshold(y_val, p_val, target_sensitivity: float = 0.90) -> float:
    """Highest threshold whose validation sensitivity is at least ``target_sensitivity``.

    Specificity can only fall as the threshold falls, so this is the operating
    point with the best validation specificity that still meets the screening
    target. With ``k = ceil(target * n_pos)`` positives that must be caught, the
    answer is the k-th largest positive score: any higher threshold catches
    fewer than k. Ties: images with equal scores always fall on the same side
    (``p >= t`` is malignant), so when positives tie at the threshold the
    achieved sensitivity can exceed the target; negatives tied with that score
    are called malignant too. Only validation data goes in: never pass test data.
    """
    y, p = _as_binary(y_val, p_val)
    if not 0 < target_sensitivity <= 1:
        raise ValueError("target_sensitivity must be in (0, 1]")
    pos_scores = np.sort(p[y == 1])[::-1]
    if pos_scores.size == 0:
        raise ValueError("validation set has no positive (malignant) images")
    # The small tolerance stops 0.7 * 10 = 7.000000000000001 from demanding 8 of 10.
    k = max(1, math.ceil(target_sensitivity * pos_scores.size - 1e-9))
    return float(pos_scores[k - 1])


def _confusion(y: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    return {
        "tn": int(((y == 0) & (pred == 0)).sum()),
        "fp": int(((y == 0) & (pred == 1)).sum()),
        "fn": int(((y == 1) & (pred == 0)).sum()),
        "tp": int(((y == 1) & (pred == 1)).sum()),
    }


def binary_metrics(y_true, p, threshold: float) -> dict[str, Any]:
    """Threshold and ranking metrics of one binary prediction.

    Returns n, n_pos, n_neg, threshold, accuracy, auc, average_precision,
    sensitivity, specificity, ppv, npv, balanced_accuracy, f1,
    confusion {tn, fp, fn, tp} (counts) and confusion_normalized (each true-class
    row divided by its size). Undefined values are None: sensitivity/auc/AP with
    no positives, specificity/auc with no negatives, ppv with no positive calls,
    npv with no negative calls, f1 when there are neither positives nor
    positive calls, a confusion row with no members.
    """
    y, p = _as_binary(y_true, p)
    pred = (p >= threshold).astype(np.int64)
    cm = _confusion(y, pred)
    tn, fp, fn, tp = cm["tn"], cm["fp"], cm["fn"], cm["tp"]
    n_pos, n_neg = tp + fn, tn + fp
    sens, spec = _ratio(tp, n_pos), _ratio(tn, n_neg)
    two_classes = _both_classes(y)
    return {
        "n": int(y.size),
        "n_pos": n_pos,
        "n_neg": n_neg,
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, y.size),
        "auc": float(roc_auc_score(y, p)) if two_classes else None,
        "average_precision": float(average_precision_score(y, p)) if n_pos else None,
        "sensitivity": sens,
        "specificity": spec,
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "balanced_accuracy": (sens + spec) / 2 if sens is not None and spec is not None else None,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "confusion": cm,
        "confusion_normalized": {
            "tn": _ratio(tn, n_neg), "fp": _ratio(fp, n_neg),
            "fn": _ratio(fn, n_pos), "tp": _ratio(tp, n_pos),
        },
    }


def bootstrap_auc_distribution(y, p, n_resamples: int = 1000, seed: int = 0) -> tuple[np.ndarray, int]:
    """AUCs of ``n_resamples`` bootstrap resamples of the images, and how many were skipped.

    Images are drawn with replacement (seeded); a resample holding a single
    class has no AUC and is skipped and counted.
    """
    y, p = _as_binary(y, p)
    rng = np.random.default_rng(seed)
    aucs = np.concatenate([_weighted_auc(y, p, c) for c in _bootstrap_counts(y.size, n_resamples, rng)])
    valid = np.isfinite(aucs)
    return aucs[valid], int((~valid).sum())


def bootstrap_auc_ci(y, p, n_resamples: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Percentile bootstrap (1 - alpha) interval of the ROC AUC: ``(lo, hi)``.

    ``(None, None)`` when the data have a single class or every resample did.
    Use :func:`bootstrap_auc_distribution` to see how many resamples were skipped.
    """
    y, p = _as_binary(y, p)
    if not _both_classes(y):
        return None, None
    aucs, _ = bootstrap_auc_distribution(y, p, n_resamples, seed)
    return _percentile_interval(aucs, alpha)


def paired_auc_difference(y, p_a, p_b, n_resamples: int = 1000, seed: int = 0,
                          alpha: float = 0.05) -> dict[str, Any]:
    """Test AUC of model B minus model A, with a paired percentile bootstrap interval.

    Both models are scored on the *same* resamples of the images, so the interval
    is that of the difference: two models whose own intervals overlap can still
    differ clearly. ``p_b_not_better``: fraction of resamples in which B did not
    beat A (a one-sided bootstrap p-value).
    """
    y, p_a = _as_binary(y, p_a)
    _, p_b = _as_binary(y, p_b)
    if not _both_classes(y):
        raise ValueError("an AUC difference needs both classes in y")
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([_weighted_auc(y, p_b, c) - _weighted_auc(y, p_a, c)
                            for c in _bootstrap_counts(y.size, n_resamples, rng)])
    valid = np.isfinite(diffs)
    point = float(roc_auc_score(y, p_b) - roc_auc_score(y, p_a))
    lo, hi = _percentile_interval(diffs[valid], alpha)
    return {"difference": point, "ci95": [lo, hi], "p_b_not_better": float(np.mean(diffs[valid] <= 0)),
            "n_resamples": int(n_resamples), "skipped": int((~valid).sum()), "seed": int(seed),
            "method": "paired percentile bootstrap over test images (same resamples for both models)"}


def specificity_at_sensitivity(y, p, sensitivity: float) -> float | None:
    """Best specificity among ROC points whose sensitivity (TPR) is >= ``sensitivity``.

    None when the data have a single class (no ROC curve).
    """
    y, p = _as_binary(y, p)
    if not _both_classes(y):
        return None
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    ok = tpr >= sensitivity - 1e-12
    return float(np.max(1.0 - fpr[ok]))


# ---------------------------------------------------------------- calibration


def _nll(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy, with p clipped away from 0 and 1."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def calibration_metrics(y, p, n_bins: int = 10) -> dict[str, Any]:
    """Brier score, expected calibration error and the reliability-diagram bins.

    ECE uses ``n_bins`` equal-width bins on [0, 1] (the last one closed):
    sum over bins of (bin count / n) * |mean predicted p - fraction malignant|.
    Every bin is listed; an empty bin has count 0 and mean_pred/frac_pos None.
    Also returns the mean negative log-likelihood (nll) that temperature
    scaling minimises.
    """
    y, p = _as_binary(y, p)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        in_bin = which == b
        count = int(in_bin.sum())
        mean_pred = float(p[in_bin].mean()) if count else None
        frac_pos = float(y[in_bin].mean()) if count else None
        if count:
            ece += count / y.size * abs(mean_pred - frac_pos)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count,
                     "mean_pred": mean_pred, "frac_pos": frac_pos})
    return {"brier": float(np.mean((p - y) ** 2)), "ece": float(ece), "nll": _nll(y, p),
            "n_bins": n_bins, "bins": bins}


def apply_temperature(p, temperature: float) -> np.ndarray:
    """Rescale probabilities as sigmoid(logit(p) / T); T > 1 softens, T < 1 sharpens.

    Monotone, so ranking (AUC) is unchanged; a threshold t maps to
    ``apply_temperature(t, T)``.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return expit(logit(p) / temperature)


def fit_temperature(y_val, p_val, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature T minimising the validation NLL of ``apply_temperature(p_val, T)``.

    Searched on log T within ``bounds`` (bounded scalar minimisation): a
    perfectly separated validation set would otherwise push T towards 0.
    """
    y, p = _as_binary(y_val, p_val)
    res = minimize_scalar(lambda log_t: _nll(y, apply_temperature(p, math.exp(log_t))),
                          bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-6})
    return float(math.exp(res.x))


# ---------------------------------------------------------------- per-model report


def _with_ci(metrics: dict, y, p, n_resamples: int, seed: int) -> tuple[dict, int]:
    """Add auc_ci95 ([lo, hi] or None) to a metrics dict; also return the skipped count."""
    y, p = _as_binary(y, p)
    if not _both_classes(y):
        return {**metrics, "auc_ci95": None}, 0
    aucs, skipped = bootstrap_auc_distribution(y, p, n_resamples, seed)
    lo, hi = _percentile_interval(aucs, 0.05)
    return {**metrics, "auc_ci95": [lo, hi] if lo is not None else None}, skipped


def _calibration_summary(y, p) -> dict[str, float]:
    c = calibration_metrics(y, p)
    return {"brier": c["brier"], "ece": c["ece"], "nll": c["nll"]}


def evaluate_binary(y_val, p_val, y_test, p_test, *, target_sensitivity: float = 0.90,
                    n_resamples: int = 1000, seed: int = 0,
                    temperature_scaling: bool = True) -> dict[str, Any]:
    """The full report of one binary model (JSON-ready).

    The threshold and the temperature are fitted on validation only, then
    applied unchanged to test. Keys: threshold, target_sensitivity,
    validation (binary_metrics at the threshold + auc_ci95),
    test (same + spec_at_sens_0.90 / 0.95), test_at_0.5,
    calibration {n_bins, test_before {brier, ece, nll}, temperature,
    test_after {...}} and bootstrap {n_resamples, seed, alpha, method, skipped}.
    auc_ci95 is [lo, hi], or None when a split has a single class.
    """
    t = choose_threshold(y_val, p_val, target_sensitivity)
    val, val_skipped = _with_ci(binary_metrics(y_val, p_val, t), y_val, p_val, n_resamples, seed)
    test, test_skipped = _with_ci(binary_metrics(y_test, p_test, t), y_test, p_test, n_resamples, seed)
    test["spec_at_sens_0.90"] = specificity_at_sensitivity(y_test, p_test, 0.90)
    test["spec_at_sens_0.95"] = specificity_at_sensitivity(y_test, p_test, 0.95)

    calibration: dict[str, Any] = {"n_bins": 10, "test_before": _calibration_summary(y_test, p_test),
                                   "temperature": None, "test_after": None}
    if temperature_scaling:
        temp = fit_temperature(y_val, p_val)
        calibration["temperature"] = temp
        calibration["test_after"] = _calibration_summary(y_test, apply_temperature(p_test, temp))
    return {
        "threshold": t,
        "target_sensitivity": float(target_sensitivity),
        "validation": val,
        "test": test,
        "test_at_0.5": binary_metrics(y_test, p_test, 0.5),
        "calibration": calibration,
        "bootstrap": {"n_resamples": int(n_resamples), "seed": int(seed), "alpha": 0.05,
                      "method": "percentile, images resampled with replacement",
                      "skipped": {"validation": val_skipped, "test": test_skipped}},
    }


# ---------------------------------------------------------------- multiclass


def _class_indices(classes: Sequence, class_names: Sequence[str]) -> list[int]:
    """Map class names or integer indices to column indices."""
    out = []
    for c in classes:
        if isinstance(c, (int, np.integer)):
            if not 0 <= c < len(class_names):
                raise ValueError(f"class index {c} out of range")
            out.append(int(c))
        else:
            out.append(list(class_names).index(c))
    return out


def _balanced_accuracy_boot(y: np.ndarray, correct: np.ndarray, k: int, n_resamples: int,
                            seed: int) -> tuple[np.ndarray, int]:
    """Bootstrap balanced accuracies; resamples missing a class present in y are skipped."""
    onehot = np.eye(k)[y]
    present = onehot.sum(axis=0) > 0
    rng = np.random.default_rng(seed)
    values = []
    for counts in _bootstrap_counts(y.size, n_resamples, rng):
        support = counts @ onehot                       # (b, k) class sizes per resample
        hits = counts @ (onehot * correct[:, None])     # (b, k) correct calls per class
        ok = (support[:, present] > 0).all(axis=1)
        recall = hits[ok][:, present] / support[ok][:, present]
        values.append(recall.mean(axis=1))
    values = np.concatenate(values)
    return values, int(n_resamples - values.size)


def multiclass_metrics(y_true, P, class_names: Sequence[str], n_resamples: int = 1000, seed: int = 0,
                       malignant_classes: Sequence | None = None) -> dict[str, Any]:
    """Multiclass report (e.g. the 7 HAM10000 diagnoses); predicted class = argmax of P.

    balanced_accuracy is the ISIC 2018 metric: mean recall over the classes
    present in y_true, with a percentile bootstrap CI (resamples lacking one of
    those classes are skipped). per_class holds precision, recall, f1, support
    and one-vs-rest auc (None where undefined); auc_macro_ovr averages the
    defined per-class AUCs. top2_accuracy: true class among the two highest
    probabilities. confusion: counts, rows = true, columns = predicted;
    confusion_normalized: rows divided by support (None for an empty row).
    With ``malignant_classes`` (names or indices) the summed probability of
    those columns is scored as a binary malignant-vs-rest prediction.
    Argmax ties go to the first class (the ISIC scorer calls them undecided).
    """
    y = np.asarray(y_true).ravel()
    P = np.asarray(P, dtype=np.float64)
    k = len(class_names)
    if P.ndim != 2 or P.shape != (y.size, k):
        raise ValueError(f"P must have shape (n, {k}) = ({y.size}, {k}), got {P.shape}")
    if not np.isfinite(P).all():
        raise ValueError("probabilities contain NaN or infinity")
    if y.size == 0 or not np.isin(y, np.arange(k)).all():
        raise ValueError(f"labels must be integers in [0, {k})")
    y = y.astype(np.int64)
    pred = P.argmax(axis=1)
    correct = (pred == y).astype(np.float64)

    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)

    per_class = {}
    for c, name in enumerate(class_names):
        tp = int(cm[c, c])
        y_c = (y == c).astype(np.int64)
        per_class[name] = {
            "precision": _ratio(tp, predicted[c]),
            "recall": _ratio(tp, support[c]),
            "f1": _ratio(2 * tp, support[c] + predicted[c]),
            "support": int(support[c]),
            "auc": float(roc_auc_score(y_c, P[:, c])) if _both_classes(y_c) else None,
        }
    recalls = [m["recall"] for m in per_class.values() if m["recall"] is not None]
    aucs = [m["auc"] for m in per_class.values() if m["auc"] is not None]

    boot, skipped = _balanced_accuracy_boot(y, correct, k, n_resamples, seed)
    top2 = np.argsort(-P, axis=1, kind="stable")[:, :2]
    result: dict[str, Any] = {
        "n": int(y.size),
        "class_names": list(class_names),
        "balanced_accuracy": float(np.mean(recalls)),
        "balanced_accuracy_ci95": list(_percentile_interval(boot, 0.05)) if boot.size else None,
        "accuracy": float(correct.mean()),
        "top2_accuracy": float((top2 == y[:, None]).any(axis=1).mean()),
        "auc_macro_ovr": float(np.mean(aucs)) if aucs else None,
        "per_class": per_class,
        "confusion": cm.tolist(),
        "confusion_normalized": [
            (row / row.sum()).tolist() if row.sum() else None for row in cm.astype(np.float64)
        ],
        "bootstrap": {"n_resamples": int(n_resamples), "seed": int(seed), "skipped": skipped},
    }
    if malignant_classes is not None:
        idx = _class_indices(malignant_classes, class_names)
        y_mal = np.isin(y, idx).astype(np.int64)
        p_mal = P[:, idx].sum(axis=1)
        defined = _both_classes(y_mal)
        lo, hi = bootstrap_auc_ci(y_mal, p_mal, n_resamples, seed)
        result["malignant"] = {
            "classes": [class_names[i] for i in idx],
            "auc": float(roc_auc_score(y_mal, p_mal)) if defined else None,
            "auc_ci95": [lo, hi] if lo is not None else None,
        }
    return result


# ---------------------------------------------------------------- ISIC challenge CSVs


def _isic_ids(image_ids: Sequence[str]) -> list[str]:
    """Image ids as the ISIC scorer wants them: no image file extension, unique."""
    ids = []
    for i in image_ids:
        s = str(i)
        root, ext = os.path.splitext(s)
        ids.append(root if ext.lower() in _IMAGE_EXTENSIONS else s)
    if len(set(ids)) != len(ids):
        raise ValueError("image ids are not unique (after removing extensions)")
    return ids


def _probability_table(probs, class_names: Sequence[str], n: int) -> np.ndarray:
    """(n, k) matrix; a 1-D ``probs`` with two classes is P(class_names[1])."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        if len(class_names) != 2:
            raise ValueError("1-D probabilities need exactly two class names (negative, positive)")
        probs = np.column_stack([1.0 - probs, probs])
    if probs.shape != (n, len(class_names)):
        raise ValueError(f"probabilities have shape {probs.shape}, expected ({n}, {len(class_names)})")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    return probs


def _write_isic_csv(path, image_ids, table: np.ndarray, class_names: Sequence[str]) -> Path:
    import pandas as pd  # only needed here

    ids = _isic_ids(image_ids)
    if len(ids) != table.shape[0]:
        raise ValueError(f"{len(ids)} image ids for {table.shape[0]} rows")
    frame = pd.DataFrame(table, columns=list(class_names))
    frame.insert(0, "image", ids)
    path = Path(path)
    with atomic_path(path) as tmp:
        # float_format=None keeps full (round-trip) precision.
        frame.to_csv(tmp, index=False)
    return path


def write_isic_predictions(path, image_ids: Sequence[str], probs, class_names: Sequence[str]) -> Path:
    """Write predictions in the ISIC challenge classification CSV format, atomically.

    Columns: ``image`` (id without .jpg etc.), then one probability column per
    class, named exactly like the ground-truth columns (isic-challenge-scoring
    matches them by name). ``probs`` is (n, k), or for two classes a 1-D
    probability of ``class_names[1]`` written as [1 - p, p]. The scorer turns
    rows into labels by argmax (an exact tie, e.g. p = 0.5, is "undecided").
    """
    ids = list(image_ids)
    return _write_isic_csv(path, ids, _probability_table(probs, class_names, len(ids)), class_names)


def read_isic_predictions(path, image_ids: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Probabilities from an ISIC-format CSV, in the order of ``image_ids`` ((n, k)).

    Raises naming the file when a column or one of the images is missing.
    """
    import pandas as pd  # only needed here

    frame = pd.read_csv(path)
    missing_cols = [c for c in ["image", *class_names] if c not in frame.columns]
    if missing_cols:
        raise ValueError(f"{path}: missing column(s) {missing_cols}; expected image, {', '.join(class_names)}")
    table = frame.set_index("image")
    ids = _isic_ids(image_ids)
    absent = [i for i in ids if i not in table.index]
    if absent:
        raise ValueError(f"{path}: no prediction for {len(absent)} of {len(ids)} image(s), e.g. {absent[:3]}; "
                         "it was written for another split: rerun the notebook that wrote it.")
    return table.loc[ids, list(class_names)].to_numpy(dtype=np.float64)


def write_isic_ground_truth(path, image_ids: Sequence[str], y, class_names: Sequence[str]) -> Path:
    """Write integer labels as an ISIC ground-truth CSV (image + one-hot 1.0/0.0 columns)."""
    y = np.asarray(y).ravel().astype(np.int64)
    return _write_isic_csv(path, list(image_ids), np.eye(len(class_names))[y], class_names)
