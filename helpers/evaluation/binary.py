"""Benign vs malignant: threshold, metrics, confidence intervals, calibration.

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
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit
from scipy.stats import beta, norm
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from .resampling import bootstrap_counts, percentile_interval, weighted_auc


# Probabilities are clipped this far from 0 and 1 before taking logits / logs.
_EPS = 1e-7


def ratio(num: float, den: float) -> float | None:
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


def both_classes(y: np.ndarray) -> bool:
    """True when 0/1 labels hold both classes."""
    return 0 < int(y.sum()) < y.size


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


def sensitivity_confidence(n_malignant: int, k: int, target_sensitivity: float) -> float:
    """Probability that a threshold at the ``k``-th largest of ``n_malignant`` malignant scores
    reaches ``target_sensitivity`` on the population those images were drawn from.

    The share of that population scoring at or above the k-th largest of n draws
    is Beta(k, n + 1 - k) distributed whatever the score distribution (order
    statistics, continuous scores), so the probability is its upper tail at the target.
    """
    return float(beta.sf(target_sensitivity, k, n_malignant + 1 - k))


def malignant_images_needed(target_sensitivity: float, confidence: float) -> int:
    """Fewest malignant images for which some threshold reaches ``target_sensitivity`` with
    ``confidence``: even the lowest malignant score does so only with 1 - target**n."""
    return max(1, math.ceil(math.log(1 - confidence) / math.log(target_sensitivity) - 1e-9))


def threshold_with_confidence(y, p, target_sensitivity: float = 0.90,
                              confidence: float = 0.80) -> tuple[float, float]:
    """Highest threshold whose sensitivity on *new* images like these reaches
    ``target_sensitivity`` with probability ``confidence``; returns it and the
    probability it reaches.

    ``choose_threshold`` meets the target on the images it is fitted on; on a
    small sample that threshold falls short on new images about half the time
    (notebook 7 measures it). Here the threshold is the k-th largest malignant
    score for the smallest k whose ``sensitivity_confidence`` reaches
    ``confidence``; k starts at ceil(target_sensitivity * n), so on these images
    it always reaches at least the target sensitivity. With too few malignant
    images no k does (``malignant_images_needed``): the lowest malignant score
    is returned with the smaller probability it reaches, and the caller should
    say so.
    """
    y, p = _as_binary(y, p)
    if not 0 < target_sensitivity < 1 or not 0 < confidence < 1:
        raise ValueError("target_sensitivity and confidence must be in (0, 1)")
    pos_scores = np.sort(p[y == 1])[::-1]
    n = pos_scores.size
    if n == 0:
        raise ValueError("no positive (malignant) images to place a threshold on")
    for k in range(max(1, math.ceil(target_sensitivity * n - 1e-9)), n + 1):
        reached = sensitivity_confidence(n, k, target_sensitivity)
        if reached >= confidence:
            return float(pos_scores[k - 1]), reached
    return float(pos_scores[-1]), sensitivity_confidence(n, n, target_sensitivity)


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
    sens, spec = ratio(tp, n_pos), ratio(tn, n_neg)
    two_classes = both_classes(y)
    return {
        "n": int(y.size),
        "n_pos": n_pos,
        "n_neg": n_neg,
        "threshold": float(threshold),
        "accuracy": ratio(tp + tn, y.size),
        "auc": float(roc_auc_score(y, p)) if two_classes else None,
        "average_precision": float(average_precision_score(y, p)) if n_pos else None,
        "sensitivity": sens,
        "specificity": spec,
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "balanced_accuracy": (sens + spec) / 2 if sens is not None and spec is not None else None,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "confusion": cm,
        "confusion_normalized": {
            "tn": ratio(tn, n_neg), "fp": ratio(fp, n_neg),
            "fn": ratio(fn, n_pos), "tp": ratio(tp, n_pos),
        },
    }


def bootstrap_auc_distribution(y, p, n_resamples: int = 1000, seed: int = 0) -> tuple[np.ndarray, int]:
    """AUCs of ``n_resamples`` bootstrap resamples of the images, and how many were skipped.

    Images are drawn with replacement (seeded); a resample holding a single
    class has no AUC and is skipped and counted.
    """
    y, p = _as_binary(y, p)
    rng = np.random.default_rng(seed)
    aucs = np.concatenate([weighted_auc(y, p, c) for c in bootstrap_counts(y.size, n_resamples, rng)])
    valid = np.isfinite(aucs)
    return aucs[valid], int((~valid).sum())


def bootstrap_auc_ci(y, p, n_resamples: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Percentile bootstrap (1 - alpha) interval of the ROC AUC: ``(lo, hi)``.

    ``(None, None)`` when the data have a single class or every resample did.
    Use :func:`bootstrap_auc_distribution` to see how many resamples were skipped.
    """
    y, p = _as_binary(y, p)
    if not both_classes(y):
        return None, None
    aucs, _ = bootstrap_auc_distribution(y, p, n_resamples, seed)
    return percentile_interval(aucs, alpha)


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
    if not both_classes(y):
        raise ValueError("an AUC difference needs both classes in y")
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([weighted_auc(y, p_b, c) - weighted_auc(y, p_a, c)
                            for c in bootstrap_counts(y.size, n_resamples, rng)])
    valid = np.isfinite(diffs)
    point = float(roc_auc_score(y, p_b) - roc_auc_score(y, p_a))
    lo, hi = percentile_interval(diffs[valid], alpha)
    return {"difference": point, "ci95": [lo, hi], "p_b_not_better": float(np.mean(diffs[valid] <= 0)),
            "n_resamples": int(n_resamples), "skipped": int((~valid).sum()), "seed": int(seed),
            "method": "paired percentile bootstrap over test images (same resamples for both models)"}


def predictive_values(sensitivity: float, specificity: float, prevalence: float) -> tuple[float, float]:
    """(PPV, NPV) of a test with this sensitivity and specificity where a fraction
    ``prevalence`` of the lesions is malignant (Bayes' rule).

    A test set's own PPV holds only at its own mix of classes (isic-mvb's test
    split is about 44% malignant); a clinic sees far fewer malignant lesions.
    """
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must lie strictly between 0 and 1, not {prevalence}")
    tp, fp = sensitivity * prevalence, (1 - specificity) * (1 - prevalence)
    tn, fn = specificity * (1 - prevalence), (1 - sensitivity) * prevalence
    return tp / (tp + fp) if tp + fp else float("nan"), tn / (tn + fn) if tn + fn else float("nan")


def proportion_ci(k: int, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion k / n ((None, None) for n = 0); it stays
    inside [0, 1] and is sensible for the small counts of rare diagnoses."""
    if n == 0:
        return None, None
    z = float(norm.ppf(1 - alpha / 2))
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at k = 0 or k = n one end equals phat in exact arithmetic; rounding must not push it past phat
    return min(phat, max(0.0, centre - half)), max(phat, min(1.0, centre + half))


def specificity_at_sensitivity(y, p, sensitivity: float) -> float | None:
    """Best specificity among ROC points whose sensitivity (TPR) is >= ``sensitivity``.

    None when the data have a single class (no ROC curve).
    """
    y, p = _as_binary(y, p)
    if not both_classes(y):
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
    if not both_classes(y):
        return {**metrics, "auc_ci95": None}, 0
    aucs, skipped = bootstrap_auc_distribution(y, p, n_resamples, seed)
    lo, hi = percentile_interval(aucs, 0.05)
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


# ---------------------------------------------------------------- thresholds that travel


def refit_on_samples(y_pool, p_pool, y_test, p_test, *, sizes: Sequence[int] = (50, 100), repeats: int = 200,
                     target_sensitivity: float = 0.90, confidence: float | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """What a threshold refitted on a small labelled sample from a new clinic does there.

    For each sample size, ``repeats`` times: draw that many images (without
    replacement) from ``y_pool``/``p_pool`` (the clinic's labelled images the
    model never saw), choose the threshold for ``target_sensitivity`` on them and
    fit a temperature, then score sensitivity, specificity and ECE on the test
    images. ``confidence``: refit with ``threshold_with_confidence`` (what
    ``calibrate`` does by default) instead of ``choose_threshold``. Samples
    without a malignant image cannot set a threshold: skipped and counted.
    Returns, per size, the mean and the 5th-95th percentiles.
    """
    y_pool, p_pool = _as_binary(y_pool, p_pool)
    y_test, p_test = _as_binary(y_test, p_test)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for size in sizes:
        size = min(int(size), y_pool.size)
        draws = {"threshold": [], "sensitivity": [], "specificity": [], "ece": []}
        skipped = 0
        for _ in range(repeats):
            pick = rng.choice(y_pool.size, size, replace=False)
            if not y_pool[pick].any():
                skipped += 1
                continue
            t = (choose_threshold(y_pool[pick], p_pool[pick], target_sensitivity) if confidence is None else
                 threshold_with_confidence(y_pool[pick], p_pool[pick], target_sensitivity, confidence)[0])
            temperature = fit_temperature(y_pool[pick], p_pool[pick]) if both_classes(y_pool[pick]) else 1.0
            m = binary_metrics(y_test, p_test, t)
            draws["threshold"].append(t)
            draws["sensitivity"].append(m["sensitivity"])
            draws["specificity"].append(m["specificity"])
            draws["ece"].append(calibration_metrics(y_test, apply_temperature(p_test, temperature))["ece"])
        out[str(size)] = {k: {"mean": float(np.mean(v)), "p5": float(np.percentile(v, 5)),
                              "p95": float(np.percentile(v, 95))} if v else None for k, v in draws.items()}
        out[str(size)].update(repeats=int(repeats), skipped=skipped,
                              share_meeting_target=float(np.mean(np.array(draws["sensitivity"]) >= target_sensitivity))
                              if draws["sensitivity"] else None)
    return out
