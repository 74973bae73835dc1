import pytest

from helpers import config, results
from helpers.training import recipes


def test_the_recorded_recipe_is_read_back_or_the_missing_notebook_named(tmp_path):
    out = config.output_dirs(tmp_path)
    with pytest.raises(LookupError, match="3_Transfer_Learning_Models"):
        recipes.recorded_recipe("lite0_imagenet", out)
    recipe = recipes.Lite0Recipe(image_size=96, head_epochs=3, finetune_epochs=1, finetune_blocks=2)
    results.record_model("lite0_imagenet", {"seed": 7, "recipe": recipe.as_record()}, out.results)
    record, again = recipes.recorded_recipe("lite0_imagenet", out)
    assert again == recipe and record["seed"] == 7


def test_artefact_stickers_come_from_the_binary_data_sets_training_rows(monkeypatch):
    """A model trained on both archives draws its stickers from the same rows as notebook 4's
    bank (the binary data set's training split), so the two halves are the same and no test
    sticker was seen in training; before, they were cut from a sample of both archives."""
    import numpy as np
    import pandas as pd

    from helpers.data.arrays import DATA_ROOT, HAM_ROOT, SplitArrays

    seen = []
    monkeypatch.setattr(recipes, "training_bank", lambda table, *a: seen.append(table) or {"train": {}})
    rows = [{"path": f"{root}/{i}.jpg", "root": root, "split": "train", "label": i % 2}
            for root in (HAM_ROOT, DATA_ROOT) for i in range(5)]
    both = pd.DataFrame(rows)
    binary = both[both["root"] == DATA_ROOT].reset_index(drop=True)
    for table in (both, binary):
        arrays = SplitArrays(32, {"train": table}, {"train": np.zeros((len(table), 32, 32, 3), np.uint8)},
                             {"train": table["label"].to_numpy()}, [])
        recipes.artefact_augmentation(arrays, seed=0, n_scan=10)
    pd.testing.assert_frame_equal(seen[0], seen[1])  # the same rows, in the same order
    assert set(seen[0]["root"]) == {DATA_ROOT}


def test_a_baseline_recipe_is_recorded_and_read_back_as_one(tmp_path):
    out = config.output_dirs(tmp_path)
    recipe = recipes.BaselineRecipe("small_cnn", image_size=16, epochs=2, augment=True)
    results.record_model("small_cnn", {"seed": 3, "recipe": recipe.as_record()}, out.results)
    record, again = recipes.recorded_recipe("small_cnn", out)
    assert again == recipe and record["recipe"]["kind"] == "baseline"
    with pytest.raises(ValueError, match="no baseline called 'resnet'"):
        recipes.BaselineRecipe("resnet")


def _tiny_split(n=24, size=16, seed=0):
    import numpy as np
    import pandas as pd

    from helpers.data.arrays import SplitArrays

    rng = np.random.default_rng(seed)
    x, y, tables = {}, {}, {}
    for s in ("train", "val", "test"):
        y[s] = np.arange(n) % 2
        # malignant images a little redder, so a model can learn something in two epochs
        x[s] = rng.integers(0, 200, (n, size, size, 3)).astype(np.uint8)
        x[s][y[s] == 1, ..., 0] += 50
        tables[s] = pd.DataFrame({"path": [f"{s}/{i}.jpg" for i in range(n)], "label": y[s]})
    return SplitArrays(size, tables, x, y, [])


def test_the_seed_study_retrains_a_baseline_by_its_recipe(tmp_path, monkeypatch):
    out = config.output_dirs(tmp_path)
    split = _tiny_split()
    monkeypatch.setattr(recipes, "load_split_arrays", lambda size, data_dir, out: split)
    recipe = recipes.BaselineRecipe("mlp", image_size=16, epochs=2, patience=2)
    results.record_model("mlp", {"seed": 5, "weights": "none", "test": {"n": 24, "auc": 0.61},
                                 "recipe": recipe.as_record()}, out.results)
    aucs = recipes.seed_study("mlp", repeats=3, out=out)
    assert list(aucs) == [5, 6, 7] and aucs[5] == 0.61  # the recorded run counts as the first seed
    assert all(0.0 <= a <= 1.0 for a in aucs.values())
    assert recipes.seed_study("mlp", repeats=2, out=out)[6] == aucs[6]  # one seed, one result


def test_a_model_trained_on_both_archives_is_retrained_on_both_and_judged_on_the_binary_test(tmp_path, monkeypatch):
    out = config.output_dirs(tmp_path)
    binary, both = _tiny_split(), _tiny_split(n=40, seed=1)
    for s in ("train", "val", "test"):
        both.tables[s]["dataset"] = ["isic-mvb", "ham10000"] * 20
    asked, trained_on = [], []
    monkeypatch.setattr(recipes, "load_split_arrays",
                        lambda size, data_dir, out, roots=(recipes.DATA_ROOT,): asked.append(roots) or
                        (binary if roots else both))
    real_train = recipes.train_baseline
    monkeypatch.setattr(recipes, "train_baseline",
                        lambda recipe, arrays, seed: trained_on.append(len(arrays.y["train"])) or real_train(recipe, arrays, seed))
    recipe = recipes.BaselineRecipe("mlp", image_size=16, epochs=2, patience=2)
    results.record_model("both", {"seed": 5, "weights": "none", "test": {"n": 24, "auc": 0.7},
                                  "trained_on": ["isic-mvb", "ham10000"], "recipe": recipe.as_record()}, out.results)
    aucs = recipes.seed_study("both", repeats=2, out=out)
    assert asked == [(recipes.DATA_ROOT,), None] and trained_on == [40] and set(aucs) == {5, 6}
    results.record_model("both", {"seed": 5, "weights": "none", "test": {"n": 24, "auc": 0.7},
                                  "trained_on": ["isic-mvb", "isic-2019"], "recipe": recipe.as_record()}, out.results)
    with pytest.raises(ValueError, match="holds ham10000 \\+ isic-mvb: rerun notebooks 1 and 3"):
        recipes.seed_study("both", repeats=2, out=out)


def test_a_recipe_recorded_before_cached_maps_reads_back_as_fine_tuning_on_pixels(tmp_path):
    out = config.output_dirs(tmp_path)
    old = recipes.Lite0Recipe(image_size=96).as_record()
    del old["pool_copies"]  # the field did not exist when earlier runs recorded their recipes
    results.record_model("lite0_imagenet", {"seed": 1, "recipe": old}, out.results)
    assert recipes.recorded_recipe("lite0_imagenet", out)[1].pool_copies is None
    assert recipes.Lite0Recipe(pool_copies=6).as_record()["pool_copies"] == 6


def test_vgg16_is_retrained_by_its_recipe_without_a_new_download_attempt(tmp_path, monkeypatch):
    out = config.output_dirs(tmp_path)
    split = _tiny_split(size=32)
    monkeypatch.setattr(recipes, "load_split_arrays", lambda size, data_dir, out: split)
    tried, real_build = [], recipes.build_vgg16_transfer
    monkeypatch.setattr(recipes, "build_vgg16_transfer",
                        lambda size, try_imagenet=True: tried.append(try_imagenet) or real_build(size, False))
    recipe = recipes.Vgg16Recipe(image_size=32, head_epochs=2, finetune_epochs=1, batch_size=8)
    results.record_model("vgg16_random_init", {"seed": 3, "weights": "none", "test": {"n": 24, "auc": 0.5},
                                               "recipe": recipe.as_record()}, out.results)
    assert recipes.recorded_recipe("vgg16_random_init", out)[1] == recipe
    aucs = recipes.seed_study("vgg16_random_init", repeats=2, out=out)
    assert set(aucs) == {3, 4} and 0.0 <= aucs[4] <= 1.0 and tried == [False]
    tm, fit = recipes.train_vgg16(recipe, split, seed=4, try_imagenet=False)
    assert fit.finetune_epochs_run == 0 and tm.weights == "none"  # random base: the head only
