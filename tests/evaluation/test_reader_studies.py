"""Tests of helpers.evaluation: hand-computed metrics, CIs, calibration, ISIC agreement."""
from __future__ import annotations

from helpers.evaluation import reader_studies


def test_dermatologist_points():
    labels = [d["label"] for d in reader_studies.DERMATOLOGIST_POINTS]
    assert [lab.split(" et al.")[0] for lab in labels] == ["Haenssle", "Brinker", "Marchetti"]
    assert [(d["sensitivity"], d["specificity"]) for d in reader_studies.DERMATOLOGIST_POINTS] == [
        (0.866, 0.713), (0.741, 0.600), (0.82, 0.59)]
    assert all(d["source"] for d in reader_studies.DERMATOLOGIST_POINTS)
    assert "different images" in reader_studies.DERMATOLOGIST_NOTE
