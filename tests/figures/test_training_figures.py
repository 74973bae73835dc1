"""helpers.figures.training: curves, the kept epoch and the start of fine-tuning."""
from __future__ import annotations

import io

import matplotlib.colors
import pytest

from helpers.figures import style
from helpers.figures.training import training_curves
from helpers.training.fitting import FitResult


def _history(n):
    return {"loss": [1 / (i + 1) for i in range(n)], "val_loss": [1.2 / (i + 1) for i in range(n)],
            "auc": [0.6 + 0.03 * i for i in range(n)], "val_auc": [0.55 + 0.02 * i for i in range(n)]}


def test_fit_results_mark_kept_epoch_and_finetuning_and_keep_colours():
    # 3 head-only epochs, then 4 fine-tuning epochs; epoch 6 kept
    two_stage = FitResult(_history(7), seconds=1.0, epochs_run=7, best_epoch=6, best_score=0.65,
                          finetune_epochs_run=4)
    fig = training_curves({"lite0_both": two_stage, "small_cnn": _history(5)}, best_epochs={"small_cnn": 2})
    loss_ax, auc_ax = fig.axes
    kept = {round(line.get_xdata()[0], 3): matplotlib.colors.to_hex(line.get_color()) for line in auc_ax.lines
            if line.get_linestyle() == ":"}
    assert kept == {6: style.MODEL_COLOURS["lite0_both"].lower(), 2: style.MODEL_COLOURS["small_cnn"].lower()}
    # the fine-tuning band sits between epoch 3 (last head-only) and epoch 4 (first fine-tuning)
    (band,) = auc_ax.patches
    assert 3 < band.get_x() < band.get_x() + band.get_width() < 4
    assert band.get_x() + band.get_width() / 2 == pytest.approx(3.5)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "lite0_both validation" in legend and "fine-tuning starts" in legend
    assert "kept epoch (best on validation)" in legend
    assert auc_ax.get_legend() is None and loss_ax.get_legend() is None  # no legend over the curves
    fig.savefig(io.BytesIO(), format="png", dpi=40)  # constrained layout: saved without tight_layout
    assert not style.small_texts(fig)


def test_plain_histories_have_no_finetuning_mark():
    fig = training_curves({"mlp": _history(4)})
    assert not fig.axes[1].patches
    assert "fine-tuning starts" not in [t.get_text() for t in fig.legends[0].get_texts()]
