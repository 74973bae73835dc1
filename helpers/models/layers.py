"""Custom Keras layers that live inside saved models (registered for loading).

Every model of the project takes raw RGB pixels in [0, 255] and carries its
own preprocessing as layers, so a saved ``.keras`` file needs nothing re-typed
to be used on a new image.
"""
from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="helpers")
class VGGPreprocess(layers.Layer):
    """VGG16's own ('caffe') preprocessing: RGB to BGR, minus the ImageNet channel means."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=inputs.dtype)


@keras.saving.register_keras_serializable(package="helpers")
class ShadesOfGray(layers.Layer):
    """Shades-of-Gray colour constancy (Finlayson & Trezzi 2004), per image.

    Estimates the illuminant as the Minkowski p-norm mean of each channel and
    rescales the channels so it becomes neutral grey, keeping the brightness.
    Different dermatoscopes and lighting tint images differently; removing the
    tint helps a model carry over to other clinics.
    """

    def __init__(self, power: float = 6.0, **kwargs):
        super().__init__(**kwargs)
        self.power = power

    def call(self, inputs):
        x = keras.ops.maximum(inputs, 0.0)
        illum = keras.ops.power(keras.ops.mean(keras.ops.power(x, self.power), axis=(1, 2), keepdims=True),
                                1.0 / self.power)
        gain = keras.ops.mean(illum, axis=-1, keepdims=True) / (illum + 1e-6)
        return keras.ops.clip(x * gain, 0.0, 255.0)

    def get_config(self):
        return {**super().get_config(), "power": self.power}
