"""helpers.training.imbalance and helpers.training.multiclass: class weights, losses,
and the seven-class fit that keeps the best validation epoch."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import seeding
from helpers.data.labels import DX_CLASSES
from helpers.evaluation import multiclass as ev_mc
from helpers.models import heads
from helpers.training import imbalance
from helpers.training import multiclass as mc_training

K = len(DX_CLASSES)


def _probs(pred, k=K):
    P = np.full((len(pred), k), 0.01)
    P[np.arange(len(pred)), pred] = 0.9
    return P


def test_balanced_weights_equalise_class_totals_and_keep_the_loss_scale():
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    w = imbalance.class_weights(y, n_classes=4)
    totals = [w[c] * (y == c).sum() for c in range(3)]
    assert totals == pytest.approx([totals[0]] * 3)
    assert np.mean([w[c] for c in y]) == pytest.approx(1.0)  # mean weight per example is 1
    assert w[3] == 1.0  # absent class
    assert imbalance.class_weights(y, 4, power=0.0) == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}
    soft = imbalance.class_weights(y, 4, power=0.5)
    assert w[2] / w[0] == pytest.approx(16.0) and soft[2] / soft[0] == pytest.approx(4.0)


def test_loss_choices_and_losses():
    assert imbalance.LossChoice("none", "ce", 0.0).weights(np.array([0, 1])) is None
    assert {c.name for c in imbalance.LOSS_CANDIDATES} >= {"cross-entropy, balanced weights"}
    focal = imbalance.make_loss("focal", gamma=0.0)  # gamma 0 is cross-entropy
    ce = imbalance.make_loss("ce")
    y = np.array([0, 2, 1], dtype="float32")
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], dtype="float32")
    assert float(focal(y, P)) == pytest.approx(float(ce(y, P)), rel=1e-5)
    assert float(imbalance.make_loss("focal", gamma=2.0)(y, P)) < float(ce(y, P))
    with pytest.raises(ValueError):
        imbalance.make_loss("hinge")


def test_per_class_recall_and_two_head_loss():
    y = np.array([0, 0, 1, 1])
    recall = ev_mc.per_class_recall(y, _probs(np.array([0, 1, 1, 1])), DX_CLASSES)
    assert recall["akiec"] == 0.5 and recall["bcc"] == 1.0 and recall["vasc"] is None
    P = _probs(np.array([0, 1, 1, 1])).astype("float32")
    one = float(imbalance.make_loss("ce")(y.astype("float32"), P))
    per_example = imbalance.make_loss("ce", n_heads=2)(y.astype("float32"), np.hstack([P, P]))  # Keras averages it
    two = float(np.mean(per_example))
    assert two == pytest.approx(2 * one, rel=1e-5)


def test_fit_multiclass_keeps_the_best_validation_epoch():
    seeding.set_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 300)
    X = (np.eye(K)[y] * 4 + rng.normal(size=(300, K))).astype("float32")
    head = heads.build_head((K,), K, units=16, dropout=0.0, input_dropout=True)
    result = mc_training.fit_multiclass(head, X[:200], y[:200], X[200:], y[200:], choice=imbalance.LOSS_CANDIDATES[2],
                            epochs=4, seed=0, patience=2, learning_rate=1e-2)
    assert result.epochs_run == len(result.history["val_balanced_accuracy"]) <= 4
    assert result.best_score == max(result.history["val_balanced_accuracy"])
    P = mc_training.predict_head(head, X[200:])
    assert ev_mc.balanced_accuracy(y[200:], P) == pytest.approx(result.best_score)  # restored
    assert result.best_score > 0.5
