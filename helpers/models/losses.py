"""Losses that live inside saved models (registered for loading).

Notebook 5 compiles its seven-class heads with the focal loss, and Keras
stores that in the saved file, even in a nested head: loading the file needs
the class registered, so it lives here, beside the custom layers, where
``models.saved`` imports it (training imports models, never the other way).
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="helpers")
class SparseFocalLoss(keras.losses.Loss):
    """Focal loss (Lin et al. 2017) on integer labels: -(1 - p_t)^gamma * log p_t.

    Down-weights examples the model already gets right, so training time
    goes to the hard (often rare) ones; gamma = 0 is cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, name: str = "sparse_focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        p_t = ops.sum(p * ops.one_hot(y_true, ops.shape(p)[-1], dtype=p.dtype), axis=-1)
        return -ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}
