"""`python -m helpers predict`: ranked labels of a saved model on your own images.

Tiny untrained models (32 px) and generated images: what is checked is the
plumbing -- which model, which labels, ranking, threshold, skipped files,
JSON shape, exit codes -- not accuracy.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from image_factory import save, textured
from model_factory import (
    BINARY_THRESHOLD,
    HAM_CLASSES,
    image_folder,
    keras_probability,
    save_binary_model,
    save_multiclass_models,
)
from PIL import Image

from helpers.apps import cli, predict
from helpers.data import labels, layouts
from helpers.models import saved

JSON_KEYS = {"path", "model", "model_file", "backend", "labels", "decision", "threshold",
             "threshold_source", "disclaimer"}


def run_cli(*argv: str) -> int:
    """`python -m helpers predict ARGV` through the same parser set-up and entry point."""
    return cli.main(["predict", *argv])


@pytest.fixture
def binary(out_dir):
    return save_binary_model(out_dir)


@pytest.fixture
def images(tmp_path):
    return image_folder(tmp_path / "mine")


def _assert_ranked(labels):
    probs = [lab["probability"] for lab in labels]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_folder_is_walked_and_bad_files_are_skipped(binary, images):
    predictions, skipped = predict.predict_paths(None, [images["rgb"].parent])
    predicted = {p["path"] for p in predictions}
    assert predicted == {str(images[k]) for k in ("rgb", "grey", "rgba")}  # nested folder included
    reasons = dict(skipped)
    assert reasons[str(images["broken"])].startswith(layouts.UNREADABLE)
    assert reasons[str(images["text"])].startswith(layouts.NOT_IMAGE)
    assert not any(".DS_Store" in p for p, _ in skipped)  # hidden files are passed over
    for item in predictions:
        assert {lab["label"] for lab in item["labels"]} == set(labels.CLASS_NAMES)
        _assert_ranked(item["labels"])
        assert item["threshold"] == pytest.approx(BINARY_THRESHOLD)
        assert item["decision"] == ("malignant" if item["p_malignant"] >= BINARY_THRESHOLD else "benign")


def test_probability_is_the_models_output_on_training_preprocessing(binary, images):
    predictions, _ = predict.predict_paths("small_cnn", [images["rgba"], images["grey"]])
    for item, key in zip(predictions, ("rgba", "grey")):
        expected = keras_probability(binary, images[key])[0]
        assert item["p_malignant"] == pytest.approx(expected, abs=1e-6)


def test_text_output_ranked_with_decision_and_reminder(binary, images, capsys):
    assert run_cli(str(images["rgb"].parent)) == predict.EXIT_SKIPPED
    captured = capsys.readouterr()
    text = captured.out
    assert "model small_cnn" in text and saved.DISCLAIMER in text
    block = text.split(str(images["rgb"]))[1].split("\n\n")[0].splitlines()
    first, second = (float(line.split()[1]) for line in block[1:3])
    assert first >= second and {block[1].split()[0], block[2].split()[0]} == {"benign", "malignant"}
    assert "threshold 0.370" in block[3] and "chosen on validation" in block[3]
    assert "broken.jpg" in captured.err and "notes.txt" in captured.err
    assert "2 file(s) skipped" in captured.err
    assert "broken.jpg" not in text  # stdout has predictions only


def test_json_is_one_object_per_image_and_exit_0_when_all_read(binary, images, capsys):
    assert run_cli(str(images["rgb"]), str(images["grey"]), str(images["rgba"]), "--json") == predict.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line, key in zip(lines, ("rgb", "grey", "rgba")):
        item = json.loads(line)
        assert JSON_KEYS <= set(item) and item["path"] == str(images[key])
        assert item["model"] == "small_cnn" and item["backend"] == "keras"
        assert all(set(lab) == {"label", "name", "probability"} for lab in item["labels"])
        _assert_ranked(item["labels"])
        assert item["threshold_source"].startswith("chosen on validation")
        assert item["disclaimer"] == saved.DISCLAIMER


def test_bare_model_file_says_the_threshold_is_the_default(binary, images, tmp_path, capsys):
    elsewhere = tmp_path / "copied.keras"
    shutil.copy(binary, elsewhere)
    assert run_cli(str(images["rgb"]), "--model", str(elsewhere)) == predict.EXIT_OK
    text = capsys.readouterr().out
    assert "default 0.5" in text and "threshold 0.500" in text and "model copied" in text


def test_missing_inputs_and_unknown_model(binary, images, capsys):
    assert run_cli(str(images["rgb"]), "no/such.jpg", "--json") == predict.EXIT_SKIPPED
    assert "no/such.jpg: no such file or folder" in capsys.readouterr().err
    assert run_cli(str(images["rgb"]), "--model", "nope") == predict.EXIT_ERROR
    err = capsys.readouterr().err
    assert "No model 'nope'" in err and "small_cnn" in err


def test_no_model_at_all_is_a_usage_error(out_dir, images, capsys):
    assert run_cli(str(images["rgb"])) == predict.EXIT_ERROR
    assert "make reproduce" in capsys.readouterr().err


def test_seven_class_model_prints_ranked_diagnoses_with_full_names(binary, out_dir, images, capsys):
    save_multiclass_models(out_dir)
    predictions, _ = predict.predict_paths("ham_cnn", [images["rgb"], images["grey"]])
    for item in predictions:
        _assert_ranked(item["labels"])
        assert {lab["label"] for lab in item["labels"]} == set(HAM_CLASSES)
        assert all(lab["name"] == labels.DX_NAMES[lab["label"]] for lab in item["labels"])
        assert item["decision"] == item["labels"][0]["label"] and item["threshold"] is None
        top = {lab["label"]: lab["probability"] for lab in item["labels"]}
        assert item["p_malignant_diagnoses"] == pytest.approx(top["mel"] + top["bcc"] + top["akiec"])
    assert run_cli(str(images["rgb"]), "--model", "ham_cnn") == predict.EXIT_OK
    text = capsys.readouterr().out
    assert "melanocytic nevus" in text and "basal cell carcinoma" in text and "most probable" in text


def test_model_needing_metadata_is_refused(out_dir, images, tmp_path, capsys):
    paths = save_multiclass_models(out_dir)
    assert run_cli(str(images["rgb"]), "--model", "ham_cnn_meta") == predict.EXIT_ERROR
    assert "needs patient metadata" in capsys.readouterr().err
    # Also without a record: the model's second input gives it away.
    bare = tmp_path / "bare_meta.keras"
    shutil.copy(paths["ham_cnn_meta"], bare)
    with pytest.raises(saved.ModelRefusedError, match="metadata"):
        saved.load_predictor(str(bare))


def test_default_model_is_the_best_binary_model_even_with_multiclass_records(binary, out_dir, images):
    save_multiclass_models(out_dir)
    predictor = saved.load_predictor()
    assert predictor.name == "small_cnn" and predictor.binary
    assert np.isclose(predictor.threshold[0], BINARY_THRESHOLD)


def test_each_result_is_printed_as_soon_as_it_is_made(binary, tmp_path, monkeypatch, capsys):
    """A big folder: results come batch by batch (the CLI prints and flushes each), so an
    interrupted run keeps what it printed; nothing past the first batch is decoded before."""
    folder = tmp_path / "many"
    for k in range(predict.CHUNK + 3):
        save(textured(200 + k, 40), folder / f"{k:03d}.jpg")
    decoded = []
    real = predict.load_images
    monkeypatch.setattr(predict, "load_images", lambda paths, size: decoded.append(len(paths)) or real(paths, size))
    got = []
    for kind, value in predict.iter_predictions(saved.load_predictor(None), [folder]):
        got.append(value)
        if len(got) == predict.CHUNK:
            break  # interrupted after the first batch
    assert [Path(v["path"]).name for v in got] == [f"{k:03d}.jpg" for k in range(predict.CHUNK)]
    assert decoded == [predict.CHUNK]
    assert run_cli(str(folder), "--json") == predict.EXIT_OK
    assert len(capsys.readouterr().out.splitlines()) == predict.CHUNK + 3


def test_tiny_images_and_broken_links_are_said(binary, tmp_path, capsys):
    tiny = save(Image.new("RGB", (1, 1), (120, 80, 60)), tmp_path / "one_pixel.png")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert run_cli(str(tmp_path), "--json") == predict.EXIT_SKIPPED
    captured = capsys.readouterr()
    item = json.loads(captured.out)
    assert item["path"] == str(tiny) and "only 1x1 pixels" in item["note"]
    assert "gone.jpg: broken link" in captured.err
    assert run_cli(str(tiny)) == predict.EXIT_OK
    assert "note: only 1x1 pixels: upscaled" in capsys.readouterr().out
