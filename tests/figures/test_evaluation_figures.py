"""Tests of helpers.evaluation_figures: each plot returns a Figure with the expected content."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless; no window may open during tests

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.evaluation import binary as ev
from helpers.evaluation import reader_studies
from helpers.figures import evaluation as evf
from helpers.figures import style


@pytest.fixture
def figure_check():
    """Render the caller's figure as a PNG; the autouse fixture of conftest.py then lays it
    out as save_fig does (a layout warning fails the test), checks that no text is under
    9 pt and closes it."""
    def check(fig):
        assert isinstance(fig, Figure)
        fig.savefig(io.BytesIO(), format="png", dpi=40)
        return fig

    return check


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


def test_a_model_keeps_its_colour_in_every_figure(figure_check):
    y, p = _data()
    roc = figure_check(evf.plot_roc({"small_cnn": (y, p), "lite0_both": (y, p**2)},
                                    operating_points={"lite0_both": (0.9, 0.5)}, show_dermatologists=False))
    pr = figure_check(evf.plot_pr({"lite0_both": (y, p**2), "small_cnn": (y, p)}))  # other order
    colour = matplotlib.colors.to_hex
    for fig in (roc, pr):
        lines = {line.get_label().split(" (")[0]: colour(line.get_color()) for line in fig.axes[0].lines}
        assert lines["lite0_both"] == style.MODEL_COLOURS["lite0_both"].lower()
        assert lines["small_cnn"] == style.MODEL_COLOURS["small_cnn"].lower()
    op = next(line for line in roc.axes[0].lines if "operating point" in line.get_label())
    assert colour(op.get_color()) == style.MODEL_COLOURS["lite0_both"].lower()
    # a per-data-set label keeps the model's colour; an unknown name gets the same colour every time
    assert style.model_colour("lite0_both (HAM10000)") == style.MODEL_COLOURS["lite0_both"]
    assert style.model_colour("my_model") == style.model_colour("my_model") not in style.MODEL_COLOURS.values()


def test_reliability_bins_show_their_counts(figure_check):
    y, p = _data(400)
    ax = figure_check(evf.plot_reliability(y, p)).axes[0]
    bins = [b for b in ev.calibration_metrics(y, p)["bins"] if b["count"]]
    assert [t.get_text() for t in ax.texts] == [str(b["count"]) for b in bins]
    assert sum(int(t.get_text()) for t in ax.texts) == 400


def test_roc_panels_one_per_test_set_with_operating_points(figure_check):
    y, p = _data()
    y2, p2 = _data(seed=3)
    panels = {"isic-mvb test (n = 120)": ({"lite0_both": (y, p), "small_cnn": (y, p**3)},
                                          {"lite0_both": (0.9, 0.6), "small_cnn": (0.8, 0.5)}),
              "HAM10000 test (n = 120)": ({"lite0_both": (y2, p2)}, {"lite0_both": (0.85, 0.7)})}
    fig = figure_check(evf.plot_roc_panels(panels))
    assert [ax.get_title() for ax in fig.axes] == list(panels)
    # curves, operating points, one legend entry for the points, chance
    assert len(fig.axes[0].lines) == 2 + 2 + 1 + 1 and len(fig.axes[1].lines) == 1 + 1 + 1 + 1
    assert len(fig.axes[0].get_legend().get_texts()) == 2 + 1 + 1
    assert not any("reader study" in line.get_label() for ax in fig.axes for line in ax.lines)


def test_threshold_sweep_matches_the_confusion_at_the_threshold(figure_check):
    y, p = _data(300)
    fig = figure_check(evf.plot_threshold_sweep({"test": (y, p)}, threshold=0.5, model_name="lite0_both"))
    sens_line, spec_line = fig.axes[0].lines[:2]
    at = int(np.flatnonzero(np.isclose(sens_line.get_xdata(), 0.5))[0])
    m = ev.binary_metrics(y, p, 0.5)
    assert sens_line.get_ydata()[at] == pytest.approx(m["sensitivity"])
    assert spec_line.get_ydata()[at] == pytest.approx(m["specificity"])
    assert np.all(np.diff(sens_line.get_ydata()) <= 0) and np.all(np.diff(spec_line.get_ydata()) >= 0)


def test_seed_studies_show_each_seed_and_each_bootstrap_band(figure_check):
    studies = {"small_cnn": {"seeds": [42, 43, 44], "test_auc": [0.80, 0.86, 0.83], "mean": 0.83, "sd": 0.03},
               "lite0_imagenet": {"seeds": [42, 43], "test_auc": [0.94, 0.93], "mean": 0.935, "sd": 0.007}}
    fig = figure_check(evf.plot_seed_studies(studies, {"small_cnn": [0.78, 0.85], "lite0_imagenet": [0.92, 0.96]}))
    (ax,) = fig.axes
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert [list(d.get_ydata()) for d in dots] == [[0.80, 0.86, 0.83], [0.94, 0.93]]
    assert [t.get_text() for t in ax.texts] == ["42", "43", "44", "42", "43"]  # each dot names its seed
    bands = sorted((b.get_y(), b.get_y() + b.get_height()) for b in ax.patches)
    assert bands == [pytest.approx((0.78, 0.85)), pytest.approx((0.92, 0.96))]
    assert "sd 0.030" in ax.get_xticklabels()[0].get_text()


def test_auc_by_dataset_legend_hides_no_bar(figure_check):
    # eight models, AUCs as high as the real run's on both archives: the bars reach the
    # lower right corner, where the legend used to sit
    names = ["mlp", "small_cnn", "vgg16_random_init", "lite0_imagenet", "lite0_random_init", "lite0_both",
             "lite0_artefact_aug", "lite0_7class (malignant)"]
    aucs = [0.78, 0.86, 0.73, 0.87, 0.75, 0.92, 0.87, 0.92]
    by_model = {n: {d: {"test": {"auc": a - k * 0.05, "auc_ci95": [a - k * 0.05 - 0.02, a - k * 0.05 + 0.02]}}
                    for k, d in enumerate(["isic-mvb", "ham10000"])} for n, a in zip(names, aucs)}
    fig = evf.plot_auc_by_dataset(by_model)
    figure_check(fig)
    fig.tight_layout()
    assert style.hidden_by_legend(fig) == []
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == names  # every model named once
