"""Training and prediction: tf.data input with on-the-fly augmentation, early
stopping on validation, two-stage transfer learning, and forward passes.

The binary models of notebooks 2-3 train with ``fit`` (Adam, binary
cross-entropy with balanced class weights, early stopping on validation ROC
AUC that restores the best epoch) and ``fit_transfer`` (head first, then the
top of the base); the seven-class models of notebook 5 with
``training.multiclass.fit_multiclass``. Every fit returns a ``FitResult``.
"""
from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from ..models.transfer import maps_model
from .augment import Augmentation
from .imbalance import class_weights


AUTOTUNE = tf.data.AUTOTUNE


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


@dataclass
class FitResult:
    """What one training run did.

    ``history``: per-epoch values (Keras' names: loss, val_loss, val_auc, ...);
    ``best_epoch`` (1-based) is the epoch whose weights were kept and
    ``best_score`` its monitored validation score; ``finetune_epochs_run`` is
    the part of ``epochs_run`` spent in stage 2 of ``fit_transfer``.
    """

    history: dict[str, list[float]]
    seconds: float
    epochs_run: int
    best_epoch: int
    best_score: float | None = None
    finetune_epochs_run: int = 0
    members: list["FitResult"] | None = None  # an ensemble's: each member's own run
    seconds_per_epoch: float = field(init=False)

    def __post_init__(self):
        self.seconds_per_epoch = self.seconds / max(self.epochs_run, 1)


def stopping_reading(fit: FitResult, cap: int, patience: int, *, head_only: bool = False) -> str:
    """A plain reading of why a run ended: early stopping, or the epoch cap (and
    whether the cap cut it short). ``head_only``: read stage 1 of ``fit_transfer``
    (the head on frozen features), whose cap is ``cap``."""
    run, best = fit.epochs_run, fit.best_epoch
    if head_only:
        run = fit.epochs_run - fit.finetune_epochs_run
        scores = fit.history.get("val_auc", [])[:run]
        best = int(np.argmax(scores)) + 1 if scores else run
    if run < cap:
        return (f"early stopping ended it after {run} of at most {cap} epochs: no better validation AUC "
                f"in the {patience} epochs after its best, epoch {best}")
    if run - best < patience:
        return (f"it ran to its cap of {cap} epochs with its best validation AUC at epoch {best}, so it "
                f"may still have been improving: raise the cap before reading it as this model's best")
    return (f"it ran to its cap of {cap} epochs, but its best epoch ({best}) was {run - best} epochs "
            f"before the end, so the cap did not cut it short")


def fit(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
        y_val: np.ndarray, *, epochs: int, seed: int, batch_size: int = 32,
        learning_rate: float = 1e-3, patience: int = 5, augment: Augmentation | None = None,
        steps_per_epoch: int | None = None, verbose: int = 2) -> FitResult:
    """Compile and train with early stopping on validation AUC, restoring the best epoch.

    An epoch is ``steps_per_epoch`` batches (default: one pass over ``x_train``).
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    ds, steps = train_dataset(x_train, y_train, batch_size, seed, augment)
    steps = steps_per_epoch or steps
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                         restore_best_weights=True)
    start = time.perf_counter()
    hist = model.fit(ds, steps_per_epoch=steps, epochs=epochs, validation_data=eval_dataset(x_val, y_val),
                     class_weight=class_weights(y_train, n_classes=2), callbacks=[stop], shuffle=False,
                     verbose=verbose)
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best = int(np.argmax(history["val_auc"])) + 1 if "val_auc" in history else len(history["loss"])
    return FitResult(history, seconds, len(history["loss"]), best,
                     history["val_auc"][best - 1] if "val_auc" in history else None)


def fit_transfer(tm, x: dict[str, np.ndarray], y: dict[str, np.ndarray], *, head_epochs: int,
                 finetune_epochs: int, unfreeze, seed: int, batch_size: int = 32,
                 head_lr: float = 1e-3, finetune_lr: float = 1e-4, patience: int = 4,
                 augment: Augmentation | None = None, split=None, pool_copies: int = 6,
                 verbose: int = 2) -> FitResult:
    """Two-stage transfer learning on a ``models.TransferModel``.

    1. Features of the frozen base are computed once; the head is trained on them.
    2. ``unfreeze(tm)`` opens the top of the base, and the whole model is
       fine-tuned with a lower learning rate and on-the-fly augmentation.
       With ``split`` (``tm`` -> (bottom, top), e.g. ``models.transfer.split_backbone``)
       the frozen bottom's maps are computed once for the training images and
       ``pool_copies - 1`` augmented copies (``augmented_pool``), and only the
       top and the head run in each epoch, on maps drawn from that pool; an epoch
       is still one pass's worth of batches.
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
        finetune = dict(epochs=finetune_epochs, seed=seed, batch_size=batch_size, learning_rate=finetune_lr,
                        patience=patience, verbose=verbose)
        if split is None:
            stage2 = fit(tm.model, x["train"], y["train"], x["val"], y["val"], augment=augment, **finetune)
        else:
            bottom, top = split(tm)
            copies = pool_copies if augment is not None else 1  # without augmentation every copy is the same
            pool = augmented_pool(bottom, x["train"], copies, augment, seed)
            stage2 = fit(maps_model(tm, top), pool.reshape((-1,) + pool.shape[2:]),
                         np.tile(y["train"], copies), predict_array(bottom, x["val"]), y["val"],
                         steps_per_epoch=math.ceil(len(y["train"]) / batch_size), **finetune)
            del pool
        for k, v in stage2.history.items():
            history.setdefault(k, []).extend(v)
        epochs_run, finetune_run = epochs_run + stage2.epochs_run, stage2.epochs_run
    seconds = time.perf_counter() - start
    best = int(np.argmax(history["val_auc"])) + 1
    return FitResult(history, seconds, epochs_run, best, history["val_auc"][best - 1], finetune_run)


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(malignant) for each image, as a flat float64 array."""
    return np.asarray(model.predict(eval_dataset(x, batch_size=batch_size), verbose=0),
                      dtype="float64").reshape(-1)


# Compiled forward passes, one per model. ``model.predict`` builds a tf.data
# pipeline at every call and retraces its graph for a new dataset (TensorFlow
# then warns about retracing); one tf.function per model is traced once.
_FORWARD: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


def compiled_forward(model: keras.Model, input_signature: list | None = None) -> Callable:
    """``model(x, training=False)`` as one cached tf.function.

    ``input_signature`` (e.g. a batch of any size) lets calls of varying batch
    size share one graph; without it, callers keep the batch shape fixed
    (``predict_array`` pads the last batch).
    """
    fn = _FORWARD.get(model)
    if fn is None:
        ref = weakref.ref(model)  # a strong reference here would keep every model alive

        @tf.autograph.experimental.do_not_convert  # plain TF calls: nothing for AutoGraph to rewrite
        def forward(inputs):
            return ref()(inputs, training=False)

        fn = _FORWARD[model] = tf.function(forward, input_signature=input_signature)
    return fn


def _numpy_batches(x, batch_size: int) -> Iterator:
    """Consecutive float32 slices of an array or dict of arrays."""
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    for i in range(0, n, batch_size):
        if isinstance(x, dict):
            yield {k: np.asarray(v[i:i + batch_size], dtype="float32") for k, v in x.items()}
        else:
            yield np.asarray(x[i:i + batch_size], dtype="float32")


def _augmented_batches(x: np.ndarray, batch_size: int, augment, seed: int) -> Iterator:
    """Batches of images with one seeded random augmentation per image."""
    @tf.autograph.experimental.do_not_convert
    def draw(image, s):
        return augment(tf.cast(image, tf.float32), s)

    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(x), seeds)).map(
        draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    for batch in ds.batch(batch_size).prefetch(2):
        yield batch.numpy()


def _pad(batch, size: int):
    """Pad the first axis to ``size`` with zeros, so every call has the same shape."""
    def pad(a):
        return a if len(a) == size else np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])
    return {k: pad(v) for k, v in batch.items()} if isinstance(batch, dict) else pad(batch)


def predict_array(model, x, batch_size: int = 128, augment=None, seed: int = 0,
                  dtype: str = "float32") -> np.ndarray:
    """``model`` applied to ``x`` (an array, or a dict of arrays by input name), in order.

    Images are converted to float32 one batch at a time (never all at once);
    ``augment`` draws one seeded augmentation per image first.
    """
    forward = compiled_forward(model)
    batches = _numpy_batches(x, batch_size) if augment is None else _augmented_batches(x, batch_size, augment, seed)
    outputs = []
    for batch in batches:
        k = len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch)
        outputs.append(np.asarray(forward(_pad(batch, batch_size)))[:k].astype(dtype, copy=False))
    return np.concatenate(outputs)


def augmented_pool(bottom, x: np.ndarray, n_copies: int, augment, seed: int) -> np.ndarray:
    """(n_copies, n, ...) float32 bottom maps: copy 0 of the original images,
    copies 1.. of seeded random augmentations."""
    copies = [predict_array(bottom, x)]
    for k in range(1, n_copies):
        copies.append(predict_array(bottom, x, augment=augment, seed=seed + k))
    return np.stack(copies)
