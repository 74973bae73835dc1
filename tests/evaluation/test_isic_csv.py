"""helpers.evaluation.isic_csv: the ISIC CSV format, and agreement of our metrics with
isic-challenge-scoring on the same predictions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from score_factory import synthetic_scores

from helpers.evaluation import binary as ev
from helpers.evaluation import isic_csv
from helpers.evaluation import multiclass as ev_mc


def test_write_isic_predictions_format(tmp_path):
    path = isic_csv.write_isic_predictions(tmp_path / "pred.csv", ["ISIC_001.jpg", "ISIC_002.JPG", "x.y"],
                                     [0.25, 0.5, 1.0], ["benign", "malignant"])
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["image", "benign", "malignant"]
    assert frame["image"].tolist() == ["ISIC_001", "ISIC_002", "x.y"]
    assert frame["benign"].tolist() == [0.75, 0.5, 0.0]
    assert frame["malignant"].tolist() == [0.25, 0.5, 1.0]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(ValueError):
        isic_csv.write_isic_predictions(tmp_path / "dup.csv", ["a.jpg", "a.png"], [0.1, 0.2], ["b", "m"])
    with pytest.raises(ValueError):
        isic_csv.write_isic_predictions(tmp_path / "bad.csv", ["a", "b"], [0.1, 1.2], ["b", "m"])


@pytest.fixture
def isic_scoring(monkeypatch):
    """isic-challenge-scoring 5.6.0, made to run on pandas 3.

    Its CSV parser calls DataFrame.applymap, which pandas 3 removed (renamed
    DataFrame.map in pandas 2.1, same behaviour); restore the alias for the
    duration of the test only.
    """
    scoring = pytest.importorskip("isic_challenge_scoring")
    if not hasattr(pd.DataFrame, "applymap"):
        monkeypatch.setattr(pd.DataFrame, "applymap", pd.DataFrame.map, raising=False)
    return scoring


# The scorer passes inplace= / verify_integrity= to pandas, deprecated in pandas 3.1
# (Pandas4Warning); only those two messages are ignored.
IGNORE_INPLACE = pytest.mark.filterwarnings(
    "ignore:The inplace keyword in:pandas.errors.Pandas4Warning")


IGNORE_VERIFY_INTEGRITY = pytest.mark.filterwarnings(
    "ignore:The 'verify_integrity' keyword in DataFrame.set_index:pandas.errors.Pandas4Warning")


def _isic_score(scoring, tmp_path, ids, y, probs, names):
    truth = isic_csv.write_isic_ground_truth(tmp_path / "truth.csv", ids, y, names)
    pred = isic_csv.write_isic_predictions(tmp_path / "pred.csv", [f"{i}.jpg" for i in ids], probs, names)
    return scoring.ClassificationScore.from_file(truth, pred, scoring.ClassificationMetric.BALANCED_ACCURACY)


@IGNORE_INPLACE
@IGNORE_VERIFY_INTEGRITY
def test_binary_agrees_with_isic_challenge_scoring(isic_scoring, tmp_path):
    y, p = synthetic_scores(80, seed=7)
    p = np.where(p == 0.5, 0.5001, p)  # the scorer calls an exact tie "undecided"
    ids = [f"ISIC_{i:07d}" for i in range(y.size)]
    score = _isic_score(isic_scoring, tmp_path, ids, y, p, ["benign", "malignant"])
    ours = ev.binary_metrics(y, p, 0.5)
    mal = score.per_category.loc["malignant"]
    assert ours["auc"] == pytest.approx(mal["auc"], abs=1e-9)
    assert ours["average_precision"] == pytest.approx(mal["ap"], abs=1e-9)
    assert ours["sensitivity"] == pytest.approx(mal["sensitivity"], abs=1e-9)
    assert ours["specificity"] == pytest.approx(mal["specificity"], abs=1e-9)
    assert ours["balanced_accuracy"] == pytest.approx(score.aggregate["balanced_accuracy"], abs=1e-9)
    assert ours["balanced_accuracy"] == pytest.approx(score.overall, abs=1e-9)


@IGNORE_INPLACE
@IGNORE_VERIFY_INTEGRITY
def test_multiclass_agrees_with_isic_challenge_scoring(isic_scoring, tmp_path):
    names = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    rng = np.random.default_rng(3)
    n = 90
    y = np.r_[np.arange(7), rng.integers(0, 7, n - 7)]  # every class present
    logits = rng.normal(size=(n, 7)) + 2.0 * np.eye(7)[y]
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ids = [f"ISIC_{i:07d}" for i in range(n)]
    score = _isic_score(isic_scoring, tmp_path, ids, y, P, names)
    ours = ev_mc.multiclass_metrics(y, P, names, n_resamples=100)
    assert ours["balanced_accuracy"] == pytest.approx(score.overall, abs=1e-9)
    assert ours["auc_macro_ovr"] == pytest.approx(score.macro_average["auc"], abs=1e-9)
    for name in names:
        assert ours["per_class"][name]["auc"] == pytest.approx(score.per_category.loc[name, "auc"], abs=1e-9)
    assert 0.3 < ours["balanced_accuracy"] < 0.95  # a non-trivial case


def test_read_isic_predictions_aligns_by_image_and_names_what_is_missing(tmp_path):
    path = isic_csv.write_isic_predictions(tmp_path / "p.csv", ["a.jpg", "b.jpg", "c.jpg"], np.array([0.1, 0.2, 0.3]),
                                     ["benign", "malignant"])
    got = isic_csv.read_isic_predictions(path, ["c.jpg", "a.jpg"], ["benign", "malignant"])
    assert got[:, 1] == pytest.approx([0.3, 0.1]) and got[:, 0] == pytest.approx([0.7, 0.9])
    with pytest.raises(ValueError, match=r"p\.csv: no prediction for 1 of 2 image\(s\)"):
        isic_csv.read_isic_predictions(path, ["a.jpg", "zzz.jpg"], ["benign", "malignant"])
    with pytest.raises(ValueError, match="missing column"):
        isic_csv.read_isic_predictions(path, ["a.jpg"], ["nevus", "melanoma"])
