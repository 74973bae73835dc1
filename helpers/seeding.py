"""One seed for Python, NumPy and TensorFlow, with deterministic TF ops."""
from __future__ import annotations

import os
import random

import keras
import numpy as np
import tensorflow as tf


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed every random generator the project uses.

    With ``deterministic`` TensorFlow's op determinism is switched on, so two
    runs with the same seed on the same machine give bit-identical weights.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
