"""`python -m helpers calibrate`: a threshold refitted on a clinic's own labelled images,
saved beside the model, used by predict and evaluate, and never trusted on its own images."""
import json

import pytest
from image_factory import save, textured
from model_factory import save_binary_model, save_multiclass_models

from helpers.apps import cli
from helpers.models import saved


def _clinic(root, n_per_class=20, first_seed=300):
    seed = first_seed
    for cls in ("benign", "malignant"):
        for i in range(n_per_class):
            save(textured(seed, 40), root / cls / f"{i}.jpg")
            seed += 1
    return root


@pytest.fixture
def binary(out_dir):
    return save_binary_model(out_dir)


def test_refitted_threshold_is_saved_and_used_by_predict_and_evaluate(binary, out_dir, tmp_path, capsys):
    clinic = _clinic(tmp_path / "my_clinic")
    assert cli.main(["calibrate", "--data", str(clinic), "--target-sensitivity", "0.8"]) == 0
    said = capsys.readouterr().out
    assert "refitted on 40 images (20 malignant) of my_clinic" in said and "optimistic" in said
    record = json.loads(saved.clinic_file(binary).read_text())
    assert record["n"] == 40 and record["target_sensitivity"] == 0.8 and len(record["sha256"]) == 40
    assert record["on_these_images"]["at_refitted_threshold"]["sensitivity"] >= 0.8

    image = next((clinic / "benign").glob("*.jpg"))
    assert cli.main(["predict", str(image), "--json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["threshold"] == pytest.approx(record["threshold"]) and "refitted on 40 images" in item["threshold_source"]
    assert cli.main(["predict", str(image), "--json", "--threshold", "validation"]) == 0
    assert json.loads(capsys.readouterr().out)["threshold_source"].startswith("chosen on validation")

    assert cli.main(["evaluate", "--data", str(clinic), "--json", "--resamples", "50"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["threshold"] == pytest.approx(record["threshold"])
    assert "40 image(s) are those the clinic threshold was refitted on" in captured.err
    other = _clinic(tmp_path / "more_of_my_clinic", n_per_class=6, first_seed=500)
    cli.main(["evaluate", "--data", str(other), "--json", "--resamples", "50"])
    assert "refitted on" not in capsys.readouterr().err


def test_too_few_images_or_a_seven_class_model_is_refused(binary, out_dir, tmp_path, capsys):
    small = _clinic(tmp_path / "small", n_per_class=3)
    assert cli.main(["calibrate", "--data", str(small)]) == 2
    assert "needs at least 30 images" in capsys.readouterr().err
    assert not saved.clinic_file(binary).exists()
    save_multiclass_models(out_dir)
    assert cli.main(["calibrate", "--data", str(_clinic(tmp_path / "c")), "--model", "ham_cnn"]) == 2
    assert "seven-class model" in capsys.readouterr().err


def test_the_margin_needs_enough_malignant_images_and_can_be_turned_off(binary, tmp_path, capsys):
    clinic = _clinic(tmp_path / "c15", n_per_class=15)
    # 15 malignant images: 0.9**15 leaves 79% < 80%, so the margin cannot be reached; said, exit 1, still saved.
    assert cli.main(["calibrate", "--data", str(clinic)]) == 1
    assert "Label at least 16 malignant images" in capsys.readouterr().err
    record = json.loads(saved.clinic_file(binary).read_text())
    assert record["confidence"] == 0.8 and record["confidence_reached"] == pytest.approx(1 - 0.9**15)
    margin = record["threshold"]
    assert cli.main(["calibrate", "--data", str(clinic), "--confidence", "0"]) == 0
    plain = json.loads(saved.clinic_file(binary).read_text())
    assert plain["confidence"] is None and "on these images" in capsys.readouterr().out
    # The margin never sits above the plain refit: it calls at least as many images malignant.
    assert margin <= plain["threshold"]
    assert cli.main(["calibrate", "--data", str(clinic), "--confidence", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
