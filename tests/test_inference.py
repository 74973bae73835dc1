"""`python -m helpers evaluate`: a saved model scored on a folder outside the data sets."""
import json

import numpy as np
import pytest
from PIL import Image

from helpers import cli, models, results, seeding, training


@pytest.fixture
def saved_model(out_dir):
    seeding.set_seed(0)
    model = models.build_small_cnn(32)
    training.save_model(model, out_dir.models / "small_cnn.keras")
    results.record_model("small_cnn", {"model_file": "small_cnn.keras", "threshold": 0.37,
                                       "validation": {"auc": 0.8}}, out_dir.results)
    return out_dir


@pytest.fixture
def clinic_folder(tmp_path):
    """A folder per class from 'another clinic', with one corrupt file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "other_clinic"
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / label / f"{i}.jpg")
    (root / "malignant" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_evaluate_json_on_an_external_folder(saved_model, clinic_folder, capsys):
    assert cli.main(["evaluate", "--data", str(clinic_folder), "--json", "--resamples", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "small_cnn" and report["n"] == 10 and report["n_pos"] == 5
    assert report["threshold"] == pytest.approx(0.37) and report["threshold_source"] == "chosen on validation"
    for key in ("auc", "sensitivity", "specificity", "balanced_accuracy"):
        assert 0 <= report[key] <= 1
    lo, hi = report["auc_ci95"]
    assert lo <= report["auc"] <= hi
    assert report["n_skipped"] == 1 and report["skipped"][0]["path"].endswith("broken.jpg")


def test_evaluate_by_path_without_record_uses_and_says_default_threshold(saved_model, clinic_folder, tmp_path, capsys):
    other = tmp_path / "elsewhere.keras"
    other.write_bytes((saved_model.models / "small_cnn.keras").read_bytes())
    assert cli.main(["evaluate", "--model", str(other), "--data", str(clinic_folder), "--resamples", "100"]) == 0
    text = capsys.readouterr().out
    assert "default 0.5" in text and "ROC AUC" in text and "skipped" in text


def test_evaluate_unknown_model_is_a_clear_error(saved_model, clinic_folder, capsys):
    assert cli.main(["evaluate", "--model", "nope", "--data", str(clinic_folder)]) == 2
    err = capsys.readouterr().err
    assert "No model 'nope'" in err and "small_cnn" in err
