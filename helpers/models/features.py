"""Pooled ImageNet features of EfficientNet-Lite0: a description of each image that
stays close for a second photo of the same lesion, or a shifted, re-cropped or
re-coloured copy (``data.duplicates.similar_pairs`` groups such images)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..data.images import load_images
from .efficientnet_lite import build_efficientnet_lite0

# Images decoded and passed through the network at a time.
_BATCH = 64


def lite0_features(paths: Sequence[str | os.PathLike], image_size: int = 128
                   ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(n, 1280) float32 pooled ImageNet features of the images that load, in order,
    and ``(path, reason)`` for those that do not."""
    base = build_efficientnet_lite0(input_shape=(image_size, image_size, 3), include_top=False,
                                    weights="imagenet", pooling="avg")
    parts, skipped = [], []
    for start in range(0, len(paths), _BATCH):
        x, bad = load_images(paths[start:start + _BATCH], image_size)
        skipped += bad
        if len(x):
            parts.append(np.asarray(base(x.astype("float32"), training=False), dtype="float32"))
    return (np.concatenate(parts) if parts else np.zeros((0, 1280), "float32")), skipped
