"""helpers.evaluation.multiclass: balanced accuracy, per-class metrics, the paired
bootstrap of a difference -- hand-computed on tiny examples."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers.evaluation import multiclass as ev_mc

# 3 classes, 6 images; predicted (argmax) = [0, 1, 1, 1, 2, 0]
Y3 = np.array([0, 0, 1, 1, 2, 2])
P3 = np.array([
    [0.70, 0.20, 0.10],
    [0.30, 0.50, 0.20],
    [0.15, 0.80, 0.05],
    [0.20, 0.50, 0.30],
    [0.10, 0.20, 0.70],
    [0.60, 0.30, 0.10],
])
NAMES3 = ["nv", "bkl", "mel"]


def _probs(pred, k=7):
    P = np.full((len(pred), k), 0.01)
    P[np.arange(len(pred)), pred] = 0.9
    return P


def test_balanced_accuracy_is_mean_recall():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 0])
    assert ev_mc.balanced_accuracy(y, _probs(pred)) == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_paired_bootstrap_of_identical_models_is_zero():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    P = _probs(rng.integers(0, 3, 200))
    res = ev_mc.paired_bootstrap_difference(y, P, P, n_resamples=200, seed=1)
    assert res["difference"] == 0 and res["ci95"] == [0.0, 0.0] and res["p_b_not_better"] == 1.0


def test_paired_bootstrap_sees_a_real_improvement():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    a = np.where(rng.random(300) < 0.6, y, (y + 1) % 3)  # ~60% right
    b = np.where(rng.random(300) < 0.5, y, a)  # fixes about half of a's errors
    res = ev_mc.paired_bootstrap_difference(y, _probs(a), _probs(b), n_resamples=500, seed=3)
    point = ev_mc.balanced_accuracy(y, _probs(b)) - ev_mc.balanced_accuracy(y, _probs(a))
    assert res["difference"] == pytest.approx(point) and point > 0.1
    lo, hi = res["ci95"]
    assert 0 < lo < point < hi
    assert res["p_b_not_better"] < 0.01 and res["skipped"] == 0 and res["distribution"].size == 500
    again = ev_mc.paired_bootstrap_difference(y, _probs(a), _probs(b), n_resamples=500, seed=3)
    assert again["ci95"] == res["ci95"]  # seeded


def test_paired_bootstrap_skips_resamples_that_lose_a_class():
    y = np.array([0] * 30 + [1])  # one example of class 1: often missing from a resample
    P = _probs(y, k=2)
    res = ev_mc.paired_bootstrap_difference(y, P, P, n_resamples=300, seed=0)
    assert 0 < res["skipped"] < 300 and res["distribution"].size == 300 - res["skipped"]


def test_multiclass_hand_computed():
    m = ev_mc.multiclass_metrics(Y3, P3, NAMES3, n_resamples=200, seed=0, malignant_classes=["mel"])
    json.dumps(m, allow_nan=False)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["confusion_normalized"][0] == [0.5, 0.5, 0.0]
    # recalls 1/2, 2/2, 1/2
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # only the last image misses: its true class (mel, 0.1) is third
    assert m["top2_accuracy"] == pytest.approx(5 / 6)
    assert m["per_class"]["nv"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "auc": 7 / 8})
    assert m["per_class"]["bkl"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["bkl"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["mel"]["f1"] == pytest.approx(2 / 3)
    per_class_auc = [roc_auc_score(Y3 == c, P3[:, c]) for c in range(3)]
    assert m["auc_macro_ovr"] == pytest.approx(np.mean(per_class_auc))
    assert m["auc_macro_ovr"] == pytest.approx(roc_auc_score(Y3, P3, multi_class="ovr", average="macro"))
    # mel column: 0.7 beats all 4 others, 0.1 beats 0.05 and ties 0.1 -> 5.5 / 8
    assert m["malignant"]["auc"] == pytest.approx(5.5 / 8)
    assert m["malignant"]["classes"] == ["mel"]
    lo, hi = m["balanced_accuracy_ci95"]
    assert 0 <= lo <= hi <= 1


def test_multiclass_malignant_sum_and_indices():
    m = ev_mc.multiclass_metrics(Y3, P3, NAMES3, n_resamples=50, malignant_classes=[1, 2])
    assert m["malignant"]["classes"] == ["bkl", "mel"]
    assert m["malignant"]["auc"] == pytest.approx(roc_auc_score(Y3 > 0, P3[:, 1] + P3[:, 2]))


def test_multiclass_absent_class_and_bootstrap_seed():
    # class 2 never occurs: balanced accuracy averages over present classes only
    y = np.array([0, 0, 1, 1])
    P = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = ev_mc.multiclass_metrics(y, P, ["a", "b", "c"], n_resamples=300, seed=4)
    json.dumps(m, allow_nan=False)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["c"]["recall"] is None and m["per_class"]["c"]["auc"] is None
    assert m["confusion_normalized"][2] is None
    assert m["bootstrap"]["skipped"] > 0  # resamples lacking class a or b
    again = ev_mc.multiclass_metrics(y, P, ["a", "b", "c"], n_resamples=300, seed=4)
    assert again["balanced_accuracy_ci95"] == m["balanced_accuracy_ci95"]


def test_multiclass_rejects_bad_shapes():
    with pytest.raises(ValueError):
        ev_mc.multiclass_metrics(Y3, P3[:, :2], NAMES3)
    with pytest.raises(ValueError):
        ev_mc.multiclass_metrics(Y3 + 1, P3, NAMES3)
