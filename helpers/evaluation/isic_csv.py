"""Predictions and ground truth in the ISIC challenge CSV format (what
``isic-challenge-scoring`` reads), written atomically."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..atomic import atomic_path


_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def _isic_ids(image_ids: Sequence[str]) -> list[str]:
    """Image ids as the ISIC scorer wants them: no image file extension, unique."""
    ids = []
    for i in image_ids:
        s = str(i)
        root, ext = os.path.splitext(s)
        ids.append(root if ext.lower() in _IMAGE_EXTENSIONS else s)
    if len(set(ids)) != len(ids):
        raise ValueError("image ids are not unique (after removing extensions)")
    return ids


def _probability_table(probs, class_names: Sequence[str], n: int) -> np.ndarray:
    """(n, k) matrix; a 1-D ``probs`` with two classes is P(class_names[1])."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        if len(class_names) != 2:
            raise ValueError("1-D probabilities need exactly two class names (negative, positive)")
        probs = np.column_stack([1.0 - probs, probs])
    if probs.shape != (n, len(class_names)):
        raise ValueError(f"probabilities have shape {probs.shape}, expected ({n}, {len(class_names)})")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    return probs


def _write_isic_csv(path, image_ids, table: np.ndarray, class_names: Sequence[str]) -> Path:
    ids = _isic_ids(image_ids)
    if len(ids) != table.shape[0]:
        raise ValueError(f"{len(ids)} image ids for {table.shape[0]} rows")
    frame = pd.DataFrame(table, columns=list(class_names))
    frame.insert(0, "image", ids)
    path = Path(path)
    with atomic_path(path) as tmp:
        # float_format=None keeps full (round-trip) precision.
        frame.to_csv(tmp, index=False)
    return path


def write_isic_predictions(path, image_ids: Sequence[str], probs, class_names: Sequence[str]) -> Path:
    """Write predictions in the ISIC challenge classification CSV format, atomically.

    Columns: ``image`` (id without .jpg etc.), then one probability column per
    class, named exactly like the ground-truth columns (isic-challenge-scoring
    matches them by name). ``probs`` is (n, k), or for two classes a 1-D
    probability of ``class_names[1]`` written as [1 - p, p]. The scorer turns
    rows into labels by argmax (an exact tie, e.g. p = 0.5, is "undecided").
    """
    ids = list(image_ids)
    return _write_isic_csv(path, ids, _probability_table(probs, class_names, len(ids)), class_names)


def read_isic_predictions(path, image_ids: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Probabilities from an ISIC-format CSV, in the order of ``image_ids`` ((n, k)).

    Raises naming the file when a column or one of the images is missing.
    """
    frame = pd.read_csv(path)
    missing_cols = [c for c in ["image", *class_names] if c not in frame.columns]
    if missing_cols:
        raise ValueError(f"{path}: missing column(s) {missing_cols}; expected image, {', '.join(class_names)}")
    table = frame.set_index("image")
    ids = _isic_ids(image_ids)
    absent = [i for i in ids if i not in table.index]
    if absent:
        raise ValueError(f"{path}: no prediction for {len(absent)} of {len(ids)} image(s), e.g. {absent[:3]}; "
                         "it was written for another split: rerun the notebook that wrote it.")
    return table.loc[ids, list(class_names)].to_numpy(dtype=np.float64)


def write_isic_ground_truth(path, image_ids: Sequence[str], y, class_names: Sequence[str]) -> Path:
    """Write integer labels as an ISIC ground-truth CSV (image + one-hot 1.0/0.0 columns)."""
    y = np.asarray(y).ravel().astype(np.int64)
    return _write_isic_csv(path, list(image_ids), np.eye(len(class_names))[y], class_names)
