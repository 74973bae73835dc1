"""The classification head every transfer model shares, binary or seven-class."""
from __future__ import annotations

from typing import Sequence

import keras
from keras import layers, regularizers


def build_head(feature_shape: Sequence[int], n_classes: int = 1, *, units: int = 128, dropout: float = 0.4,
               l2: float = 1e-4, input_dropout: bool = False, n_metadata: int = 0, metadata_units: int = 32,
               name: str = "head") -> keras.Model:
    """Pool (feature maps only), [dropout,] one ReLU layer, dropout, output.

    The output is one sigmoid unit, P(malignant), for ``n_classes == 1``; else
    a softmax over ``n_classes`` (whose output layer also carries the L2
    penalty, as the seven-class models were trained). With ``n_metadata``
    the patient metadata goes through a small ReLU layer of its own first, so
    about twenty metadata inputs are not drowned out by 1280 image features,
    and is concatenated before the output; the inputs are then named
    ``features`` and ``metadata``.

    A separate Model so it can first be trained on features extracted once
    (a frozen base costs a full forward pass per epoch otherwise).
    """
    reg = regularizers.l2(l2)
    features = keras.Input(shape=tuple(feature_shape), name="features")
    x = layers.GlobalAveragePooling2D()(features) if len(feature_shape) == 3 else features
    if input_dropout:
        x = layers.Dropout(dropout, name="feature_dropout")(x)
    x = layers.Dense(units, activation="relu", kernel_regularizer=reg, name="hidden")(x)
    x = layers.Dropout(dropout, name="hidden_dropout")(x)
    inputs = [features]
    if n_metadata:
        meta = keras.Input((n_metadata,), name="metadata")
        m = layers.Dense(metadata_units, activation="relu", kernel_regularizer=reg, name="metadata_dense")(meta)
        x = layers.Concatenate(name="fusion")([x, m])
        inputs.append(meta)
    if n_classes == 1:
        outputs = layers.Dense(1, activation="sigmoid", name="p_malignant")(x)
    else:
        outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="dx")(x)
    return keras.Model(inputs if n_metadata else features, outputs, name=name)
