"""Training: tf.data input with on-the-fly augmentation, early stopping on
validation, class weights, prediction and atomic model saving."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .atomic import atomic_path

AUTOTUNE = tf.data.AUTOTUNE


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


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                  augment: Augmentation | None) -> tuple[tf.data.Dataset, int]:
    """An endless, seeded, reshuffled and (optionally) augmented stream; returns (ds, steps/epoch)."""
    n = len(x)
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("float32")))
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    if augment is not None:
        # One deterministic seed pair per element; the stream never restarts, so
        # every epoch draws new augmentations.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda xy, s: (augment(tf.cast(xy[0], tf.float32), s), xy[1]),
            num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), b))
    return ds.batch(batch_size).prefetch(AUTOTUNE), math.ceil(n / batch_size)


def eval_dataset(x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 64) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y.astype("float32")))
    cast = (lambda a: tf.cast(a, tf.float32)) if y is None else (lambda a, b: (tf.cast(a, tf.float32), b))
    return ds.map(cast).batch(batch_size).prefetch(AUTOTUNE)


def balanced_class_weight(y: np.ndarray) -> dict[int, float]:
    """Weights that make both classes count equally in the loss."""
    counts = np.bincount(y.astype(int), minlength=2)
    return {c: float(len(y) / (2 * counts[c])) for c in range(2) if counts[c]}


@dataclass
class FitResult:
    history: dict[str, list[float]]
    seconds: float
    epochs_run: int
    best_epoch: int
    finetune_epochs_run: int = 0  # of ``epochs_run``: stage 2 of ``fit_transfer``
    seconds_per_epoch: float = field(init=False)

    def __post_init__(self):
        self.seconds_per_epoch = self.seconds / max(self.epochs_run, 1)


def fit(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
        y_val: np.ndarray, *, epochs: int, seed: int, batch_size: int = 32,
        learning_rate: float = 1e-3, patience: int = 5, augment: Augmentation | None = None,
        verbose: int = 2) -> FitResult:
    """Compile and train with early stopping on validation AUC, restoring the best epoch."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    ds, steps = train_dataset(x_train, y_train, batch_size, seed, augment)
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                         restore_best_weights=True)
    start = time.perf_counter()
    hist = model.fit(ds, steps_per_epoch=steps, epochs=epochs, validation_data=eval_dataset(x_val, y_val),
                     class_weight=balanced_class_weight(y_train), callbacks=[stop], shuffle=False,
                     verbose=verbose)
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best = int(np.argmax(history["val_auc"])) + 1 if "val_auc" in history else len(history["loss"])
    return FitResult(history, seconds, len(history["loss"]), best)


def fit_transfer(tm, x: dict[str, np.ndarray], y: dict[str, np.ndarray], *, head_epochs: int,
                 finetune_epochs: int, unfreeze, seed: int, batch_size: int = 32,
                 head_lr: float = 1e-3, finetune_lr: float = 1e-4, patience: int = 4,
                 augment: Augmentation | None = None, verbose: int = 2) -> FitResult:
    """Two-stage transfer learning on a ``models.TransferModel``.

    1. Features of the frozen base are computed once; the head is trained on them.
    2. ``unfreeze(tm)`` opens the top of the base, and the whole model is
       fine-tuned with a lower learning rate and on-the-fly augmentation.
    Returns the combined history (stage 2 epochs follow stage 1's) and time.
    """
    start = time.perf_counter()
    feats = {s: tm.features.predict(eval_dataset(x[s]), verbose=0) for s in ("train", "val")}
    stage1 = fit(tm.head, feats["train"], y["train"], feats["val"], y["val"], epochs=head_epochs,
                 seed=seed, batch_size=batch_size, learning_rate=head_lr, patience=patience,
                 verbose=verbose)
    history = {k: list(v) for k, v in stage1.history.items()}
    epochs_run, finetune_run = stage1.epochs_run, 0
    if finetune_epochs > 0:
        unfreeze(tm)
        stage2 = fit(tm.model, x["train"], y["train"], x["val"], y["val"], epochs=finetune_epochs,
                     seed=seed, batch_size=batch_size, learning_rate=finetune_lr, patience=patience,
                     augment=augment, verbose=verbose)
        for k, v in stage2.history.items():
            history.setdefault(k, []).extend(v)
        epochs_run, finetune_run = epochs_run + stage2.epochs_run, stage2.epochs_run
    seconds = time.perf_counter() - start
    best = int(np.argmax(history["val_auc"])) + 1
    return FitResult(history, seconds, epochs_run, best, finetune_run)


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(malignant) for each image, as a flat float64 array."""
    return np.asarray(model.predict(eval_dataset(x, batch_size=batch_size), verbose=0),
                      dtype="float64").reshape(-1)


def save_model(model: keras.Model, path: str | Path) -> Path:
    """Save as .keras, without optimizer state (a third of the size; only inference
    needs the file). Written beside the target and moved into place when complete."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: models are saved in the .keras format")
    # Rebuilt from its config: uncompiled, so no optimizer state (clone_model would compile it).
    bare = model.__class__.from_config(model.get_config())
    bare.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        bare.save(tmp)
    return path


def augmented_examples(image: np.ndarray, augment: Augmentation, seed: int) -> np.ndarray:
    """One augmented draw of a uint8 image (for showing what training sees)."""
    out = augment(tf.cast(tf.convert_to_tensor(image), tf.float32), tf.constant([seed, 0], tf.int64))
    return np.asarray(out.numpy().round(), dtype=np.uint8)
