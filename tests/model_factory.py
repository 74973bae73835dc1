"""Tiny saved models and a folder of awkward images for the predict / TFLite tests.

Models are untrained (random weights): the tests check plumbing -- labels,
ranking, thresholds, file handling, conversion -- not accuracy. 32 px keeps
them fast.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from image_factory import save, textured

from helpers import results, seeding
from helpers.config import OutputDirs
from helpers.data import images
from helpers.models import baselines, saved

SIZE = 32
BINARY_THRESHOLD = 0.37
HAM_CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def save_binary_model(out: OutputDirs, name: str = "small_cnn") -> Path:
    """A small CNN recorded like the chain records it (validation-chosen threshold)."""
    seeding.set_seed(0)
    path = saved.save_model(baselines.build_small_cnn(SIZE), out.models / f"{name}.keras")
    results.record_model(name, {"model_file": path.name, "threshold": BINARY_THRESHOLD,
                                "target_sensitivity": 0.9, "image_size": SIZE,
                                "validation": {"auc": 0.8}}, out.results)
    return path


def _multiclass(with_metadata: bool) -> keras.Model:
    image = keras.Input((SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0)(image)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    inputs = [image]
    if with_metadata:
        meta = keras.Input((3,), name="metadata")
        inputs.append(meta)
        x = keras.layers.Concatenate()([x, meta])
    outputs = keras.layers.Dense(len(HAM_CLASSES), activation="softmax", name="dx")(x)
    return keras.Model(inputs if with_metadata else image, outputs)


def save_multiclass_models(out: OutputDirs) -> dict[str, Path]:
    """An image-only 7-class model and one that also needs metadata, recorded under "multiclass"
    the way the HAM10000 notebook records them."""
    seeding.set_seed(1)
    paths = {}
    for name, with_metadata in (("ham_cnn", False), ("ham_cnn_meta", True)):
        paths[name] = saved.save_model(_multiclass(with_metadata), out.models / f"{name}.keras")
        results.update_results({"multiclass": {name: {
            "task": "multiclass", "model_file": paths[name].name, "class_names": HAM_CLASSES, "image_size": SIZE,
            "inputs": "image+metadata" if with_metadata else "image",
            "validation": {"balanced_accuracy": 0.5}}}}, out.results)
    return paths


def image_folder(root: Path) -> dict[str, Path]:
    """RGB JPEG, greyscale PNG, RGBA PNG (in a sub-folder), a corrupt JPEG, a text file and a
    hidden file. Returns them by role."""
    files = {
        "rgb": save(textured(1, 48), root / "rgb.jpg"),
        "grey": save(textured(2, 40).convert("L"), root / "grey.png"),
        "rgba": save(textured(3, 56).convert("RGBA"), root / "nested" / "rgba.png"),
    }
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    files.update(broken=root / "broken.jpg", text=root / "notes.txt")
    return files


def good_images(root: Path, n: int, size: int = 40) -> list[Path]:
    """``n`` readable textured images (held-out set for the agreement check)."""
    return [save(textured(100 + k, size), root / f"img_{k:02d}.png") for k in range(n)]


def keras_probability(model_path: Path, image_path: Path) -> np.ndarray:
    """The model's raw output for one image decoded as in training (for comparisons)."""
    model = keras.models.load_model(model_path)
    x = images.load_image(image_path, SIZE)[None].astype("float32")
    return np.asarray(model.predict_on_batch(x), dtype="float64")[0]

