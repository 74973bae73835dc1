"""Grad-CAM for the project's models: plain CNNs, transfer models whose base
is a nested Model, and ensembles of them (``models.ensemble``: the mean of the
members' maps)."""
from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from ..models.ensemble import ensemble_members


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
    members = ensemble_members(model)
    if members:  # each member looks on its own; their mean map stands for the ensemble
        return np.mean([grad_cam(m, image, cls) for m in members], axis=0)
    x = tf.convert_to_tensor(np.asarray(image, dtype="float32")[None])
    forward = feature_forward(model)
    with tf.GradientTape() as tape:
        tape.watch(x)  # a frozen base has no trainable variables for the tape to follow
        feature_map, logit = forward(x)
        score = logit[:, 0] if cls == 1 else -logit[:, 0]
    return _heat_map(feature_map, tape.gradient(score, feature_map), image.shape[:2]).numpy()


def _heat_map(feature_map, grads, size) -> tf.Tensor:
    """Grad-CAM's map: feature channels weighted by their mean gradient, ReLU,
    scaled to 0..1 and resized to ``size``."""
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))[0]
    cam = cam / (tf.reduce_max(cam) + 1e-8)
    return tf.image.resize(cam[..., None], size)[..., 0]


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


def feature_forward(model: keras.Model) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """A function x -> (feature map of the last conv layer, logit) for ``model``.

    The sub-models it needs are built once, here, so a caller that asks for
    many maps (the web page) does not rebuild them per image.
    """
    owner, conv_name = last_conv_layer(model)
    found = _final_sigmoid(model)
    holder, final = found if found else (None, None)
    if owner is model:
        last_in = final.input if final is not None else model.outputs[0]
        inner = keras.Model(model.inputs, [model.get_layer(conv_name).output, last_in])

        def forward_plain(x):
            fmap, h = inner(x, training=False)
            return fmap, _logit(final, h)
        return forward_plain
    # Transfer model: inputs -> [preprocess] -> base -> head. Split at the base,
    # and run the head up to the input of its final sigmoid layer.
    feats_model = keras.Model(owner.inputs, [owner.get_layer(conv_name).output, owner.outputs[0]])
    head = keras.Model(holder.inputs, final.input) if holder is not None and holder is not model else None

    def forward_transfer(x):
        h = x
        for layer in model.layers[1:]:
            if layer is owner:
                fmap, h = feats_model(h, training=False)
            elif head is not None and layer is holder:
                h = head(h, training=False)
            elif layer is final:
                continue
            else:
                h = layer(h, training=False)
        return fmap, _logit(final, h)
    return forward_transfer


class GradCam:
    """Grad-CAM of one binary model, traced once for a fixed input size.

    ``grad_cam`` rebuilds its graph per call, fine for a notebook figure; the
    web page asks for one map per upload and needs it in tens of milliseconds.
    The maps equal ``grad_cam``'s.
    """

    def __init__(self, model: keras.Model):
        self.image_size = int(model.input_shape[1])
        members = ensemble_members(model)
        self._members = [GradCam(m) for m in members] if members else None
        if self._members:
            return
        forward = feature_forward(model)

        @tf.function(input_signature=[tf.TensorSpec((1, self.image_size, self.image_size, 3), tf.float32),
                                      tf.TensorSpec((), tf.int32)])
        def cam_and_logit(x, cls):
            with tf.GradientTape() as tape:
                tape.watch(x)
                feature_map, logit = forward(x)
                score = tf.where(cls == 1, logit[:, 0], -logit[:, 0])
            size = (self.image_size, self.image_size)
            return _heat_map(feature_map, tape.gradient(score, feature_map), size), logit[0, 0]

        self._fn = cam_and_logit

    def __call__(self, image: np.ndarray, cls: int = 1) -> np.ndarray:
        """Heat map (0..1, the model's input size) of one uint8 image at the model's size."""
        if self._members:
            return np.mean([member(image, cls) for member in self._members], axis=0)
        x = tf.convert_to_tensor(np.asarray(image, dtype="float32")[None])
        cam, _ = self._fn(x, tf.constant(int(cls), tf.int32))
        return cam.numpy()
