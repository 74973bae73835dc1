"""LIME for the one-sigmoid models of this project, and the test images to explain.

The image explained is always the exact array whose prediction is reported;
``Explained`` keeps the file, pixels, label and probability together so a
notebook cannot show one image's explanation beside another's prediction, and
``same_pixels_as_file`` checks it against the file on disk. Images are chosen
by rule (``choose_images``), never by hand.
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
from lime import lime_image
from skimage.segmentation import slic

from ..data.images import load_image
from ..data.labels import CLASS_NAMES
from ..training.fitting import compiled_forward
from .artefacts import median_skin_colour


def malignant_predict_fn(model: keras.Model, batch_size: int = 100) -> Callable[[np.ndarray], np.ndarray]:
    """P(malignant) for a batch of images, through one compiled graph.

    LIME calls the model once per batch of perturbed images; ``model.predict``
    builds a tf.data pipeline on every call (3x slower here, and TensorFlow
    logs a line to stderr each time). A ``tf.function`` with a fixed input
    signature is traced once and gives the same numbers.
    """
    forward = compiled_forward(model, input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])

    def predict(images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype="float32")
        parts = [forward(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(parts).reshape(-1).astype("float64") if parts else np.zeros(0)

    return predict


def two_class_predict_fn(model: keras.Model, batch_size: int = 100) -> Callable[[np.ndarray], np.ndarray]:
    """LIME wants one probability per class; our models output P(malignant) only."""
    malignant = malignant_predict_fn(model, batch_size)

    def predict(images: np.ndarray) -> np.ndarray:
        p = malignant(images)
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
    original = lime_image.tqdm
    lime_image.tqdm = lambda it, *a, **k: it
    try:
        yield
    finally:
        lime_image.tqdm = original


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
                 seed: int = 0, n_segments: int = 50, batch_size: int = 100, reason: str = "",
                 hide: str = "skin") -> Explained:
    """LIME explanation of both classes for one uint8 image, seeded so reruns match.

    ``hide``: what a switched-off superpixel becomes. ``"skin"`` (default): the
    image's median skin colour, i.e. "what if this region were plain skin";
    ``"black"``: LIME's usual 0, which in dermoscopy looks like a dark lesion or
    a vignette and so is itself evidence to the model; ``"mean"``: each
    superpixel's own mean colour.
    """
    image = np.asarray(image, dtype=np.uint8)
    hide_color = {"skin": lambda: median_skin_colour(image), "black": lambda: 0, "mean": lambda: None}[hide]()
    predict = two_class_predict_fn(model, batch_size)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    with _quiet_lime():
        exp = explainer.explain_instance(image, predict, labels=(0, 1), top_labels=None, hide_color=hide_color,
                                         num_samples=num_samples, batch_size=batch_size,
                                         segmentation_fn=slic_segmenter(n_segments), random_seed=seed)
    p = float(predict(image[None])[0, 1])
    weights = {c: {int(s): float(w) for s, w in exp.local_exp[c]} for c in (0, 1)}
    return Explained(path, image, int(label), p, exp.segments, weights, reason)


def explain_chosen(model: keras.Model, chosen: pd.DataFrame, images: np.ndarray, *, num_samples: int = 1000,
                   seed: int = 0, n_segments: int = 50, batch_size: int = 100) -> list[Explained]:
    """LIME for every row of ``choose_images``' table; ``images`` are the test
    images in the order of the table ``choose_images`` was given (its ``row``)."""
    return [explain_lime(model, row.path, images[row.row], row.label, num_samples=num_samples, seed=seed,
                         n_segments=n_segments, batch_size=batch_size, reason=row.reason)
            for row in chosen.itertuples()]


def same_pixels_as_file(e: Explained, image_size: int) -> bool:
    """True when the explained pixels are exactly what the data loader reads
    from ``e.path`` at ``image_size`` (same file, same pixels)."""
    fresh = load_image(e.path, image_size)
    return hashlib.sha256(np.ascontiguousarray(fresh).tobytes()).hexdigest() == e.pixel_sha256


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
