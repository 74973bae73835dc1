"""helpers.multiclass (chapter 5): metadata encoding, class weights, the paired
bootstrap, the per-diagnosis subset, the split, the models' shapes and the
results record -- all on small synthetic data."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers import data, multiclass as mc, splits

try:  # tests/ imported as a package or as a plain folder
    from .image_factory import save, textured
except ImportError:
    from image_factory import save, textured


def _meta_table(rows):
    return pd.DataFrame(rows, columns=["age", "sex", "site"]).astype({"age": "float64"})


TRAIN = _meta_table(
    [(40.0, "male", "back")] * 6 + [(60.0, "female", "face")] * 6 + [(np.nan, "unknown", "unknown")] * 2
    + [(50.0, "female", "acral")] * 2)  # acral: rarer than min_count


# ---------------------------------------------------------------- metadata encoding


def test_encoder_is_fitted_on_train_and_names_its_columns():
    enc = mc.MetadataEncoder(min_count=5).fit(TRAIN)
    ages = TRAIN["age"].dropna()
    assert enc.age_mean == pytest.approx(ages.mean()) and enc.age_sd == pytest.approx(ages.std(ddof=0))
    assert enc.sexes == ["female", "male"] and enc.sites == ["back", "face"]  # acral (2) is too rare
    assert enc.feature_names == ["age_z", "age_missing", "sex=female", "sex=male", "sex=unknown",
                                 "site=back", "site=face", "site=unknown"]
    X = enc.transform(TRAIN)
    assert X.shape == (len(TRAIN), enc.n_features) and X.dtype == np.float32
    assert abs(X[~np.isnan(TRAIN["age"].to_numpy()), 0].mean()) < 1e-6  # standardised on train


def test_missing_unknown_rare_and_unseen_values_are_explicit():
    enc = mc.MetadataEncoder(min_count=5).fit(TRAIN)
    new = _meta_table([(np.nan, None, None), (35.0, "nan", "acral"), (70.0, " Male ", "palms and soles"),
                       (45.0, "other", "BACK")])
    X = pd.DataFrame(enc.transform(new), columns=enc.feature_names)
    assert X["age_missing"].tolist() == [1, 0, 0, 0] and X.loc[0, "age_z"] == 0.0
    assert X["sex=unknown"].tolist() == [1, 1, 0, 1]  # missing, "nan" text, unseen category
    assert X.loc[2, "sex=male"] == 1  # case and spaces do not matter
    assert X["site=unknown"].tolist() == [1, 1, 1, 0]  # missing, rare in train, unseen
    assert X.loc[3, "site=back"] == 1
    one_hot = X.drop(columns=["age_z", "age_missing"])
    assert (one_hot.filter(like="sex=").sum(axis=1) == 1).all()
    assert (one_hot.filter(like="site=").sum(axis=1) == 1).all()
    assert np.isfinite(X.to_numpy()).all()


def test_encoder_round_trips_through_json():
    enc = mc.MetadataEncoder().fit(TRAIN)
    again = mc.MetadataEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    np.testing.assert_array_equal(again.transform(TRAIN), enc.transform(TRAIN))
    with pytest.raises(RuntimeError, match="before fit"):
        mc.MetadataEncoder().transform(TRAIN)


def test_metadata_summary_counts_missing_values():
    assert mc.metadata_summary(TRAIN) == {"n": 16, "age_missing": 2, "sex_unknown": 2, "site_unknown": 2}


# ---------------------------------------------------------------- class weights


def test_balanced_weights_equalise_class_totals_and_keep_the_loss_scale():
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    w = mc.class_weights(y, n_classes=4)
    totals = [w[c] * (y == c).sum() for c in range(3)]
    assert totals == pytest.approx([totals[0]] * 3)
    assert np.mean([w[c] for c in y]) == pytest.approx(1.0)  # mean weight per example is 1
    assert w[3] == 1.0  # absent class
    assert mc.class_weights(y, 4, power=0.0) == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}
    soft = mc.class_weights(y, 4, power=0.5)
    assert w[2] / w[0] == pytest.approx(16.0) and soft[2] / soft[0] == pytest.approx(4.0)


def test_loss_choices_and_losses():
    assert mc.LossChoice("none", "ce", 0.0).weights(np.array([0, 1])) is None
    assert {c.name for c in mc.LOSS_CANDIDATES} >= {"cross-entropy, balanced weights"}
    focal = mc.make_loss("focal", gamma=0.0)  # gamma 0 is cross-entropy
    ce = mc.make_loss("ce")
    y = np.array([0, 2, 1], dtype="float32")
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], dtype="float32")
    assert float(focal(y, P)) == pytest.approx(float(ce(y, P)), rel=1e-5)
    assert float(mc.make_loss("focal", gamma=2.0)(y, P)) < float(ce(y, P))
    with pytest.raises(ValueError):
        mc.make_loss("hinge")


# ---------------------------------------------------------------- metrics


def _probs(pred, k=mc.N_CLASSES):
    P = np.full((len(pred), k), 0.01)
    P[np.arange(len(pred)), pred] = 0.9
    return P


def test_balanced_accuracy_is_mean_recall():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 0])
    assert mc.balanced_accuracy(y, _probs(pred)) == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_paired_bootstrap_of_identical_models_is_zero():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    P = _probs(rng.integers(0, 3, 200))
    res = mc.paired_bootstrap_difference(y, P, P, n_resamples=200, seed=1)
    assert res["difference"] == 0 and res["ci95"] == [0.0, 0.0] and res["p_b_not_better"] == 1.0


def test_paired_bootstrap_sees_a_real_improvement():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    a = np.where(rng.random(300) < 0.6, y, (y + 1) % 3)  # ~60% right
    b = np.where(rng.random(300) < 0.5, y, a)  # fixes about half of a's errors
    res = mc.paired_bootstrap_difference(y, _probs(a), _probs(b), n_resamples=500, seed=3)
    point = mc.balanced_accuracy(y, _probs(b)) - mc.balanced_accuracy(y, _probs(a))
    assert res["difference"] == pytest.approx(point) and point > 0.1
    lo, hi = res["ci95"]
    assert 0 < lo < point < hi
    assert res["p_b_not_better"] < 0.01 and res["skipped"] == 0 and res["distribution"].size == 500
    again = mc.paired_bootstrap_difference(y, _probs(a), _probs(b), n_resamples=500, seed=3)
    assert again["ci95"] == res["ci95"]  # seeded


def test_paired_bootstrap_skips_resamples_that_lose_a_class():
    y = np.array([0] * 30 + [1])  # one example of class 1: often missing from a resample
    P = _probs(y, k=2)
    res = mc.paired_bootstrap_difference(y, P, P, n_resamples=300, seed=0)
    assert 0 < res["skipped"] < 300 and res["distribution"].size == 300 - res["skipped"]


# ---------------------------------------------------------------- data


def _ham_table(n_per_dx):
    rows = []
    for dx, n in n_per_dx.items():
        for i in range(n):
            rows.append({"path": f"/x/{dx}{i}.jpg", "dx": dx, "given_split": "train",
                         "label": int(dx in data.MALIGNANT_DX)})
    return pd.DataFrame(rows)


def test_dx_subset_caps_each_diagnosis_and_is_repeatable():
    table = _ham_table({"nv": 50, "mel": 12, "df": 3, "bkl": 30})
    sub = mc.dx_subset(table, 10, seed=0)
    assert sub["dx"].value_counts().to_dict() == {"nv": 10, "mel": 10, "bkl": 10, "df": 3}
    assert sub.index.is_monotonic_increasing
    assert sub.index.equals(mc.dx_subset(table, 10, seed=0).index)
    assert not sub.index.equals(mc.dx_subset(table, 10, seed=1).index)


def test_labels_follow_the_fixed_class_order():
    assert mc.CLASS_NAMES == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert mc.labels(pd.DataFrame({"dx": ["vasc", "AKIEC", "nv"]})).tolist() == [6, 0, 5]
    with pytest.raises(ValueError, match="outside"):
        mc.labels(pd.DataFrame({"dx": ["scc"]}))


def test_ham_split_keeps_lesions_together_and_saves_relative_paths(tmp_path):
    root = tmp_path / "ham"
    rows, k = [], 0
    for dx, n_lesions in {"nv": 14, "mel": 6, "bkl": 6, "bcc": 5, "akiec": 5, "df": 5, "vasc": 5}.items():
        for lesion in range(n_lesions):
            for shot in range(1 + lesion % 2):  # some lesions photographed twice
                image_id = f"ISIC_{k:07d}"
                save(textured(k, 32), root / "images" / f"{image_id}.jpg")
                rows.append({"lesion_id": f"HAM_{dx}{lesion}", "image_id": image_id, "dx": dx,
                             "dx_type": "histo", "age": 50 if k % 7 else "", "sex": "male", "localization": "back"})
                k += 1
    pd.DataFrame(rows).to_csv(root / data.HAM_CSV, index=False)
    table = data.read_dataset(root).table
    split, report = mc.make_ham_split(table, seed=0)
    splits.assert_groups_do_not_straddle(split)
    assert split.groupby("lesion_id")["split"].nunique().max() == 1
    assert set(split["split"]) == {"train", "val", "test"} and report["stratified_by"] == "dx"
    counts = mc.split_counts(split)
    assert sum(sum(c.values()) for c in counts.values()) == len(rows)
    assert list(counts["train"]) == list(mc.CLASS_NAMES)
    path = mc.save_ham_split(split, root, tmp_path / "split_ham10000.csv")
    saved = splits.load_split(path)
    assert saved["path"].str.startswith("images/").all() and len(saved) == len(rows)


# ---------------------------------------------------------------- models


def test_fusion_and_image_heads_shapes():
    head = mc.build_head(16, 5, units=8, metadata_units=4)
    assert [i.name for i in head.inputs] == ["features", "metadata"]
    rng = np.random.default_rng(0)
    P = mc.predict_head(head, rng.random((9, 16), dtype=np.float32), rng.random((9, 5), dtype=np.float32))
    assert P.shape == (9, mc.N_CLASSES) and np.allclose(P.sum(axis=1), 1, atol=1e-5)
    image_only = mc.build_head(16, units=8)
    assert len(image_only.inputs) == 1
    assert mc.predict_head(image_only, rng.random((4, 16), dtype=np.float32)).shape == (4, mc.N_CLASSES)


def test_lite0_split_pool_joint_model_and_saved_files_agree(tmp_path):
    import keras

    from helpers import seeding, training

    seeding.set_seed(0)
    im = mc.build_image_model(32, pretrained=False, units=8)
    assert im.model.input_shape == (None, 32, 32, 3) and im.model.output_shape == (None, mc.N_CLASSES)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 32, 32, 3)).astype("uint8")
    meta = rng.random((5, 4)).astype("float32")
    bottom, top = mc.split_backbone(im, 5)
    direct = mc.predict_array(im.model, x, batch_size=2)  # 5 images: the last batch is padded
    assert direct.shape == (5, mc.N_CLASSES)
    np.testing.assert_allclose(direct, mc.predict_array(mc.top_model(im, top), mc.predict_array(bottom, x)), atol=1e-5)
    pool = mc.augmented_pool(bottom, x, 3, training.Augmentation(), seed=1)
    assert pool.shape == (3, 5) + tuple(top.input.shape[1:]) and pool.dtype == np.float32
    np.testing.assert_array_equal(pool[0], mc.predict_array(bottom, x))  # copy 0: the original images
    assert not np.allclose(pool[1], pool[0])
    with pytest.raises(ValueError):
        mc.split_backbone(im, 16)

    n_trainable = mc.unfreeze_top_blocks(im, 5)
    assert 0 < n_trainable < len(im.model.weights)
    fusion_head = mc.build_head(1280, 4, units=8, metadata_units=4, name="fusion_head")
    joint = mc.joint_model(im, top, fusion_head, 4)
    fit = mc.fit_multiclass(joint, {"maps": pool[0], "metadata": meta}, np.arange(5), {"maps": pool[0], "metadata": meta},
                            np.arange(5), choice=mc.LOSS_CANDIDATES[3], epochs=2, seed=0, n_heads=2)
    assert np.array(fit.history["val_balanced_accuracy_per_head"]).shape == (fit.epochs_run, 2)
    image_part, fused_part = mc.head_outputs(mc.predict_array(joint, {"maps": pool[0], "metadata": meta}), 2)
    fused = mc.assemble_fusion_model(im, fusion_head, 4)
    np.testing.assert_allclose(image_part, mc.predict_array(im.model, x), atol=1e-5)
    np.testing.assert_allclose(fused_part, mc.predict_array(fused, {"pixels": x, "metadata": meta}), atol=1e-5)

    for model, inputs in ((im.model, x.astype("float32")), (fused, [x.astype("float32"), meta])):
        loaded = keras.models.load_model(training.save_model(model, tmp_path / f"{model.name}.keras"))
        np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-5)
    assert [i.name for i in loaded.inputs] == ["pixels", "metadata"]


def test_per_class_recall_and_two_head_loss():
    y = np.array([0, 0, 1, 1])
    recall = mc.per_class_recall(y, _probs(np.array([0, 1, 1, 1])))
    assert recall["akiec"] == 0.5 and recall["bcc"] == 1.0 and recall["vasc"] is None
    P = _probs(np.array([0, 1, 1, 1])).astype("float32")
    one = float(mc.make_loss("ce")(y.astype("float32"), P))
    per_example = mc.make_loss("ce", n_heads=2)(y.astype("float32"), np.hstack([P, P]))  # Keras averages it
    two = float(np.mean(per_example))
    assert two == pytest.approx(2 * one, rel=1e-5)


def test_find_ham_dir_falls_back_to_beside_the_binary_data(tmp_path, monkeypatch):
    from helpers import config
    from helpers.config import DataNotFoundError

    for var in ("SKIN_HAM10000_DIR", "SKIN_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", tmp_path / "no-data-here")
    (tmp_path / "ham10000").mkdir()
    (tmp_path / "isic-mvb").mkdir()
    assert mc.find_ham_dir(tmp_path / "ham10000") == (tmp_path / "ham10000").resolve()
    assert mc.find_ham_dir(None, tmp_path / "isic-mvb") == (tmp_path / "ham10000").resolve()
    with pytest.raises(DataNotFoundError):
        mc.find_ham_dir(tmp_path / "missing", tmp_path / "isic-mvb")  # an explicit folder is never second-guessed


def test_fit_multiclass_keeps_the_best_validation_epoch():
    from helpers import seeding

    seeding.set_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, mc.N_CLASSES, 300)
    X = (np.eye(mc.N_CLASSES)[y] * 4 + rng.normal(size=(300, mc.N_CLASSES))).astype("float32")
    head = mc.build_head(mc.N_CLASSES, units=16, dropout=0.0)
    fit = mc.fit_multiclass(head, X[:200], y[:200], X[200:], y[200:], choice=mc.LOSS_CANDIDATES[2],
                            epochs=4, seed=0, patience=2, learning_rate=1e-2)
    assert fit.epochs_run == len(fit.history["val_balanced_accuracy"]) <= 4
    assert fit.best_val_balanced_accuracy == max(fit.history["val_balanced_accuracy"])
    P = mc.predict_head(head, X[200:])
    assert mc.balanced_accuracy(y[200:], P) == pytest.approx(fit.best_val_balanced_accuracy)  # restored
    assert fit.best_val_balanced_accuracy > 0.5


# ---------------------------------------------------------------- recording


def _record(inputs="image", **extra):
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(mc.N_CLASSES), 6)
    P = rng.dirichlet(np.ones(mc.N_CLASSES), size=y.size)
    return mc.model_record(inputs=inputs, y_val=y, P_val=P, y_test=y, P_test=P, n_resamples=50, seed=0, **extra)


def test_model_record_has_what_predict_and_the_report_need():
    rec = _record(model_file="lite0_7class.keras", image_size=128, weights="imagenet", train_seconds=12.3)
    assert rec["task"] == "multiclass" and rec["inputs"] == "image"
    assert rec["class_names"] == list(mc.CLASS_NAMES) and rec["model_file"] == "lite0_7class.keras"
    for split in ("validation", "test"):
        m = rec[split]
        assert {"balanced_accuracy", "balanced_accuracy_ci95", "auc_macro_ovr", "top2_accuracy", "per_class",
                "confusion_normalized", "malignant"} <= set(m)
        assert m["malignant"]["classes"] == ["mel", "bcc", "akiec"]
    with pytest.raises(ValueError):
        _record(inputs="pixels")


def test_recording_replaces_entries_and_writes_plain_json(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"models": {"small_cnn": {}}, "multiclass": {"old_model": {"task": "multiclass"}}}))
    mc.reset_multiclass(path)
    assert "multiclass" not in json.loads(path.read_text())
    gain = mc.paired_bootstrap_difference(np.tile(np.arange(7), 5), _probs(np.zeros(35, int)),
                                          _probs(np.tile(np.arange(7), 5)), n_resamples=50)
    gain.pop("distribution")
    mc.record_multiclass({"lite0_7class": _record(model_file="a.keras", image_size=128, train_seconds=5.0),
                          "lite0_7class_metadata": _record("image+metadata", model_file="b.keras",
                                                           image_size=128, train_seconds=7.0),
                          "metadata_logistic_regression": _record("metadata", train_seconds=0.2),
                          "metadata_gain": {**gain, "comparison": "fusion head minus image-only head",
                                            "nan_value": float("nan")},
                          "data": {"split_counts": {"test": {"nv": 3}}}}, path)
    saved = json.loads(path.read_text())  # strict JSON: NaN became null
    assert saved["models"] == {"small_cnn": {}} and saved["multiclass"]["metadata_gain"]["nan_value"] is None
    assert set(mc.multiclass_models(saved)) == {"lite0_7class", "lite0_7class_metadata",
                                                "metadata_logistic_regression"}
    assert not any("test" in saved["multiclass"][k] for k in mc.SUMMARY_KEYS if k in saved["multiclass"])
    mc.record_multiclass({"data": {"n_images": 7}}, path)
    assert json.loads(path.read_text())["multiclass"]["data"] == {"n_images": 7}  # replaced, not merged
    text = mc.multiclass_markdown(saved)
    assert sum(line.startswith("| ") for line in text.splitlines()) == 4  # header + 3 models
    assert "lite0_7class_metadata | image+metadata | 128" in text and "Metadata gain" in text
    assert mc.multiclass_markdown({}) == ""
