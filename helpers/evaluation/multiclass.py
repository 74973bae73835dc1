"""The seven HAM10000 diagnoses: balanced accuracy (the ISIC 2018 metric) with
its bootstrap interval, per-class metrics, and the paired difference of two
models. Pure numpy / scikit-learn, like ``binary``."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from .binary import bootstrap_auc_ci, both_classes, ratio
from .resampling import bootstrap_counts, percentile_interval


def balanced_accuracy(y: np.ndarray, P: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (predicted class = argmax)."""
    y = np.asarray(y, dtype="int64").ravel()
    pred = np.asarray(P).argmax(axis=1)
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def per_class_recall(y: np.ndarray, P: np.ndarray, class_names: Sequence[str]) -> dict[str, float | None]:
    """Recall of every class (None for one absent from ``y``)."""
    y = np.asarray(y, dtype="int64").ravel()
    pred = np.asarray(P).argmax(axis=1)
    return {c: (float(np.mean(pred[y == i] == i)) if (y == i).any() else None) for i, c in enumerate(class_names)}


def _bootstrap_balanced_accuracies(y: np.ndarray, hits: Sequence[np.ndarray], k: int, n_resamples: int,
                                   seed: int) -> tuple[list[np.ndarray], int]:
    """Balanced accuracy of each 0/1 ``hits`` vector on the same bootstrap resamples.

    Resamples missing a class present in ``y`` are skipped (and counted).
    """
    onehot = np.eye(k)[y]
    onehot = onehot[:, onehot.sum(axis=0) > 0]  # the classes present in y
    rng = np.random.default_rng(seed)
    values: list[list[np.ndarray]] = [[] for _ in hits]
    skipped = 0
    for counts in bootstrap_counts(y.size, n_resamples, rng):
        counts = counts.astype(np.float64)
        support = counts @ onehot                         # (b, classes) class sizes per resample
        ok = (support > 0).all(axis=1)
        skipped += int((~ok).sum())
        for out, h in zip(values, hits):
            correct = counts[ok] @ (onehot * h[:, None])  # (b, classes) correct calls per class
            out.append((correct / support[ok]).mean(axis=1))
    return [np.concatenate(v) if v else np.empty(0) for v in values], skipped


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
            "precision": ratio(tp, predicted[c]),
            "recall": ratio(tp, support[c]),
            "f1": ratio(2 * tp, support[c] + predicted[c]),
            "support": int(support[c]),
            "auc": float(roc_auc_score(y_c, P[:, c])) if both_classes(y_c) else None,
        }
    recalls = [m["recall"] for m in per_class.values() if m["recall"] is not None]
    aucs = [m["auc"] for m in per_class.values() if m["auc"] is not None]

    (boot,), skipped = _bootstrap_balanced_accuracies(y, [correct], k, n_resamples, seed)
    top2 = np.argsort(-P, axis=1, kind="stable")[:, :2]
    result: dict[str, Any] = {
        "n": int(y.size),
        "class_names": list(class_names),
        "balanced_accuracy": float(np.mean(recalls)),
        "balanced_accuracy_ci95": list(percentile_interval(boot, 0.05)) if boot.size else None,
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
        defined = both_classes(y_mal)
        lo, hi = bootstrap_auc_ci(y_mal, p_mal, n_resamples, seed)
        result["malignant"] = {
            "classes": [class_names[i] for i in idx],
            "auc": float(roc_auc_score(y_mal, p_mal)) if defined else None,
            "auc_ci95": [lo, hi] if lo is not None else None,
        }
    return result


def paired_bootstrap_difference(y, P_a, P_b, n_resamples: int = 2000, seed: int = 0,
                                alpha: float = 0.05) -> dict[str, Any]:
    """Balanced accuracy of B minus A, with a paired percentile bootstrap interval.

    Both models are scored on the *same* resamples of the test images, so the
    interval is that of the difference, much narrower than comparing two
    separate intervals. Resamples that lose a class present in ``y`` are
    skipped (and counted). ``p_b_not_better``: fraction of resamples in which
    B did not beat A (a one-sided bootstrap p-value).
    """
    y = np.asarray(y, dtype="int64").ravel()
    hits = [(np.asarray(P).argmax(axis=1) == y).astype("float64") for P in (P_a, P_b)]
    k = max(np.asarray(P_a).shape[1], int(y.max()) + 1)
    (ba_a, ba_b), skipped = _bootstrap_balanced_accuracies(y, hits, k, n_resamples, seed)
    d = ba_b - ba_a
    point = balanced_accuracy(y, P_b) - balanced_accuracy(y, P_a)
    lo, hi = percentile_interval(d, alpha)
    return {"difference": float(point),
            "ci95": [lo, hi] if d.size else None,
            "p_b_not_better": float(np.mean(d <= 0)) if d.size else None,
            "n_resamples": int(n_resamples), "skipped": skipped, "seed": int(seed),
            "method": "paired percentile bootstrap over test images (same resamples for both models)",
            "distribution": d}
