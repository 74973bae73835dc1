"""Bootstrap resampling shared by every confidence interval of the project.

Resamples are drawn as count matrices (how often each item is drawn in each
resample), so every statistic is a weighted sum that vectorises over
resamples, and two models are scored on the very same resamples when a
difference is wanted (paired bootstrap).
"""
from __future__ import annotations

import numpy as np


# Bootstrap work is done in chunks of at most this many (resample, item) cells.
_CHUNK_CELLS = 4_000_000


def bootstrap_counts(n: int, n_resamples: int, rng: np.random.Generator):
    """Yield (chunk, n) matrices: how often each item is drawn in each resample.

    Counts instead of index lists let every statistic be a weighted sum,
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


def weighted_auc(y: np.ndarray, p: np.ndarray, counts: np.ndarray) -> np.ndarray:
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


def percentile_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """The (alpha/2, 1 - alpha/2) percentiles of ``values``; (None, None) when empty."""
    if values.size == 0:
        return None, None
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)
