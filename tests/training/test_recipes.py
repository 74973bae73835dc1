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


def test_a_lite0_recipe_with_members_trains_each_seed_and_saves_their_mean_logit(tmp_path):
    import numpy as np

    from helpers.models import ensemble
    from helpers.report import records
    from helpers.training.fitting import predict_proba

    split = _tiny_split(size=32)
    for s in ("train", "val", "test"):
        split.tables[s]["dataset"] = "isic-mvb"
        split.tables[s]["image_id"] = [f"{s}_{i}" for i in range(len(split.y[s]))]
    recipe = recipes.Lite0Recipe(image_size=32, head_epochs=1, finetune_epochs=1, finetune_blocks=1, batch_size=8,
                                 pool_copies=2, members=2)
    assert recipes.member_seeds(recipe, 7) == [7, 107]
    tm, fit = recipes.train_lite0(recipe, split, seed=7, pretrained=False)
    assert len(tm.members) == len(fit.members) == 2 and ensemble.ensemble_members(tm.model)
    p = [predict_proba(m, split.x["test"]) for m in tm.members]
    assert not np.allclose(p[0], p[1])  # two seeds, two models
    logit = [np.log(q) - np.log1p(-q) for q in p]
    mean = 1 / (1 + np.exp(-(logit[0] + logit[1]) / 2))
    assert predict_proba(tm.model, split.x["test"]) == pytest.approx(mean, abs=1e-5)
    assert fit.seconds == pytest.approx(sum(f.seconds for f in fit.members))
    assert fit.history == fit.members[0].history and fit.epochs_run == fit.members[0].epochs_run
    one, _ = recipes.train_lite0(recipes.Lite0Recipe(**{**recipe.as_record(), "members": 1}), split, seed=107,
                                 pretrained=False)
    assert one.members is None
    assert predict_proba(one.model, split.x["test"]) == pytest.approx(p[1], abs=1e-6)  # member 2 is seed 107
    out = config.output_dirs(tmp_path)
    results.record_model("lite0_both", {"seed": 7, "recipe": recipe.as_record()}, out.results)
    table = records.record_members("lite0_both", tm.members, [7, 107], split, out=out)
    assert list(table.index) == [7, 107]
    saved = results.load_results(out.results)["models"]["lite0_both"]
    assert [m["seed"] for m in saved["members"]] == [7, 107]
    assert saved["members"][0]["test_auc"] == pytest.approx(
        records.binary_metrics(split.y["test"], p[0], 0.5)["auc"])
    assert recipes.recorded_recipe("lite0_both", out)[1] == recipe


def test_an_ensemble_is_studied_one_copy_at_a_time_on_both_archives(tmp_path, monkeypatch):
    """notebook 6's cheap seed study of lite0_both: notebook 3's copies as recorded, then
    further copies with the next member seeds, trained on both archives and scored alone on each."""
    from types import SimpleNamespace

    out = config.output_dirs(tmp_path)
    binary, ham, both = _tiny_split(), _tiny_split(n=30, seed=2), _tiny_split(n=40, seed=1)
    for split, name in ((binary, "isic-mvb"), (ham, "ham10000")):
        for s in ("train", "val", "test"):
            split.tables[s]["dataset"] = name
    monkeypatch.setattr(recipes, "load_split_arrays",
                        lambda size, data_dir, out, roots=(recipes.DATA_ROOT,): binary if roots else both)
    monkeypatch.setattr(recipes, "load_other_data_sets", lambda size, data_dir, out: {"ham10000": ham})
    trained = []
    monkeypatch.setattr(recipes, "train_lite0", lambda recipe, arrays, seed, pretrained=True: trained.append(
        (recipe.members, len(arrays.y["train"]), seed, pretrained)) or (SimpleNamespace(model=seed), None))
    # the "model" is its seed; it ranks images by redness (malignant are redder) and, from seed 342 on, backwards
    monkeypatch.setattr(recipes, "predict_proba",
                        lambda model, x: (1 if model < 342 else -1) * x[..., 0].mean(axis=(1, 2)) / 255)
    recorded = [{"seed": s, "test_auc": a, "by_dataset": {"isic-mvb": {"validation_auc": a, "test_auc": a},
                                                          "ham10000": {"validation_auc": b, "test_auc": b}}}
                for s, a, b in ((42, 0.9, 0.8), (142, 0.92, 0.85))]
    recipe = recipes.Lite0Recipe(image_size=16, members=2)
    results.record_model("lite0_both", {"seed": 42, "weights": "imagenet", "test": {"n": 24}, "members": recorded,
                                        "trained_on": ["ham10000", "isic-mvb"], "recipe": recipe.as_record()},
                         out.results)
    rows = recipes.copy_seed_study("lite0_both", copies=4, out=out)
    assert rows[:2] == recorded and [r["seed"] for r in rows] == [42, 142, 242, 342]
    assert trained == [(1, 40, 242, True), (1, 40, 342, True)]  # single copies, on both archives' training images
    assert rows[2]["by_dataset"]["isic-mvb"]["test_auc"] == rows[2]["test_auc"] == 1.0
    assert rows[2]["by_dataset"]["ham10000"]["test_auc"] == 1.0 and rows[3]["test_auc"] == 0.0
    trained.clear()
    assert recipes.copy_seed_study("lite0_both", copies=2, out=out) == recorded and trained == []
    results.record_model("lite0_imagenet", {"seed": 42, "weights": "imagenet", "test": {"n": 24},
                                            "recipe": recipes.Lite0Recipe(image_size=16).as_record()}, out.results)
    with pytest.raises(ValueError, match="lite0_imagenet is not an ensemble"):
        recipes.copy_seed_study("lite0_imagenet", copies=3, out=out)
