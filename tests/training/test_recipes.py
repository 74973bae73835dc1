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
