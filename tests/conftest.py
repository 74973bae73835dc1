"""Shared test set-up: headless plotting, quiet TensorFlow, outputs in tmp."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """The notebook chain (about half the suite's time) first: under `make test`, pytest-xdist
    hands whole files to two workers in this order, so one worker runs the chain while the
    other runs everything else, instead of the chain starting last."""
    items.sort(key=lambda item: item.get_closest_marker("chain") is None)  # stable: order kept otherwise


def real_data_dir(name: str = "isic-mvb") -> Path | None:
    """The shared real data set beside the repository (or $SKIN_DATA_DIR), if present."""
    env = os.environ.get("SKIN_DATA_DIR")
    for candidate in ([Path(env)] if env and name == "isic-mvb" else []) + [REPO.parent / "shared" / "data" / name]:
        if candidate.is_dir():
            return candidate.resolve()
    return None


@pytest.fixture(scope="session")
def isic_mvb_dir() -> Path:
    data = real_data_dir("isic-mvb")
    if data is None:
        pytest.skip("real data not found: set SKIN_DATA_DIR or put ../shared/data/isic-mvb beside the repo")
    return data


@pytest.fixture
def out_dir(tmp_path, monkeypatch):
    """Send figures, models and results of the code under test to a tmp folder."""
    monkeypatch.setenv("SKIN_OUTPUT_DIR", str(tmp_path / "out"))
    from helpers import config

    return config.output_dirs()


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test left open, after checking that it lays out as ``save_fig``
    lays it out without a warning and that its text is readable at the saved size
    (issue 15: no font under helpers.figures.style.MIN_FONT_PT) and that no legend hides a bar."""
    yield
    import matplotlib.pyplot as plt

    from helpers.figures import style

    try:
        for num in plt.get_fignums():  # what save_fig does: a figure it would warn on fails here
            if plt.figure(num).get_layout_engine() is None:
                plt.figure(num).tight_layout()
        small = {num: style.small_texts(plt.figure(num)) for num in plt.get_fignums()}
        small = {num: found for num, found in small.items() if found}
        assert not small, f"text under {style.MIN_FONT_PT} pt in a figure: {small}"
        hidden = {num: style.hidden_by_legend(plt.figure(num)) for num in plt.get_fignums()}
        hidden = {num: found for num, found in hidden.items() if found}
        assert not hidden, f"a legend hides data: {hidden}"
    finally:
        plt.close("all")


@pytest.fixture
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    y = np.tile([0, 1], 24)
    x[y == 1, 8:24, 8:24] = 20  # a dark "lesion" makes the classes learnable
    return x, y
