"""Grad-CAM for the project's models: plain CNNs and transfer models whose base
is a nested Model."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def last_conv_layer(model: keras.Model) -> tuple[keras.Model, str]:
    """The innermost model holding the last feature-map (4-D, non-pooling) layer, and its name."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model):
            try:
                return last_conv_layer(layer)
            except ValueError:
                continue
        pooling = isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))
        if not pooling and not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4:
            return model, layer.name
    raise ValueError(f"{model.name} has no feature-map layer for Grad-CAM")


def grad_cam(model: keras.Model, image: np.ndarray, cls: int = 1) -> np.ndarray:
    """Grad-CAM heat map (0..1, image size) for class ``cls`` (1 malignant, 0 benign).

    The score differentiated is the logit (the input of the final sigmoid), as
    in the Grad-CAM paper: the gradient of a saturated probability (P = 1.00)
    underflows to zero and would give an empty map for the most confident
    images. For benign the score is minus the logit.

    Works for a plain CNN and for a transfer model whose base is a nested Model:
    the graph is rebuilt layer by layer so the nested base's feature map is reachable.
    """
    x = tf.convert_to_tensor(np.asarray(image, dtype="float32")[None])
    owner, conv_name = last_conv_layer(model)
    with tf.GradientTape() as tape:
        tape.watch(x)  # a frozen base has no trainable variables for the tape to follow
        feature_map, logit = _forward_with_features(model, owner, conv_name, x)
        score = logit[:, 0] if cls == 1 else -logit[:, 0]
    grads = tape.gradient(score, feature_map)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))[0]
    cam = cam / (tf.reduce_max(cam) + 1e-8)
    return tf.image.resize(cam[..., None], image.shape[:2]).numpy()[..., 0]


def _final_sigmoid(model: keras.Model) -> tuple[keras.Model, keras.layers.Layer] | None:
    """(innermost model holding the last layer, that layer) when the model ends in
    a sigmoid Dense layer, directly or as the last layer of a nested head."""
    last = model.layers[-1]
    if isinstance(last, keras.Model):
        return _final_sigmoid(last)
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.sigmoid:
        return model, last
    return None


def _logit(final: keras.layers.Layer | None, h):
    """The pre-sigmoid output of ``final`` for its input ``h`` (or ``h`` itself
    when there is no sigmoid layer to undo)."""
    if final is None:
        return h
    return tf.matmul(h, final.kernel) + (final.bias if final.use_bias else 0.0)


def _forward_with_features(model, owner, conv_name, x):
    """Run ``model`` on ``x`` returning (feature map of ``conv_name`` in ``owner``, logit)."""
    found = _final_sigmoid(model)
    holder, final = found if found else (None, None)
    if owner is model:
        last_in = final.input if final is not None else model.outputs[0]
        inner = keras.Model(model.inputs, [model.get_layer(conv_name).output, last_in])
        fmap, h = inner(x, training=False)
        return fmap, _logit(final, h)
    # Transfer model: inputs -> [preprocess] -> base -> head. Split at the base,
    # and run the head up to the input of its final sigmoid layer.
    feats_model = keras.Model(owner.inputs, [owner.get_layer(conv_name).output, owner.outputs[0]])
    h = x
    for layer in model.layers[1:]:
        if layer is owner:
            fmap, h = feats_model(h, training=False)
        elif layer is holder and holder is not model:
            h = keras.Model(holder.inputs, final.input)(h, training=False)
        elif layer is final:
            continue
        else:
            h = layer(h, training=False)
    return fmap, _logit(final, h)
