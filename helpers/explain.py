"""Explanations: LIME and Grad-CAM for the one-sigmoid models of this project.

The image explained is always the exact array whose prediction is reported;
``Explained`` keeps the file, pixels, label and probability together so a
notebook cannot show one image's explanation beside another's prediction, and
``same_pixels_as_file`` checks it against the file on disk.

Also here: picking the models to explain on validation (``best_recorded``),
images by rule (``choose_images``), how much of an explanation falls on the
lesion (``lesion_focus``), and the figures of notebook 4 (LIME beside Grad-CAM,
the contact sheet of every test error).
"""
from __future__ import annotations

import contextlib
import hashlib
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from skimage.segmentation import slic

from .data import CLASS_NAMES

# Backbones of the two families explained in notebook 4. Grad-CAM needs a
# feature map, so the MLP baseline is not among the CNNs.
CNN_BACKBONES = ("small_cnn",)
TRANSFER_BACKBONES = ("vgg16", "efficientnet_lite0")


_FORWARD: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


def _compiled_forward(model: keras.Model) -> Callable:
    """One traced graph per model, reused by every explanation (tracing a new
    tf.function per image is slow, and TensorFlow warns about it)."""
    if model not in _FORWARD:
        ref = weakref.ref(model)  # the cache must not keep the model alive
        _FORWARD[model] = tf.function(lambda x: ref()(x, training=False),
                                      input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
    return _FORWARD[model]


def malignant_predict_fn(model: keras.Model, batch_size: int = 100) -> Callable[[np.ndarray], np.ndarray]:
    """P(malignant) for a batch of images, through one compiled graph.

    LIME calls the model once per batch of perturbed images; ``model.predict``
    builds a tf.data pipeline on every call (3x slower here, and TensorFlow
    logs a line to stderr each time). A ``tf.function`` with a fixed input
    signature is traced once and gives the same numbers.
    """
    forward = _compiled_forward(model)

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
                 seed: int = 0, n_segments: int = 50, batch_size: int = 100, reason: str = "",
                 hide: str = "skin") -> Explained:
    """LIME explanation of both classes for one uint8 image, seeded so reruns match.

    ``hide``: what a switched-off superpixel becomes. ``"skin"`` (default): the
    image's median skin colour, i.e. "what if this region were plain skin";
    ``"black"``: LIME's usual 0, which in dermoscopy looks like a dark lesion or
    a vignette and so is itself evidence to the model; ``"mean"``: each
    superpixel's own mean colour.
    """
    from lime import lime_image

    from .artefacts import median_skin_colour

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
    from .data import load_image

    fresh = load_image(e.path, image_size)
    return hashlib.sha256(np.ascontiguousarray(fresh).tobytes()).hexdigest() == e.pixel_sha256


def best_recorded(backbones: tuple[str, ...], out=None) -> tuple[str, dict, keras.Model]:
    """(name, record, model) of the recorded model with the best validation AUC
    among ``backbones`` whose file is present. The test set plays no part."""
    from . import models  # noqa: F401  registers the custom layers for loading
    from . import results
    from .config import output_dirs

    out = out or output_dirs()
    recorded = results.load_results(out.results).get("models", {})
    present = {n: r for n, r in recorded.items()
               if r.get("backbone") in backbones and (out.models / r.get("model_file", "")).is_file()}
    if not present:
        raise FileNotFoundError(f"No saved model with backbone in {backbones} recorded in {out.results}: run "
                                "notebooks 2_Image_Processing_and_Modeling.ipynb and 3_Transfer_Learning_Models.ipynb.")
    name = max(present, key=lambda n: present[n]["validation"]["auc"])
    return name, present[name], keras.models.load_model(out.models / present[name]["model_file"])


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

    The score differentiated is the logit (the input of the final sigmoid), as
    in the Grad-CAM paper: the gradient of a saturated probability (P = 1.00)
    underflows to zero and would give an empty map for the most confident
    images. For benign the score is minus the logit.

    Works for a plain CNN and for a transfer model whose base is a nested Model:
    the graph is rebuilt layer by layer so the nested base's feature map is reachable.
    """
    x = tf.convert_to_tensor(np.asarray(image, dtype="float32")[None])
    owner, conv_name = last_conv_layer(model)
    with tf.GradientTape() as tape:
        tape.watch(x)  # a frozen base has no trainable variables for the tape to follow
        feature_map, logit = _forward_with_features(model, owner, conv_name, x)
        score = logit[:, 0] if cls == 1 else -logit[:, 0]
    grads = tape.gradient(score, feature_map)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))[0]
    cam = cam / (tf.reduce_max(cam) + 1e-8)
    return tf.image.resize(cam[..., None], image.shape[:2]).numpy()[..., 0]


def _final_sigmoid(model: keras.Model) -> tuple[keras.Model, keras.layers.Layer] | None:
    """(innermost model holding the last layer, that layer) when the model ends in
    a sigmoid Dense layer, directly or as the last layer of a nested head."""
    last = model.layers[-1]
    if isinstance(last, keras.Model):
        return _final_sigmoid(last)
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.sigmoid:
        return model, last
    return None


def _logit(final: keras.layers.Layer | None, h):
    """The pre-sigmoid output of ``final`` for its input ``h`` (or ``h`` itself
    when there is no sigmoid layer to undo)."""
    if final is None:
        return h
    return tf.matmul(h, final.kernel) + (final.bias if final.use_bias else 0.0)


def _forward_with_features(model, owner, conv_name, x):
    """Run ``model`` on ``x`` returning (feature map of ``conv_name`` in ``owner``, logit)."""
    found = _final_sigmoid(model)
    holder, final = found if found else (None, None)
    if owner is model:
        last_in = final.input if final is not None else model.outputs[0]
        inner = keras.Model(model.inputs, [model.get_layer(conv_name).output, last_in])
        fmap, h = inner(x, training=False)
        return fmap, _logit(final, h)
    # Transfer model: inputs -> [preprocess] -> base -> head. Split at the base,
    # and run the head up to the input of its final sigmoid layer.
    feats_model = keras.Model(owner.inputs, [owner.get_layer(conv_name).output, owner.outputs[0]])
    h = x
    for layer in model.layers[1:]:
        if layer is owner:
            fmap, h = feats_model(h, training=False)
        elif layer is holder and holder is not model:
            h = keras.Model(holder.inputs, final.input)(h, training=False)
        elif layer is final:
            continue
        else:
            h = layer(h, training=False)
    return fmap, _logit(final, h)


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


# ---------------------------------------------------------------- lesion focus

def lesion_at(path: str, image_size: int) -> np.ndarray:
    """Rough lesion mask of one image at ``image_size`` (every sizeable dark
    region), found at 224 px where the detector settings hold and shrunk with
    nearest-neighbour sampling."""
    from PIL import Image

    from . import artefacts
    from .data import load_image

    mask = artefacts.lesion_mask(load_image(path, artefacts.REFERENCE_SIZE), all_parts=True)
    small = Image.fromarray(mask.astype(np.uint8) * 255).resize((image_size, image_size), Image.Resampling.NEAREST)
    return np.asarray(small) > 127


def lesion_focus(e: Explained, cam: np.ndarray, lesion: np.ndarray, threshold: float,
                 num_features: int = 5) -> dict[str, float]:
    """How much of an explanation falls on the lesion, against the lesion's area.

    ``cam``: Grad-CAM of the predicted class (at ``threshold``).
    ``gradcam_on_lesion``: share of the Grad-CAM mass on the lesion;
    ``gradcam_peak_on_lesion``: whether the map's hottest pixel is on the lesion;
    ``lime_on_lesion``: share of the area of LIME's ``num_features`` strongest
    superpixels (predicted class) on the lesion. A map that ignored the lesion
    would score about ``lesion_area``.
    """
    top = e.mask(int(e.p_malignant >= threshold), num_features)
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    return {"lesion_area": float(lesion.mean()),
            "gradcam_on_lesion": float((cam * lesion).sum() / max(cam.sum(), 1e-8)),
            "gradcam_peak_on_lesion": bool(lesion[peak]) if cam.max() > 0 else False,
            "lime_on_lesion": float((top & lesion).sum() / max(top.sum(), 1))}


# ---------------------------------------------------------------- figures

def _short(path: str) -> str:
    """``test/benign/1019.jpg`` from an absolute path: class folder and file."""
    parts = str(path).replace("\\", "/").split("/")
    return "/".join(parts[-3:])


def plot_lime_gradcam(explained: list[Explained], model: keras.Model, threshold: float, model_name: str,
                      num_features: int = 5, cams: list[dict[int, np.ndarray]] | None = None):
    """One row per image: the test image (file, true label, P(malignant), the rule
    that chose it); LIME for the predicted and for the other class; Grad-CAM for
    the predicted and for the other class."""
    import matplotlib.pyplot as plt
    from skimage.segmentation import mark_boundaries

    fig, axes = plt.subplots(len(explained), 5, figsize=(13, 2.75 * len(explained)), squeeze=False)
    for k, (row, e) in enumerate(zip(axes, explained)):
        pred = int(e.p_malignant >= threshold)
        row[0].imshow(e.image)
        row[0].set_title(f"{_short(e.path)}\ntrue {CLASS_NAMES[e.label]}, P(malignant) {e.p_malignant:.2f}\n"
                         f"{e.reason}", fontsize=7)
        for ax, cls, which in ((row[1], pred, "predicted"), (row[2], 1 - pred, "other")):
            ax.imshow(mark_boundaries(e.image, e.mask(cls, num_features).astype(int), color=(0, 1, 0)))
            ax.set_title(f"LIME, {which} class: {CLASS_NAMES[cls]}", fontsize=7)
        for ax, cls, which in ((row[3], pred, "predicted"), (row[4], 1 - pred, "other")):
            cam = cams[k][cls] if cams is not None else grad_cam(model, e.image, cls)
            ax.imshow(e.image)
            ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"Grad-CAM, {which} class: {CLASS_NAMES[cls]}", fontsize=7)
        for ax in row:
            ax.axis("off")
    fig.suptitle(f"{model_name}: LIME (green outlines: {num_features} strongest superpixels) and Grad-CAM, "
                 f"threshold {threshold:.2f} chosen on validation", fontsize=9)
    return fig


def contact_sheet(images: np.ndarray, titles: list[str], ncols: int = 12, size: float = 1.05,
                  suptitle: str | None = None):
    """Small images in a grid with a short title each; returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.3)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i])
            ax.set_title(titles[i], fontsize=5)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def list_errors(table: pd.DataFrame, p: np.ndarray, threshold: float) -> pd.DataFrame:
    """Every wrong test prediction at ``threshold``: missed malignant (most
    confident first), then benign called malignant. ``row`` indexes the images."""
    df = table.reset_index(drop=True).assign(p=p, pred=(np.asarray(p) >= threshold).astype(int))
    wrong = df[df["pred"] != df["label"]].rename_axis("row").reset_index()
    wrong["kind"] = np.where(wrong["label"] == 1, "missed malignant", "false alarm")
    wrong["margin"] = (wrong["p"] - threshold).abs()
    return wrong.sort_values(["label", "margin"], ascending=[False, False], ignore_index=True)


def error_contact_sheet(table: pd.DataFrame, images: np.ndarray, p: np.ndarray, threshold: float,
                        model_name: str, ncols: int = 12):
    """Every test error as a contact sheet: missed malignant lesions first, then
    false alarms, each by how far P(malignant) is from the threshold."""
    wrong = list_errors(table, p, threshold)
    titles = [f"{'FN' if r.label == 1 else 'FP'} {_short(r.path).rsplit('/', 1)[-1]}\np={r.p:.2f}"
              for r in wrong.itertuples()]
    n_fn = int((wrong["label"] == 1).sum())
    return contact_sheet(images[wrong["row"].to_numpy()], titles, ncols=ncols, suptitle=(
        f"{model_name}: all {len(wrong)} test errors at threshold {threshold:.2f}: {n_fn} missed malignant (FN), "
        f"then {len(wrong) - n_fn} false alarms (FP), most confident first"))
