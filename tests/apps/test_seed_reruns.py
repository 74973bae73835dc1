"""The seven-class seed study reruns notebook 5 in a scratch copy of the outputs (runner faked here;
the chain test runs the real notebook)."""
from __future__ import annotations

import json

import nbformat
import pytest

from helpers import config, results
from helpers.apps import seed_reruns


def _record(seed: int, ba: float, mel: float = 0.5) -> dict:
    return {"task": "multiclass", "seed": seed, "image_size": 128, "finetune_blocks": 12, "pool_copies": 6,
            "loss": {"loss": "focal" if seed == 42 else "ce"}, "epochs_run": 14,
            "validation": {"balanced_accuracy": ba - 0.01},
            "test": {"balanced_accuracy": ba, "per_class": {"mel": {"recall": mel, "precision": 0.3}}}}


def _section(seed: int, image: float, fused: float, **changed) -> dict:
    return {"lite0_7class": _record(seed, image), "lite0_7class_metadata": {**_record(seed, fused), **changed},
            "metadata_gain": {"difference": fused - image, "ci95": [fused - image - 0.03, fused - image + 0.03],
                              "validation_difference": 0.01}}


@pytest.fixture
def out(tmp_path):
    out = config.output_dirs(tmp_path / "run")
    results.update_results({"multiclass": _section(42, 0.68, 0.72)}, out.results)
    out.split.write_text("path,label\n")
    (out.root / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(metadata={"papermill": {"parameters": {"quick": True, "image_size": 64}}})
    nbformat.write(nb, out.root / "notebooks" / seed_reruns.MULTICLASS_NOTEBOOK)
    return out


def test_reruns_get_the_recorded_parameters_and_a_scratch_copy(out):
    calls = []

    def fake_run(work, notebook, params):
        work = config.output_dirs(work)
        assert work.root != out.root and work.split.exists()  # a copy of the split, never the run's own folder
        calls.append((notebook, params))
        saved = results.load_results(work.results)
        saved["multiclass"] = _section(params["seed"], 0.66, 0.67)
        work.results.write_text(json.dumps(saved))

    study = seed_reruns.multiclass_seed_study(3, out, log=lambda *a: None, run=fake_run)
    assert [p["seed"] for _, p in calls] == [43, 44]
    assert all(p["quick"] is True and p["image_size"] == 64 for _, p in calls)
    assert study["seeds"] == [42, 43, 44]
    assert study["lite0_7class_metadata"]["test_balanced_accuracy"] == [0.72, 0.67, 0.67]
    assert study["lite0_7class_metadata"]["test"]["min"] == 0.67
    assert study["metadata_gain"]["test"] == pytest.approx([0.04, 0.01, 0.01])
    assert study["metadata_gain"]["test_ci_above_zero"] == 1
    # the loss is chosen on validation in every run, so a seed may choose another one
    assert study["lite0_7class"]["loss"] == ["focal", "ce", "ce"]
    assert study["parameters_from"] == f"this run's notebooks/{seed_reruns.MULTICLASS_NOTEBOOK}"
    # the chain's own record is untouched
    assert results.load_results(out.results)["multiclass"]["lite0_7class"]["seed"] == 42


def test_a_rerun_that_trained_differently_is_refused(out):
    def other_size(work, notebook, params):
        work = config.output_dirs(work)
        work.results.write_text(json.dumps({"multiclass": _section(params["seed"], 0.6, 0.6, image_size=224)}))

    with pytest.raises(ValueError, match="differently.*image_size"):
        seed_reruns.multiclass_seed_study(2, out, log=lambda *a: None, run=other_size)


def test_without_notebook_5s_records_it_says_what_to_run(tmp_path):
    with pytest.raises(ValueError, match="run notebook 5 first"):
        seed_reruns.multiclass_seed_study(2, config.output_dirs(tmp_path), log=lambda *a: None, run=None)
