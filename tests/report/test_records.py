"""helpers.report.records: what the notebooks record in results.json."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from helpers import config, results
from helpers.data import arrays, labels
from helpers.evaluation import isic_csv
from helpers.evaluation import multiclass as ev_mc
from helpers.report import records, tables

K = len(labels.DX_CLASSES)


def _probs(pred, k=K):
    P = np.full((len(pred), k), 0.01)
    P[np.arange(len(pred)), pred] = 0.9
    return P


def _record(out, name="lite0_7class", inputs="image", **describe):
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(K), 6)
    P = rng.dirichlet(np.ones(K), size=y.size)
    return records.record_multiclass_model(name, inputs=inputs, y={"val": y, "test": y}, P={"val": P, "test": P},
                                           image_ids=[f"ISIC_{i:07d}" for i in range(y.size)], n_resamples=50,
                                           seed=0, out=out, **describe)


def test_multiclass_record_has_what_predict_and_the_report_need(tmp_path):
    out = config.output_dirs(tmp_path)
    rec = _record(out, model_file="lite0_7class.keras", image_size=128, weights="imagenet", train_seconds=12.3)
    assert rec["task"] == "multiclass" and rec["inputs"] == "image"
    assert rec["class_names"] == list(labels.DX_CLASSES) and rec["model_file"] == "lite0_7class.keras"
    for split in ("validation", "test"):
        m = rec[split]
        assert {"balanced_accuracy", "balanced_accuracy_ci95", "auc_macro_ovr", "top2_accuracy", "per_class",
                "confusion_normalized", "malignant"} <= set(m)
        assert m["malignant"]["classes"] == ["mel", "bcc", "akiec"]
    predictions = pd.read_csv(out.models / rec["predictions"])
    assert list(predictions.columns) == ["image", *labels.DX_CLASSES] and len(predictions) == rec["test"]["n"]
    assert results.load_results(out.results)["multiclass"]["lite0_7class"] == json.loads(json.dumps(rec))
    with pytest.raises(ValueError):
        _record(out, inputs="pixels")


def test_recording_replaces_entries_and_writes_plain_json(tmp_path):
    out = config.output_dirs(tmp_path)
    path = out.results
    path.write_text(json.dumps({"models": {"small_cnn": {}}, "multiclass": {"old_model": {"task": "multiclass"}}}))
    records.reset_multiclass(path)
    assert "multiclass" not in json.loads(path.read_text())
    gain = ev_mc.paired_bootstrap_difference(np.tile(np.arange(7), 5), _probs(np.zeros(35, int)),
                                             _probs(np.tile(np.arange(7), 5)), n_resamples=50)
    gain.pop("distribution")
    _record(out, model_file="a.keras", image_size=128, train_seconds=5.0)
    _record(out, "lite0_7class_metadata", "image+metadata", model_file="b.keras", image_size=128, train_seconds=7.0)
    _record(out, "metadata_logistic_regression", "metadata", train_seconds=0.2)
    records.record_multiclass({"metadata_gain": {**gain, "comparison": "fusion head minus image-only head",
                                                 "nan_value": float("nan")},
                               "data": {"split_counts": {"test": {"nv": 3}}}}, path)
    saved = json.loads(path.read_text())  # strict JSON: NaN became null
    assert saved["models"] == {"small_cnn": {}} and saved["multiclass"]["metadata_gain"]["nan_value"] is None
    models = results.model_records(saved, include_multiclass=True)
    assert set(models) == {"small_cnn", "lite0_7class", "lite0_7class_metadata", "metadata_logistic_regression"}
    records.record_multiclass({"data": {"n_images": 7}}, path)
    assert json.loads(path.read_text())["multiclass"]["data"] == {"n_images": 7}  # replaced, not merged
    table = tables.multiclass_table(saved)
    assert list(table.index) == ["lite0_7class", "lite0_7class_metadata", "metadata_logistic_regression"]
    assert table.loc["lite0_7class_metadata", "inputs"] == "image+metadata"
    assert tables.multiclass_table({}).empty


def test_paired_comparison_reads_each_models_saved_predictions_and_records_it(tmp_path):
    out = config.output_dirs(tmp_path)
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    table = pd.DataFrame({"image_id": [f"img{i}.jpg" for i in range(40)], "split": "test", "label": y})
    split = arrays.SplitArrays(32, {"test": table}, {"test": np.zeros((40, 1))}, {"test": y}, [])
    probs = {"good": np.clip(y * 0.6 + rng.uniform(0, 0.4, 40), 0, 1), "weak": rng.uniform(0, 1, 40)}
    for name, p in probs.items():
        shuffled = rng.permutation(40)  # the CSV's row order must not matter
        isic_csv.write_isic_predictions(out.models / f"{name}.csv", table["image_id"][shuffled].tolist(),
                                         p[shuffled], ["benign", "malignant"])
        results.record_model(name, {"predictions": f"{name}.csv"}, out.results)
    frame = records.paired_auc_comparison("good", ["weak"], split, n_resamples=200, out=out)
    expected = roc_auc_score(y, probs["good"]) - roc_auc_score(y, probs["weak"])
    assert frame.loc["weak", "AUC difference"] == pytest.approx(expected)
    recorded = results.load_results(out.results)["models"]["good"]
    assert recorded["predictions"] == "good.csv"  # merged into the record, not replacing it
    assert recorded["auc_vs"]["weak"]["difference"] == pytest.approx(expected)
    with pytest.raises(LookupError, match="absent is not recorded"):
        records.paired_auc_comparison("good", ["absent"], split, out=out)


def test_mitigation_is_judged_on_the_other_data_sets_validation_split(tmp_path):
    """Judged by the paired interval of the validation AUC difference on a data set neither
    model was trained on, and kept unless that interval lies below zero; the test split is
    reported beside it."""
    out = config.output_dirs(tmp_path)
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 30)
    tables_ = {part: pd.DataFrame({"image_id": [f"{part}{i}.jpg" for i in range(60)], "split": part, "label": y,
                                   "dataset": "ham10000"}) for part in ("val", "test")}
    other = arrays.SplitArrays(32, tables_, {p: np.zeros((60, 1)) for p in tables_}, {p: y for p in tables_}, [])
    probs = {"base": rng.uniform(0, 1, 60), "fixed": np.clip(y * 0.7 + rng.uniform(0, 0.3, 60), 0, 1)}
    probs["same"] = probs["fixed"].copy()  # a mitigation that changes no prediction
    for name, p in probs.items():
        files = {}
        for part in ("val", "test"):
            files[part] = f"{name}_ham10000_{part}.csv"
            isic_csv.write_isic_predictions(out.models / files[part], tables_[part]["image_id"].tolist(), p,
                                             ["benign", "malignant"])
        results.record_model(name, {"by_dataset": {"ham10000": {"val_predictions": files["val"],
                                                                "predictions": files["test"]}}}, out.results)
    verdict = records.record_mitigation("fixed", "base", {"ham10000": other}, n_resamples=200, out=out)
    row = verdict["by_dataset"]["ham10000"]
    assert row["verdict"] == "helps" and verdict["kept"] and row["validation"]["ci95"][0] > 0
    assert row["validation"]["difference"] == pytest.approx(roc_auc_score(y, probs["fixed"])
                                                            - roc_auc_score(y, probs["base"]))
    assert "ham10000 validation images" in row["validation"]["method"]
    assert results.load_results(out.results)["models"]["fixed"]["mitigation"]["kept"] is True
    worse = records.record_mitigation("base", "fixed", {"ham10000": other}, n_resamples=200, out=out)
    assert worse["by_dataset"]["ham10000"]["verdict"] == "hurts" and not worse["kept"]
    assert "trained on neither" in worse["sentence"]
    same = records.record_mitigation("same", "fixed", {"ham10000": other}, n_resamples=200, out=out)
    assert same["by_dataset"]["ham10000"]["verdict"] == "no clear difference" and same["kept"]
    with pytest.raises(LookupError, match="absent has no per-data-set predictions"):
        records.record_mitigation("absent", "base", {"ham10000": other}, out=out)


def test_seed_studies_replace_the_whole_section(tmp_path):
    out = config.output_dirs(tmp_path)
    records.record_seed_studies({"old_model": {1: 0.5, 2: 0.6}}, out)
    studies = records.record_seed_studies({"mlp": {42: 0.70, 43: 0.74, 44: 0.72}, "small_cnn": {42: 0.8}}, out)
    saved = results.load_results(out.results)["seed_study"]
    assert saved == studies and list(saved) == ["mlp", "small_cnn"]  # nothing of the older study survives
    assert saved["mlp"]["seeds"] == [42, 43, 44] and saved["mlp"]["mean"] == pytest.approx(0.72)
    assert saved["mlp"]["sd"] == pytest.approx(0.02) and (saved["mlp"]["min"], saved["mlp"]["max"]) == (0.70, 0.74)
    assert saved["small_cnn"]["sd"] == 0.0  # one seed: no spread to speak of


def test_an_ensembles_copy_study_joins_the_seed_studies_marked_as_copies(tmp_path):
    out = config.output_dirs(tmp_path)
    records.record_seed_studies({"mlp": {42: 0.70, 43: 0.74}}, out)
    copies = [{"seed": s, "test_auc": a, "by_dataset": {"isic-mvb": {"test_auc": a}, "ham10000": {"test_auc": b}}}
              for s, a, b in ((42, 0.95, 0.93), (142, 0.94, 0.94), (242, 0.93, 0.92))]
    study = records.record_copy_study("lite0_both", copies, served=2, out=out)
    saved = results.load_results(out.results)["seed_study"]
    assert list(saved) == ["mlp", "lite0_both"] and saved["lite0_both"] == study
    assert study["seeds"] == [42, 142, 242] and study["mean"] == pytest.approx(0.94)
    assert (study["unit"], study["served_copies"]) == ("copy", 2)
    assert study["by_dataset"]["ham10000"]["test_auc"] == [0.93, 0.94, 0.92]
    assert study["by_dataset"]["ham10000"]["mean"] == pytest.approx(0.93)
    assert study["by_dataset"]["isic-mvb"]["sd"] == pytest.approx(study["sd"])
