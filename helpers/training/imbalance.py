"""Class imbalance: class weights and the focal loss, and the candidates the
seven-class chapter compares on validation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from ..data.labels import DX_CLASSES
from ..models.losses import SparseFocalLoss


def class_weights(y: np.ndarray, n_classes: int, power: float = 1.0) -> dict[int, float]:
    """Per-class loss weights (n / (k * n_c)) ** power, normalised to a count-weighted mean of 1.

    ``power=1`` is "balanced" (every class weighs as much in total), 0.5 a
    softer square-root version, 0 no weighting. A class absent from ``y``
    gets weight 1 (it never occurs, so the value does not matter). The
    normalisation keeps the loss scale, hence the learning rate, comparable.
    """
    y = np.asarray(y, dtype="int64").ravel()
    counts = np.bincount(y, minlength=n_classes).astype("float64")
    present = counts > 0
    raw = np.ones(n_classes)
    raw[present] = (y.size / (present.sum() * counts[present])) ** power
    raw /= (raw * counts).sum() / max(y.size, 1)
    return {c: float(raw[c]) for c in range(n_classes)}


def make_loss(kind: str, gamma: float = 2.0, n_heads: int = 1):
    """``"ce"`` (sparse categorical cross-entropy) or ``"focal"``.

    ``n_heads > 1``: the model's output is ``n_heads`` softmaxes side by side
    (see ``joint_model``); the loss is the sum of each head's loss on the
    same labels.
    """
    # One head: the usual mean over the batch. Several: per-example values,
    # summed over heads here and averaged by Keras (the function gets wrapped).
    reduction = "sum_over_batch_size" if n_heads == 1 else None
    if kind == "ce":
        base = keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
    elif kind == "focal":
        base = SparseFocalLoss(gamma=gamma, reduction=reduction)
    else:
        raise ValueError(f"loss must be 'ce' or 'focal', not {kind!r}")
    if n_heads == 1:
        return base

    def summed(y_true, y_pred):
        k = ops.shape(y_pred)[-1] // n_heads
        return sum(base(y_true, y_pred[:, h * k:(h + 1) * k]) for h in range(n_heads))

    return summed


@dataclass(frozen=True)
class LossChoice:
    """One way to handle the imbalance: a loss and a class-weight power."""

    name: str
    loss: str = "ce"
    weight_power: float = 1.0
    gamma: float = 2.0

    def weights(self, y: np.ndarray, n_classes: int = len(DX_CLASSES)) -> dict[int, float] | None:
        return class_weights(y, n_classes, power=self.weight_power) if self.weight_power else None

    def describe(self) -> dict[str, Any]:
        return {"loss": self.loss, "class_weight_power": self.weight_power,
                **({"focal_gamma": self.gamma} if self.loss == "focal" else {})}


#: The candidates compared on validation (on frozen ImageNet features: cheap).
LOSS_CANDIDATES = (
    LossChoice("cross-entropy, no weights", "ce", 0.0),
    LossChoice("cross-entropy, sqrt-balanced weights", "ce", 0.5),
    LossChoice("cross-entropy, balanced weights", "ce", 1.0),
    LossChoice("focal (gamma 2), balanced weights", "focal", 1.0),
)
