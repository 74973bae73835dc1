import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from helpers import config, evaluation, results, workflow


def test_arrays_from_split_lists_every_unloadable_image(tmp_path, capsys):
    rows = []
    for i, split in enumerate(["train"] * 3 + ["val"] * 2 + ["test"] * 2):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((20, 20, 3), i * 30, dtype=np.uint8)).save(path)
        rows.append({"path": str(path), "split": split, "label": i % 2, "dx": "nv"})
    for name, split in (("bad1.jpg", "train"), ("bad2.jpg", "test")):
        (tmp_path / name).write_bytes(b"not an image")
        rows.append({"path": str(tmp_path / name), "split": split, "label": 1, "dx": "mel"})
    arrays = workflow.arrays_from_split(pd.DataFrame(rows), 16,
                                        labels=lambda part: (part["dx"] == "mel").to_numpy(dtype=int))
    assert {k: len(v) for k, v in arrays.x.items()} == {"train": 3, "val": 2, "test": 2}
    assert arrays.x["train"].shape[1:] == (16, 16, 3) and arrays.y["test"].tolist() == [0, 0]
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in arrays.skipped) == ["bad1.jpg", "bad2.jpg"]
    printed = capsys.readouterr().out
    assert "2 image(s) could not be loaded" in printed and "bad1.jpg" in printed and "bad2.jpg" in printed


def test_the_recorded_recipe_is_read_back_or_the_missing_notebook_named(tmp_path):
    out = config.output_dirs(tmp_path)
    with pytest.raises(LookupError, match="3_Transfer_Learning_Models"):
        workflow.recorded_recipe("lite0_imagenet", out)
    recipe = workflow.Lite0Recipe(image_size=96, head_epochs=3, finetune_epochs=1, finetune_blocks=2)
    results.record_model("lite0_imagenet", {"seed": 7, "recipe": recipe.as_record()}, out.results)
    record, again = workflow.recorded_recipe("lite0_imagenet", out)
    assert again == recipe and record["seed"] == 7


def test_paired_comparison_reads_each_models_saved_predictions_and_records_it(tmp_path):
    out = config.output_dirs(tmp_path)
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    table = pd.DataFrame({"image_id": [f"img{i}.jpg" for i in range(40)], "split": "test", "label": y})
    arrays = workflow.SplitArrays(32, {"test": table}, {"test": np.zeros((40, 1))}, {"test": y}, [])
    probs = {"good": np.clip(y * 0.6 + rng.uniform(0, 0.4, 40), 0, 1), "weak": rng.uniform(0, 1, 40)}
    for name, p in probs.items():
        shuffled = rng.permutation(40)  # the CSV's row order must not matter
        evaluation.write_isic_predictions(out.models / f"{name}.csv", table["image_id"][shuffled].tolist(),
                                         p[shuffled], ["benign", "malignant"])
        results.record_model(name, {"predictions": f"{name}.csv"}, out.results)
    frame = workflow.paired_auc_comparison("good", ["weak"], arrays, n_resamples=200, out=out)
    expected = roc_auc_score(y, probs["good"]) - roc_auc_score(y, probs["weak"])
    assert frame.loc["weak", "AUC difference"] == pytest.approx(expected)
    recorded = results.load_results(out.results)["models"]["good"]
    assert recorded["predictions"] == "good.csv"  # merged into the record, not replacing it
    assert recorded["auc_vs"]["weak"]["difference"] == pytest.approx(expected)
    with pytest.raises(LookupError, match="absent is not recorded"):
        workflow.paired_auc_comparison("good", ["absent"], arrays, out=out)
