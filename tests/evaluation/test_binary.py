"""helpers.evaluation.binary: hand-computed metrics, thresholds, CIs, calibration."""
from __future__ import annotations

import json

import numpy as np
import pytest
from score_factory import synthetic_scores
from sklearn.metrics import roc_auc_score

from helpers.evaluation import binary as ev
from helpers.evaluation import resampling

# Tiny hand-checked binary case (see the comments in the tests for the arithmetic).
Y = np.array([0, 0, 0, 0, 1, 1, 1])
P = np.array([0.1, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7])


def _bce(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ---------------------------------------------------------------- binary metrics


def test_binary_metrics_hand_computed():
    m = ev.binary_metrics(Y, P, 0.5)
    # calls: 0.6 (neg) -> fp; 0.8, 0.7 -> tp; 0.3 (pos) -> fn; 0.1, 0.4, 0.2 -> tn
    assert m["confusion"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 2}
    assert (m["n"], m["n_pos"], m["n_neg"], m["threshold"]) == (7, 3, 4, 0.5)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["ppv"] == pytest.approx(2 / 3)
    assert m["npv"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx(17 / 24)
    assert m["f1"] == pytest.approx(2 / 3)
    # pairs won: 0.8 beats 4 negatives, 0.7 beats 4, 0.3 beats 2 -> 10 of 12
    assert m["auc"] == pytest.approx(10 / 12)
    # ranked: + + - - + - - -> precisions at the hits 1, 1, 3/5
    assert m["average_precision"] == pytest.approx((1 + 1 + 0.6) / 3)
    assert m["confusion_normalized"] == pytest.approx({"tn": 0.75, "fp": 0.25, "fn": 1 / 3, "tp": 2 / 3})


def test_threshold_is_inclusive():
    # p == threshold counts as malignant
    assert ev.binary_metrics(Y, P, 0.3)["confusion"]["tp"] == 3
    assert ev.binary_metrics(Y, P, 0.3 + 1e-9)["confusion"]["tp"] == 2


def test_edge_cases_give_none_not_nan():
    nothing_called = ev.binary_metrics(Y, P, 0.99)
    assert nothing_called["ppv"] is None
    assert nothing_called["f1"] == 0.0  # positives exist, none found: defined and zero
    assert nothing_called["npv"] == pytest.approx(4 / 7)

    all_called = ev.binary_metrics(Y, P, 0.0)
    assert all_called["npv"] is None and all_called["specificity"] == 0.0

    only_negatives = ev.binary_metrics([0, 0, 0], [0.1, 0.2, 0.9], 0.5)
    for key in ("auc", "average_precision", "sensitivity", "balanced_accuracy"):
        assert only_negatives[key] is None, key
    assert only_negatives["confusion_normalized"]["tp"] is None
    assert only_negatives["specificity"] == pytest.approx(2 / 3)

    only_negatives_none_called = ev.binary_metrics([0, 0], [0.1, 0.2], 0.5)
    assert only_negatives_none_called["f1"] is None and only_negatives_none_called["ppv"] is None

    only_positives = ev.binary_metrics([1, 1], [0.2, 0.9], 0.5)
    assert only_positives["specificity"] is None and only_positives["auc"] is None
    for m in (nothing_called, all_called, only_negatives, only_positives):
        json.dumps(m, allow_nan=False)  # raises on NaN


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        ev.binary_metrics([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError):
        ev.binary_metrics([0, 1], [0.1, np.nan], 0.5)
    with pytest.raises(ValueError):
        ev.binary_metrics([0, 1, 1], [0.1, 0.2], 0.5)


# ---------------------------------------------------------------- threshold


def test_choose_threshold_hand_computed():
    # positives 0.8, 0.7, 0.3: 90 % of 3 needs all 3 -> 0.3; 60 % needs 2 -> 0.7
    assert ev.choose_threshold(Y, P, 0.90) == 0.3
    assert ev.choose_threshold(Y, P, 0.60) == 0.7
    assert ev.choose_threshold(Y, P, 1 / 3) == 0.8
    # 0.7 * 10 must ask for 7 positives, not 8 (floating point)
    y10 = np.ones(10, dtype=int)
    p10 = np.linspace(0.95, 0.05, 10)
    assert ev.choose_threshold(y10, p10, 0.7) == pytest.approx(p10[6])


def test_choose_threshold_ties_keep_target():
    y = np.array([1, 1, 1, 1, 0, 0])
    p = np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1])
    t = ev.choose_threshold(y, p, 0.5)  # 2 of 4 needed; tied positives all go over
    assert t == 0.5
    m = ev.binary_metrics(y, p, t)
    assert m["sensitivity"] == 1.0 and m["specificity"] == 0.5


def test_choose_threshold_meets_target_and_is_highest():
    y, p = synthetic_scores(500, seed=3)
    for target in (0.8, 0.9, 0.95):
        t = ev.choose_threshold(y, p, target)
        assert ev.binary_metrics(y, p, t)["sensitivity"] >= target
        higher = np.nextafter(t, 1.0)
        assert ev.binary_metrics(y, p, higher)["sensitivity"] < target
        # the same operating point as reading the ROC curve
        assert ev.binary_metrics(y, p, t)["specificity"] == pytest.approx(
            ev.specificity_at_sensitivity(y, p, target))


def test_choose_threshold_needs_positives():
    with pytest.raises(ValueError):
        ev.choose_threshold([0, 0], [0.2, 0.3])


def test_sensitivity_confidence_hand_computed():
    # At the lowest of n malignant scores, sensitivity >= t unless all n fall in the top t share... i.e. 1 - t**n.
    assert ev.sensitivity_confidence(10, 10, 0.9) == pytest.approx(1 - 0.9**10)
    # At the highest score the share above it is Beta(1, n): P(share >= 0.9) = 0.1**n.
    assert ev.sensitivity_confidence(3, 1, 0.9) == pytest.approx(0.1**3)
    # 0.9**15 = 0.206 leaves 79.4% confidence, 0.9**16 = 0.185 leaves 81.5%.
    assert ev.malignant_images_needed(0.9, 0.8) == 16
    assert ev.malignant_images_needed(0.9, 0.5) == 7


def test_sensitivity_confidence_matches_a_simulation():
    # Uniform malignant scores: the population sensitivity at threshold t is 1 - t.
    rng = np.random.default_rng(0)
    draws = np.sort(rng.random((20000, 12)), axis=1)[:, ::-1]
    for k in (10, 11, 12):
        simulated = np.mean(1 - draws[:, k - 1] >= 0.9)
        assert simulated == pytest.approx(ev.sensitivity_confidence(12, k, 0.9), abs=0.015)


def test_threshold_with_confidence_reaches_the_target_as_often_as_promised():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    plain, confident, reached = [], [], []
    for _ in range(2000):
        p = np.r_[rng.random(40), rng.random(60) * 0.5]
        plain.append(1 - ev.choose_threshold(y, p, 0.9) >= 0.9)
        t, r = ev.threshold_with_confidence(y, p, 0.9, 0.8)
        confident.append(1 - t >= 0.9)
        reached.append(r)
    assert min(reached) >= 0.8
    # Promised at least 80%; the next order statistic up would have given less than 80%.
    assert 0.79 <= np.mean(confident) <= 0.95
    # The plain refit falls short about as often as not (the reason for the margin).
    assert np.mean(plain) < 0.6


def test_threshold_with_confidence_meets_the_target_on_its_own_images():
    rng = np.random.default_rng(2)
    for n_pos in (20, 37, 80):
        y = np.r_[np.ones(n_pos, int), np.zeros(50, int)]
        p = np.r_[rng.random(n_pos), rng.random(50) * 0.6]
        t, _ = ev.threshold_with_confidence(y, p, 0.9, 0.8)
        assert (p[y == 1] >= t).mean() >= 0.9
        # At least as many malignant images above it as the plain fit's threshold keeps.
        assert t <= ev.choose_threshold(y, p, 0.9)


def test_threshold_with_confidence_with_too_few_malignant_images_says_so():
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.55])
    t, reached = ev.threshold_with_confidence(y, p, 0.9, 0.8)
    assert t == 0.5 and reached == pytest.approx(1 - 0.9**5)
    with pytest.raises(ValueError):
        ev.threshold_with_confidence([0, 0], [0.2, 0.3])
    with pytest.raises(ValueError):
        ev.threshold_with_confidence(y, p, 0.9, 1.0)


def test_refit_on_samples_with_a_margin_reaches_the_target_more_often_at_a_cost():
    y_pool, p_pool = synthetic_scores(3000, seed=3, separation=2.0)
    y_test, p_test = synthetic_scores(3000, seed=4, separation=2.0)
    plain = ev.refit_on_samples(y_pool, p_pool, y_test, p_test, sizes=[60, 5], repeats=200, seed=0)
    margin = ev.refit_on_samples(y_pool, p_pool, y_test, p_test, sizes=[60, 5], repeats=200, seed=0, confidence=0.8)
    assert plain["60"]["repeats"] == 200 and plain["60"]["skipped"] == 0
    # Samples of 5 images often hold no malignant one: skipped and counted, the same in both runs.
    assert plain["5"]["skipped"] == margin["5"]["skipped"] > 0
    assert margin["60"]["share_meeting_target"] > plain["60"]["share_meeting_target"] + 0.2
    assert margin["60"]["specificity"]["mean"] < plain["60"]["specificity"]["mean"]
    for r in (plain["60"], margin["60"]):
        assert r["sensitivity"]["p5"] <= r["sensitivity"]["mean"] <= r["sensitivity"]["p95"]


# ---------------------------------------------------------------- ROC reading, bootstrap


def test_specificity_at_sensitivity_hand_computed():
    # all 3 positives need t <= 0.3: negatives 0.4, 0.6 are then called -> spec 2/4
    assert ev.specificity_at_sensitivity(Y, P, 0.9) == 0.5
    # 2 positives: t = 0.7 -> no negatives called
    assert ev.specificity_at_sensitivity(Y, P, 0.6) == 1.0
    assert ev.specificity_at_sensitivity([0, 0], [0.1, 0.2], 0.9) is None


def test_vectorised_auc_matches_sklearn_on_resamples():
    rng = np.random.default_rng(0)
    y, p = synthetic_scores(120, seed=1)
    p = np.round(p, 1)  # plenty of ties
    idx = rng.integers(0, y.size, size=(40, y.size))
    counts = np.stack([np.bincount(i, minlength=y.size) for i in idx])
    ours = resampling.weighted_auc(y, p, counts)
    theirs = [roc_auc_score(y[i], p[i]) for i in idx]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_bootstrap_ci_contains_estimate_is_seeded_and_narrows():
    y, p = synthetic_scores(200, seed=5)
    auc = roc_auc_score(y, p)
    lo, hi = ev.bootstrap_auc_ci(y, p, n_resamples=1000, seed=0)
    assert lo < auc < hi
    assert 0.02 < hi - lo < 0.3
    assert ev.bootstrap_auc_ci(y, p, n_resamples=1000, seed=0) == (lo, hi)
    assert ev.bootstrap_auc_ci(y, p, n_resamples=1000, seed=1) != (lo, hi)
    y_big, p_big = synthetic_scores(3000, seed=5)
    lo_big, hi_big = ev.bootstrap_auc_ci(y_big, p_big, n_resamples=1000, seed=0)
    assert hi_big - lo_big < 0.5 * (hi - lo)


def test_bootstrap_skips_single_class_resamples():
    # one positive in 8: P(resample has none) = (7/8)^8 ~ 34 %
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(0.9, 0.1, 8)
    aucs, skipped = ev.bootstrap_auc_distribution(y, p, n_resamples=2000, seed=0)
    assert aucs.size + skipped == 2000
    assert 0.28 < skipped / 2000 < 0.40
    assert np.all(aucs == 1.0)
    assert ev.bootstrap_auc_ci([0, 0, 0], [0.1, 0.2, 0.3]) == (None, None)


# ---------------------------------------------------------------- calibration


def test_calibration_hand_computed():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.95, 0.85])
    c = ev.calibration_metrics(y, p, n_bins=10)
    assert c["brier"] == pytest.approx((0.05**2 + 0.85**2 + 0.05**2 + 0.85**2) / 4)
    # four bins of one image each: |0.05-0| + |0.15-1| + |0.85-0| + |0.95-1|, each weighted 1/4
    assert c["ece"] == pytest.approx((0.05 + 0.85 + 0.85 + 0.05) / 4)
    assert [b["count"] for b in c["bins"]] == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    assert c["bins"][2]["mean_pred"] is None and c["bins"][2]["frac_pos"] is None
    # p = 1.0 falls in the last (closed) bin
    assert ev.calibration_metrics([1], [1.0], n_bins=10)["bins"][-1]["count"] == 1
    json.dumps(c, allow_nan=False)


def test_ece_and_brier_separate_calibrated_from_miscalibrated():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)  # calibrated by construction
    good = ev.calibration_metrics(y, p)
    bad = ev.calibration_metrics(y, p**0.25)  # pushed towards 1
    assert good["ece"] < 0.015
    assert bad["ece"] > 0.2
    assert good["brier"] == pytest.approx(1 / 6, abs=0.01)  # E[p(1-p)] for uniform p
    assert bad["brier"] > good["brier"] + 0.05


def test_temperature_scaling_recovers_overconfidence():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=1.5, size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    p_overconfident = 1 / (1 + np.exp(-3 * z))
    T = ev.fit_temperature(y, p_overconfident)
    assert T == pytest.approx(3.0, rel=0.15)
    p_scaled = ev.apply_temperature(p_overconfident, T)
    assert _bce(y, p_scaled) < _bce(y, p_overconfident) - 0.05
    assert roc_auc_score(y, p_scaled) == pytest.approx(roc_auc_score(y, p_overconfident))
    assert ev.apply_temperature(np.array([0.5, 0.8]), 1.0) == pytest.approx([0.5, 0.8])


# ---------------------------------------------------------------- full report


def test_evaluate_binary_report():
    y_val, p_val = synthetic_scores(300, seed=10)
    y_test, p_test = synthetic_scores(400, seed=11)
    r = ev.evaluate_binary(y_val, p_val, y_test, p_test, n_resamples=300, seed=0)
    json.dumps(r, allow_nan=False)
    assert r["threshold"] == ev.choose_threshold(y_val, p_val, 0.90)
    assert r["validation"]["sensitivity"] >= 0.90
    for key in ("n", "accuracy", "auc", "sensitivity", "specificity"):
        assert isinstance(r["test"][key], (int, float)), key
    assert r["test"]["n"] == 400 and r["test"]["threshold"] == r["threshold"]
    lo, hi = r["test"]["auc_ci95"]
    assert lo < r["test"]["auc"] < hi
    assert r["test"]["spec_at_sens_0.95"] <= r["test"]["spec_at_sens_0.90"]
    assert r["test_at_0.5"]["threshold"] == 0.5
    cal = r["calibration"]
    assert cal["temperature"] == pytest.approx(ev.fit_temperature(y_val, p_val))
    assert set(cal["test_before"]) >= {"brier", "ece"} and set(cal["test_after"]) >= {"brier", "ece"}
    # the threshold never depends on test data
    r2 = ev.evaluate_binary(y_val, p_val, y_test[::-1], p_test ** 2, n_resamples=50)
    assert r2["threshold"] == r["threshold"]
    r3 = ev.evaluate_binary(y_val, p_val, y_test, p_test, n_resamples=50, temperature_scaling=False)
    assert r3["calibration"]["temperature"] is None and r3["calibration"]["test_after"] is None


def test_evaluate_binary_single_class_test_is_json_safe():
    y_val, p_val = synthetic_scores(100, seed=2)
    r = ev.evaluate_binary(y_val, p_val, [0, 0, 0], [0.1, 0.7, 0.2], n_resamples=50)
    json.dumps(r, allow_nan=False)
    assert r["test"]["auc"] is None and r["test"]["auc_ci95"] is None
    assert r["test"]["spec_at_sens_0.90"] is None




# ---------------------------------------------------------------- ISIC challenge format


def test_paired_auc_difference_matches_an_explicit_paired_resampling():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    p_a = np.clip(y * 0.2 + rng.uniform(0, 0.8, 60), 0, 1)
    p_b = np.clip(y * 0.5 + rng.uniform(0, 0.5, 60), 0, 1).round(1)  # ties on purpose
    out = ev.paired_auc_difference(y, p_a, p_b, n_resamples=300, seed=5)
    assert out["difference"] == pytest.approx(roc_auc_score(y, p_b) - roc_auc_score(y, p_a))
    idx = np.random.default_rng(5).integers(0, 60, size=(300, 60))  # the same draws, one chunk
    diffs = np.array([roc_auc_score(y[i], p_b[i]) - roc_auc_score(y[i], p_a[i])
                      for i in idx if 0 < y[i].sum() < 60])
    assert out["ci95"] == pytest.approx(list(np.percentile(diffs, [2.5, 97.5])))
    assert out["p_b_not_better"] == pytest.approx(np.mean(diffs <= 0)) and out["skipped"] == 300 - len(diffs)
    assert out["ci95"][0] > 0  # B separates the classes far better here
    same = ev.paired_auc_difference(y, p_a, p_a, n_resamples=100, seed=0)
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and same["p_b_not_better"] == 1




def test_wilson_interval_matches_the_formula_and_contains_the_rate():
    lo, hi = ev.proportion_ci(3, 11)  # textbook value for 3 of 11
    assert (lo, hi) == pytest.approx((0.0975, 0.5656), abs=5e-4)
    for k, n in ((0, 7), (7, 7), (0, 1), (0, 133), (133, 133), (1, 3)):
        lo, hi = ev.proportion_ci(k, n)
        assert 0 <= lo <= k / n <= hi <= 1, (k, n)  # never past the rate, even by rounding at 0 or 1
    assert ev.proportion_ci(0, 0) == (None, None)
