"""Data augmentation: random changes drawn afresh for every image, every epoch."""
from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class ArtefactAugmentation:
    """Artefacts pasted onto images of *both* classes, then ``base``'s changes.

    If rulers, ink and black bars come as often with benign as with malignant
    training images, they stop predicting the label, and a model has no reason
    to learn them. ``pixels``/``masks`` hold stickers (rulers, ink marks) cut
    from training images (``explain.counterfactual.artefact_bank``) at the
    model's image size: with probability ``sticker_rate`` one of them, turned by
    a random multiple of 90 degrees, is pasted on; with probability
    ``letterbox_rate`` black bars of 3-15% of the side go on two opposite sides.
    """

    pixels: np.ndarray           # (k, size, size, 3) uint8
    masks: np.ndarray            # (k, size, size) bool
    base: Augmentation = field(default_factory=Augmentation)
    sticker_rate: float = 0.3
    letterbox_rate: float = 0.15

    def __post_init__(self):
        if len(self.pixels) != len(self.masks):
            raise ValueError(f"{len(self.pixels)} sticker images but {len(self.masks)} masks")
        self._pixels = tf.constant(np.asarray(self.pixels, np.float32))
        self._masks = tf.constant(np.asarray(self.masks, np.float32)[..., None])

    def _artefacts(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, num=6)
        x = image
        if len(self.pixels) and self.sticker_rate > 0:
            k = tf.random.stateless_uniform([], seeds[0], 0, len(self.pixels), dtype=tf.int32)
            turn = tf.random.stateless_uniform([], seeds[1], 0, 4, dtype=tf.int32)
            sticker, mask = tf.image.rot90(self._pixels[k], turn), tf.image.rot90(self._masks[k], turn)
            on = tf.cast(tf.random.stateless_uniform([], seeds[2]) < self.sticker_rate, tf.float32)
            x = x * (1 - on * mask) + sticker * (on * mask)
        if self.letterbox_rate > 0:
            size = tf.shape(image)[0]
            bar = tf.cast(tf.random.stateless_uniform([], seeds[3], 0.03, 0.15) * tf.cast(size, tf.float32),
                          tf.int32)
            idx = tf.range(size)
            band = tf.cast((idx < bar) | (idx >= size - bar), tf.float32)
            across = tf.random.stateless_uniform([], seeds[4]) < 0.5  # bars left-right or top-bottom
            mask = tf.where(across, band[None, :, None] * tf.ones([size, 1, 1]),
                            band[:, None, None] * tf.ones([1, size, 1]))
            on = tf.cast(tf.random.stateless_uniform([], seeds[5]) < self.letterbox_rate, tf.float32)
            x = x * (1 - on * mask) + 4.0 * on * mask
        return x

    def __call__(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        return self.base(self._artefacts(image, seeds[0]), seeds[1])


def augmented_examples(image: np.ndarray, augment: Augmentation, seed: int) -> np.ndarray:
    """One augmented draw of a uint8 image (for showing what training sees)."""
    out = augment(tf.cast(tf.convert_to_tensor(image), tf.float32), tf.constant([seed, 0], tf.int64))
    return np.asarray(out.numpy().round(), dtype=np.uint8)
