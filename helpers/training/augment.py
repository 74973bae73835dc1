"""Data augmentation: random changes drawn afresh for every image, every epoch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass
class Augmentation:
    """Random changes applied afresh every epoch (never one fixed augmented copy).

    Dermoscopy has no preferred orientation, so flips and 90-degree rotations are
    label-preserving; mild colour jitter and crops help beyond one archive's camera.
    """

    flips: bool = True
    rot90: bool = True
    brightness: float = 0.08  # fraction of the 0-255 range
    contrast: float = 0.15
    saturation: float = 0.15
    crop_fraction: float = 0.85  # smallest crop side before resizing back

    def __call__(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, num=8)
        size = tf.shape(image)[:2]
        x = image / 255.0
        if self.flips:
            x = tf.image.stateless_random_flip_left_right(x, seeds[0])
            x = tf.image.stateless_random_flip_up_down(x, seeds[1])
        if self.rot90:
            k = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
            x = tf.image.rot90(x, k)
        if self.crop_fraction < 1:
            frac = tf.random.stateless_uniform([], seeds[3], self.crop_fraction, 1.0)
            crop = tf.cast(tf.cast(size, tf.float32) * frac, tf.int32)
            x = tf.image.stateless_random_crop(x, tf.concat([crop, [3]], 0), seeds[4])
            x = tf.image.resize(x, size)
        if self.brightness:
            x = tf.image.stateless_random_brightness(x, self.brightness, seeds[5])
        if self.contrast:
            x = tf.image.stateless_random_contrast(x, 1 - self.contrast, 1 + self.contrast, seeds[6])
        if self.saturation:
            x = tf.image.stateless_random_saturation(x, 1 - self.saturation, 1 + self.saturation,
                                                     seeds[7])
        return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def augmented_examples(image: np.ndarray, augment: Augmentation, seed: int) -> np.ndarray:
    """One augmented draw of a uint8 image (for showing what training sees)."""
    out = augment(tf.cast(tf.convert_to_tensor(image), tf.float32), tf.constant([seed, 0], tf.int64))
    return np.asarray(out.numpy().round(), dtype=np.uint8)
