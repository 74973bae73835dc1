"""helpers.figures.data and the image statistics it plots."""
import numpy as np
import pandas as pd
from PIL import Image

from helpers.data import images
from helpers.figures import data as figdata


def _image(path, colour, size=(40, 30)):
    Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8)).save(path)
    return str(path)


def test_image_statistics_report_size_mode_and_colour(tmp_path):
    paths = [_image(tmp_path / "red.png", (200, 10, 10)), _image(tmp_path / "grey.png", (100, 100, 100), (64, 64))]
    stats = images.image_statistics(paths)
    assert stats.loc[0, ["width", "height"]].tolist() == [40, 30] and stats.loc[0, "mode"] == "RGB"
    assert stats.loc[0, "mean_r"] > 190 and stats.loc[0, "mean_g"] < 20
    assert abs(stats.loc[1, "brightness"] - 100) < 1 and stats.loc[1, "contrast"] < 1
    fig = figdata.plot_image_statistics(stats, [0, 1])
    assert len(fig.axes) == 3


def test_metadata_plot_uses_only_columns_with_values():
    table = pd.DataFrame({"label": [0, 1, 0, 1], "age": [30.0, None, 60.0, 70.0],
                          "sex": ["male", "female", "unknown", None], "site": [None] * 4})
    fig = figdata.plot_metadata(table)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["age (years)", "sex"]
    assert figdata.plot_metadata(pd.DataFrame({"label": [0, 1]})) is None
    ham = pd.DataFrame({"dx": ["nv", "mel", "nv", "bcc"], "age": [30.0, 70.0, 40.0, 80.0],
                        "sex": ["male", "female", "male", "male"], "site": ["back", "face", "back", "face"]})
    fig = figdata.plot_metadata(ham, by="dx")
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["age (years)", "sex", "body site"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["bcc", "mel", "nv"]
