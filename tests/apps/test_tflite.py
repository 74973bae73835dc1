"""`python -m helpers export-tflite`: conversion, agreement with Keras, predict on .tflite,
benchmark and the "deployment" record -- on a tiny untrained model (32 px)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from image_factory import save, textured
from model_factory import (
    BINARY_THRESHOLD,
    HAM_CLASSES,
    SIZE,
    good_images,
    keras_probability,
    save_binary_model,
    save_multiclass_models,
)

from helpers import config, results
from helpers.apps import cli, predict, tflite
from helpers.data import splits
from helpers.models import saved


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export shared by the tests that only read it (conversion is the slow part)."""
    root = tmp_path_factory.mktemp("export")
    out = config.output_dirs(root / "out")
    keras_path = save_binary_model(out)
    held_out = good_images(root / "held_out", 12)
    report = tflite.export_tflite("small_cnn", out, [root / "held_out"])
    return {"out": out, "keras": keras_path, "report": report, "held_out": held_out}


def test_files_are_written_next_to_the_model(exported):
    keras_path, report = exported["keras"], exported["report"]
    for key, name in (("tflite_float", "small_cnn.tflite"), ("tflite_dynamic", "small_cnn.dynamic.tflite"),
                      ("sidecar", "small_cnn.tflite.json")):
        path = keras_path.with_name(name)
        assert report["files"][key] == {"path": name, "bytes": path.stat().st_size}
        assert path.stat().st_size > 0
    # Quantised weights: clearly smaller than the float file.
    assert report["files"]["tflite_dynamic"]["bytes"] < 0.6 * report["files"]["tflite_float"]["bytes"]
    assert not list(keras_path.parent.glob(".*tmp*"))  # no leftovers of the atomic writes
    sidecar = json.loads(keras_path.with_name("small_cnn.tflite.json").read_text())
    assert sidecar["class_names"] == ["benign", "malignant"] and sidecar["image_size"] == SIZE
    assert sidecar["threshold"] == pytest.approx(BINARY_THRESHOLD)


def test_float_file_agrees_with_keras_and_quantised_changes_are_counted(exported):
    agreement = exported["report"]["agreement"]
    assert agreement["held_out"]["n_used"] == 12 and agreement["threshold"] == pytest.approx(BINARY_THRESHOLD)
    floating, dynamic = agreement["tflite_float"], agreement["tflite_dynamic"]
    assert floating["n"] == 12 and floating["max_abs_diff"] < 1e-4 and floating["decision_changes"] == 0
    assert dynamic["n"] == 12 and 0 <= dynamic["max_abs_diff"] < 0.1
    assert isinstance(dynamic["decision_changes"], int) and 0 <= dynamic["decision_changes"] <= 12
    assert len(dynamic["changed_images"]) == dynamic["decision_changes"]
    held_out = {Path(p).name for p in exported["held_out"]}
    assert agreement["held_out"]["images_under"] == Path(exported["held_out"][0]).parent.name
    assert all(not Path(n).is_absolute() and Path(n).name in held_out for n in dynamic["changed_images"])


def test_predict_accepts_the_tflite_file(exported):
    tflite = exported["keras"].with_name("small_cnn.tflite")
    image = exported["held_out"][0]
    predictions, skipped = predict.predict_paths(str(tflite), [image], out=exported["out"])
    assert not skipped
    item = predictions[0]
    assert item["backend"] == "tflite-float" and item["model"] == "small_cnn"
    assert item["threshold"] == pytest.approx(BINARY_THRESHOLD)  # the record of the .keras it came from
    assert item["p_malignant"] == pytest.approx(keras_probability(exported["keras"], image)[0], abs=1e-5)


def test_moved_tflite_file_reads_its_sidecar_or_says_default(exported, tmp_path):
    out = exported["out"]
    phone = tmp_path / "phone"
    phone.mkdir()
    for name in ("small_cnn.dynamic.tflite", "small_cnn.tflite.json"):
        shutil.copy(out.models / name, phone / name)
    predictor = saved.load_predictor(str(phone / "small_cnn.dynamic.tflite"), out)
    assert predictor.backend == "tflite-dynamic" and predictor.threshold[0] == pytest.approx(BINARY_THRESHOLD)
    (phone / "small_cnn.tflite.json").unlink()
    predictor = saved.load_predictor(str(phone / "small_cnn.dynamic.tflite"), out)
    assert predictor.threshold[0] == 0.5 and "default 0.5" in predictor.threshold[1]


def test_seven_class_model_exports_and_predicts_from_tflite(out_dir, tmp_path):
    save_multiclass_models(out_dir)
    held_out = good_images(tmp_path / "held_out", 6)
    report = tflite.export_tflite("ham_cnn", out_dir, held_out)
    agreement = report["agreement"]
    assert agreement["threshold"] is None  # the decision is the most probable diagnosis
    assert agreement["tflite_float"]["max_abs_diff"] < 1e-4
    assert agreement["tflite_float"]["decision_changes"] == 0
    assert "argmax" in tflite.format_report(tflite._public(report))
    predictions, _ = predict.predict_paths(str(out_dir.models / "ham_cnn.tflite"), held_out[:1])
    assert predictions[0]["backend"] == "tflite-float"
    assert {lab["label"] for lab in predictions[0]["labels"]} == set(HAM_CLASSES)
    with pytest.raises(saved.ModelRefusedError):
        tflite.export_tflite("ham_cnn_meta", out_dir, held_out)


def test_tf_lite_fallback_silences_only_its_deprecation_warning(exported, monkeypatch):
    """Without LiteRT, tf.lite.Interpreter is used; pytest turns warnings into errors, so its
    deprecation notice must be filtered (and nothing else)."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    runner = saved.TFLiteRunner(exported["keras"].with_name("small_cnn.tflite"))
    assert type(runner.interpreter).__module__.startswith("tensorflow.")
    x = np.zeros((2, SIZE, SIZE, 3), dtype=np.uint8)
    assert runner(x).shape == (2, 1)


def test_benchmark_and_record_replace_the_deployment_entry(exported):
    out, report = exported["out"], exported["report"]
    results.update_results({"deployment": {"model": "old", "stale": True}}, out.results)
    bench = tflite.benchmark(report["_keras"], report["_tflite"], report["_x"], runs=3, warmup=1,
                                    n_batches=1)
    record = tflite.record_export(report, bench, out)
    saved = results.load_results(out.results)["deployment"]
    assert saved == record and "stale" not in saved and saved["model"] == "small_cnn"
    assert not any(key.startswith("_") for key in saved)
    for key in ("keras", "tflite_float", "tflite_dynamic"):
        assert saved["latency_ms"][key] > 0 and saved["throughput_ips"][key] > 0
    text = tflite.format_report(saved)
    assert "small_cnn.dynamic.tflite" in text and "latency" in text and "decision changes" in text


def test_chain_step_exports_the_best_model_on_its_test_split(out_dir, tmp_path):
    """export_best_and_benchmark reads the split that notebook 1 saved, as the chain does."""
    save_binary_model(out_dir)
    data_dir = tmp_path / "data"
    rows = []
    for k in range(8):
        split = "test" if k % 2 else "train"
        rel = f"{split}/{'malignant' if k % 4 == 1 else 'benign'}/{k}.jpg"
        save(textured(300 + k, 40), data_dir / rel)
        rows.append({"path": rel, "label": int(k % 4 == 1), "group": f"g{k}", "split": split})
    splits.save_split(pd.DataFrame(rows), out_dir.split)
    record = tflite.export_best_and_benchmark(data_dir=str(data_dir))
    assert record["model"] == "small_cnn"
    assert record["agreement"]["held_out"]["n_used"] == 4  # the test images only
    assert record["agreement"]["tflite_float"]["max_abs_diff"] < 1e-4
    assert set(record["latency_ms"]) == {"keras", "tflite_float", "tflite_dynamic"}
    assert results.load_results(out_dir.results)["deployment"]["files"]["tflite_float"]["bytes"] > 0


def test_cli_exit_codes(exported, out_dir, tmp_path, capsys):
    def run(*argv):
        return cli.main(["export-tflite", *argv])

    assert run("--model", "nope", "--images", str(exported["held_out"][0])) == 2
    assert "No model 'nope'" in capsys.readouterr().err
    tflite = exported["keras"].with_name("small_cnn.tflite")
    assert run("--model", str(tflite)) == 2
    assert "already a TFLite file" in capsys.readouterr().err
    bare = tmp_path / "bare.keras"  # a model outside the chain: exported beside it, default threshold
    shutil.copy(exported["keras"], bare)
    assert run("--model", str(bare), "--images", *map(str, exported["held_out"][:3]), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agreement"]["tflite_float"]["n"] == 3 and "latency_ms" not in report
    assert report["agreement"]["threshold"] == 0.5 and (tmp_path / "bare.dynamic.tflite").is_file()
    assert "deployment" not in results.load_results(out_dir.results)  # --record not given
