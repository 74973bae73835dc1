"""Several binary models as one saved model: the mean of their logits.

Models trained by one recipe with different seeds disagree near the threshold
(lite0_both's validation AUC moved by up to 0.009 across seeds 42, 43 and 44);
their mean logit is steadier than any one of them and keeps every consumer of a
``.keras`` file working unchanged (``predict``, ``evaluate``, ``calibrate``, the
web page, the TFLite export). Each member keeps its own preprocessing layers.
Grad-CAM of an ensemble is the mean of its members' maps
(``explain.gradcam``).
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="helpers")
class MeanLogit(layers.Layer):
    """sigmoid(mean_i logit(p_i)) of the members' P(malignant), each clipped to
    [eps, 1 - eps] so a saturated member counts as a large logit, not an infinite one."""

    def __init__(self, eps: float = 1e-7, **kwargs):
        super().__init__(**kwargs)
        self.eps = eps

    def call(self, inputs):
        ops = keras.ops
        logits = []
        for p in inputs:
            p = ops.clip(p, self.eps, 1.0 - self.eps)
            logits.append(ops.log(p) - ops.log(1.0 - p))
        return ops.sigmoid(ops.mean(ops.stack(logits, axis=0), axis=0))

    def get_config(self):
        return {**super().get_config(), "eps": self.eps}


def mean_logit_ensemble(members: Sequence[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model whose P(malignant) is the mean logit of ``members`` (binary models,
    one sigmoid output each, the same input size). The members are wrapped as
    ``member_0``, ``member_1``, ... so their own names never clash."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    shapes = {tuple(m.input_shape[1:]) for m in members}
    if len(shapes) != 1:
        raise ValueError(f"the members take different inputs {sorted(shapes)}: train them at one image size")
    if any(tuple(m.output_shape[1:]) != (1,) for m in members):
        raise ValueError("every member must give one P(malignant) per image (a binary model)")
    pixels = keras.Input(shape=shapes.pop(), name="pixels")
    wrapped = [keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i}") for i, m in enumerate(members)]
    return keras.Model(pixels, MeanLogit(name="mean_logit")([w(pixels) for w in wrapped]), name=name)


def ensemble_members(model: keras.Model) -> list[keras.Model] | None:
    """The members of a ``mean_logit_ensemble`` (None for any other model)."""
    if not any(isinstance(layer, MeanLogit) for layer in model.layers):
        return None
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
