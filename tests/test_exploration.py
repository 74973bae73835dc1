import numpy as np
import pandas as pd
from PIL import Image

from helpers import exploration


def _image(path, colour, size=(40, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8)).save(path)
    return str(path)


def test_image_statistics_report_size_mode_and_colour(tmp_path):
    paths = [_image(tmp_path / "red.png", (200, 10, 10)), _image(tmp_path / "grey.png", (100, 100, 100), (64, 64))]
    stats = exploration.image_statistics(paths)
    assert stats.loc[0, ["width", "height"]].tolist() == [40, 30] and stats.loc[0, "mode"] == "RGB"
    assert stats.loc[0, "mean_r"] > 190 and stats.loc[0, "mean_g"] < 20
    assert abs(stats.loc[1, "brightness"] - 100) < 1 and stats.loc[1, "contrast"] < 1
    fig = exploration.plot_image_statistics(stats, [0, 1])
    assert len(fig.axes) == 3


def test_metadata_plot_uses_only_columns_with_values():
    table = pd.DataFrame({"label": [0, 1, 0, 1], "age": [30.0, None, 60.0, 70.0],
                          "sex": ["male", "female", "unknown", None], "site": [None] * 4})
    assert exploration.available_metadata(table) == ["age", "sex"]
    fig = exploration.plot_metadata_by_class(table)
    assert [ax.get_title() for ax in fig.axes] == ["age (years)", "sex"]
    assert exploration.available_metadata(pd.DataFrame({"label": [0, 1]})) == []
