"""Explanations: LIME and Grad-CAM for the one-sigmoid models of this project.

The image explained is always the exact array whose prediction is reported;
``Explained`` keeps the file, pixels, label and probability together so a
notebook cannot show one image's explanation beside another's prediction.
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterator

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from skimage.segmentation import slic

from .data import CLASS_NAMES


def two_class_predict_fn(model: keras.Model, batch_size: int = 100) -> Callable[[np.ndarray], np.ndarray]:
    """LIME wants one probability per class; our models output P(malignant) only."""

    def predict(images: np.ndarray) -> np.ndarray:
        p = model.predict(np.asarray(images, dtype="float32"), batch_size=batch_size, verbose=0).reshape(-1)
        return np.column_stack([1.0 - p, p])

    return predict


def slic_segmenter(n_segments: int = 50, compactness: float = 10.0, sigma: float = 1.0):
    """SLIC superpixels: at 64x64 LIME's default quickshift finds only ~3 segments."""

    def segment(image: np.ndarray) -> np.ndarray:
        return slic(image, n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=0,
                    channel_axis=-1)

    return segment


@contextlib.contextmanager
def _quiet_lime() -> Iterator[None]:
    """lime 0.2.0.1 always draws a tqdm bar, which would land in notebook outputs."""
    import lime.lime_image as li

    original = li.tqdm
    li.tqdm = lambda it, *a, **k: it
    try:
        yield
    finally:
        li.tqdm = original


@dataclass
class Explained:
    """One test image, its prediction and its explanation, kept together."""

    path: str
    image: np.ndarray  # uint8, exactly what the model was given
    label: int
    p_malignant: float
    segments: np.ndarray
    weights: dict[int, dict[int, float]]  # class -> segment -> LIME weight
    reason: str = ""

    @property
    def pixel_sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.image).tobytes()).hexdigest()

    def mask(self, cls: int, num_features: int = 5, positive_only: bool = True) -> np.ndarray:
        """Boolean mask of the ``num_features`` segments with the largest weight for ``cls``."""
        ranked = sorted(self.weights[cls].items(), key=lambda kv: -kv[1] if positive_only else -abs(kv[1]))
        keep = [seg for seg, w in ranked[:num_features] if (w > 0 or not positive_only)]
        return np.isin(self.segments, keep)


def explain_lime(model: keras.Model, path: str, image: np.ndarray, label: int, *, num_samples: int = 1000,
                 seed: int = 0, n_segments: int = 50, batch_size: int = 100, reason: str = "") -> Explained:
    """LIME explanation of both classes for one uint8 image, seeded so reruns match."""
    from lime import lime_image

    image = np.asarray(image, dtype=np.uint8)
    predict = two_class_predict_fn(model, batch_size)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    with _quiet_lime():
        exp = explainer.explain_instance(image, predict, labels=(0, 1), top_labels=None, hide_color=0,
                                         num_samples=num_samples, batch_size=batch_size,
                                         segmentation_fn=slic_segmenter(n_segments), random_seed=seed)
    p = float(predict(image[None])[0, 1])
    weights = {c: {int(s): float(w) for s, w in exp.local_exp[c]} for c in (0, 1)}
    return Explained(path, image, int(label), p, exp.segments, weights, reason)


def choose_images(table: pd.DataFrame, p: np.ndarray, threshold: float, per_rule: int = 1) -> pd.DataFrame:
    """Pick test images by rule, not by hand: per true class the most confident
    correct and most confident wrong prediction, plus the cases nearest the threshold."""
    df = table.reset_index(drop=True).assign(p=p, pred=(p >= threshold).astype(int))
    df["correct"] = df["pred"] == df["label"]
    # confidence in the predicted class, relative to the operating threshold
    df["margin"] = np.where(df["pred"] == 1, df["p"] - threshold, threshold - df["p"])
    picks = []
    for label, name in enumerate(CLASS_NAMES):
        for correct, what in ((True, "most confident correct"), (False, "most confident wrong")):
            part = df[(df["label"] == label) & (df["correct"] == correct)]
            top = part.nlargest(per_rule, "margin")
            picks.append(top.assign(reason=f"{what}, true {name}"))
    near = df.assign(dist=(df["p"] - threshold).abs()).nsmallest(2 * per_rule, "dist")
    picks.append(near.drop(columns="dist").assign(reason="nearest the threshold"))
    chosen = pd.concat(picks)
    chosen = chosen[~chosen.index.duplicated()]  # one image can satisfy two rules
    return chosen.rename_axis("row").reset_index()


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

    Works for a plain CNN and for a transfer model whose base is a nested Model:
    the graph is rebuilt layer by layer so the nested base's feature map is reachable.
    """
    x = tf.convert_to_tensor(np.asarray(image, dtype="float32")[None])
    owner, conv_name = last_conv_layer(model)
    with tf.GradientTape() as tape:
        tape.watch(x)  # a frozen base has no trainable variables for the tape to follow
        feature_map, p = _forward_with_features(model, owner, conv_name, x)
        score = p[:, 0] if cls == 1 else 1.0 - p[:, 0]
    grads = tape.gradient(score, feature_map)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))[0]
    cam = cam / (tf.reduce_max(cam) + 1e-8)
    return tf.image.resize(cam[..., None], image.shape[:2]).numpy()[..., 0]


def _forward_with_features(model, owner, conv_name, x):
    """Run ``model`` on ``x`` returning (feature map of ``conv_name`` in ``owner``, output)."""
    if owner is model:
        inner = keras.Model(model.inputs, [model.get_layer(conv_name).output, model.outputs[0]])
        return inner(x, training=False)
    # Transfer model: inputs -> [preprocess] -> base -> head. Split at the base.
    feats_model = keras.Model(owner.inputs, [owner.get_layer(conv_name).output, owner.outputs[0]])
    h = x
    for layer in model.layers[1:]:
        if layer is owner:
            fmap, h = feats_model(h, training=False)
        else:
            h = layer(h, training=False)
    return fmap, h


def plot_explanations(explained: list[Explained], threshold: float, model: keras.Model | None = None,
                      num_features: int = 5):
    """One row per image: the test image with its file, label and probability;
    LIME for benign and for malignant; Grad-CAM for malignant when ``model`` is given."""
    import matplotlib.pyplot as plt
    from skimage.segmentation import mark_boundaries

    ncols = 4 if model is not None else 3
    fig, axes = plt.subplots(len(explained), ncols, figsize=(3.1 * ncols, 3.2 * len(explained)),
                             squeeze=False)
    for row, e in zip(axes, explained):
        name = e.path.rsplit("/", 1)[-1]
        pred = CLASS_NAMES[int(e.p_malignant >= threshold)]
        row[0].imshow(e.image)
        row[0].set_title(f"{name}\ntrue {CLASS_NAMES[e.label]}, P(malignant)={e.p_malignant:.2f}\n"
                         f"predicted {pred} | {e.reason}", fontsize=7)
        for ax, cls in zip(row[1:3], (0, 1)):
            ax.imshow(mark_boundaries(e.image, e.mask(cls, num_features).astype(int), color=(0, 1, 0)))
            ax.set_title(f"LIME: towards {CLASS_NAMES[cls]}", fontsize=8)
        if model is not None:
            row[3].imshow(e.image)
            row[3].imshow(grad_cam(model, e.image, cls=1), cmap="jet", alpha=0.4)
            row[3].set_title("Grad-CAM: malignant", fontsize=8)
        for ax in row:
            ax.axis("off")
    return fig
