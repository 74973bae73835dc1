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
