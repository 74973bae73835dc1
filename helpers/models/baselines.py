"""The two baselines of notebook 2, trained from scratch on small images.

Both take raw pixels and scale them to [0, 1] themselves, and end in one
sigmoid unit: P(malignant).
"""
from __future__ import annotations

import keras
from keras import layers, regularizers


def _inputs(image_size: int) -> keras.KerasTensor:
    return keras.Input(shape=(image_size, image_size, 3), name="pixels")


def build_mlp(image_size: int, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.3,
              name: str = "mlp") -> keras.Model:
    """A multilayer perceptron on flattened, 1/255-scaled pixels: the floor to beat."""
    inputs = _inputs(image_size)
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Flatten()(x)
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_malignant")(x)
    return keras.Model(inputs, outputs, name=name)


def build_small_cnn(image_size: int, l2: float = 1e-4, dropout: float = 0.4,
                    name: str = "small_cnn") -> keras.Model:
    """Three conv blocks (32/64/128 filters, batch norm, max pooling), dense 128, L2."""
    reg = regularizers.l2(l2)
    inputs = _inputs(image_size)
    x = layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, activation="relu", kernel_regularizer=reg)(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_malignant")(x)
    return keras.Model(inputs, outputs, name=name)
