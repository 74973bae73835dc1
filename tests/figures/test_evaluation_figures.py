"""Tests of helpers.evaluation_figures: each plot returns a Figure with the expected content."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless; no window may open during tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.evaluation import binary as ev
from helpers.evaluation import reader_studies
from helpers.figures import evaluation as evf


@pytest.fixture
def figure_check():
    """Run the caller's save path (tight_layout + PNG) and close every figure afterwards."""
    made = []

    def check(fig):
        assert isinstance(fig, Figure)
        made.append(fig)
        fig.tight_layout()  # what helpers.figures.save_fig does; must not warn
        fig.savefig(io.BytesIO(), format="png", dpi=40)
        return fig

    yield check
    for fig in made:
        plt.close(fig)


def _data(n=120, seed=0, shift=1.5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + shift * (y - 0.5))))
    return y, p


def test_plot_roc(figure_check):
    y, p = _data()
    y2, p2 = _data(seed=1, shift=0.5)
    fig = figure_check(evf.plot_roc({"model A": (y, p), "model B": (y2, p2)},
                                    operating_points={"model A": (0.9, 0.4)}))
    (ax,) = fig.axes
    # 2 curves + 1 operating point + 3 reader studies + chance diagonal
    assert len(ax.lines) == 2 + 1 + len(reader_studies.DERMATOLOGIST_POINTS) + 1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("model A (AUC ") for lab in labels)
    assert sum("published reader study, different images" in lab for lab in labels) == 3
    reader_markers = {line.get_marker() for line in ax.lines if "reader study" in line.get_label()}
    assert len(reader_markers) == 3  # distinct markers
    op = next(line for line in ax.lines if "operating point" in line.get_label())
    assert op.get_xdata()[0] == pytest.approx(0.6) and op.get_ydata()[0] == pytest.approx(0.9)
    # the operating point takes its curve's colour
    assert op.get_color() == ax.lines[0].get_color()


def test_plot_roc_without_readers(figure_check):
    y, p = _data()
    fig = figure_check(evf.plot_roc({"m": (y, p)}, None, show_dermatologists=False))
    assert len(fig.axes[0].lines) == 2


def test_plot_pr(figure_check):
    y, p = _data()
    fig = figure_check(evf.plot_pr({"a": (y, p), "b": (y, p**2)}))
    (ax,) = fig.axes
    assert len(ax.lines) == 3  # two curves, one shared prevalence line
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("a (AP ")


def test_plot_confusion_binary_dict_and_matrix(figure_check):
    cm = ev.binary_metrics([0, 0, 0, 1, 1], [0.1, 0.6, 0.2, 0.9, 0.4], 0.5)["confusion"]
    fig = figure_check(evf.plot_confusion(cm, ["benign", "malignant"], title="test"))
    counts_ax, norm_ax = fig.axes
    assert [t.get_text() for t in counts_ax.texts] == ["2", "1", "1", "1"]
    assert [t.get_text() for t in norm_ax.texts] == ["0.67", "0.33", "0.50", "0.50"]
    fig3 = figure_check(evf.plot_confusion(np.array([[3, 1, 0], [0, 2, 2], [0, 0, 0]]), ["a", "b", "c"]))
    assert len(fig3.axes) == 2 and len(fig3.axes[1].texts) == 9
    assert fig3.axes[1].texts[-1].get_text() == "0.00"  # empty row drawn as zeros
    with pytest.raises(ValueError):
        evf.plot_confusion([[1, 2], [3, 4]], ["a", "b", "c"])


def test_plot_multiclass_confusion(figure_check):
    names = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    cm = np.diag([5, 40, 6, 3, 9, 2, 2]) + 1
    fig = figure_check(evf.plot_multiclass_confusion(cm, names))
    ax, colorbar_ax = fig.axes
    assert len(ax.texts) == 49
    assert ax.texts[0].get_text() == "0.50\n(6)"  # 6 of 12 MEL
    assert [t.get_text() for t in ax.get_xticklabels()] == names


def test_plot_reliability(figure_check):
    y, p = _data(400)
    fig = figure_check(evf.plot_reliability(y, p))
    ax, hist_ax = fig.axes
    assert len(ax.lines) == 2  # diagonal + before
    ece = ev.calibration_metrics(y, p)["ece"]
    assert f"ECE before {ece:.3f}" in ax.get_title()

    p_after = ev.apply_temperature(p, 2.0)
    fig2 = figure_check(evf.plot_reliability(y, p, p_after=p_after))
    ax2, hist2 = fig2.axes
    assert len(ax2.lines) == 3
    assert "after" in ax2.get_title()
    assert len(hist2.patches) == 20  # 10 bins x 2 histograms
