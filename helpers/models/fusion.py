"""Seven-class models built from one Lite0 ``TransferModel``: the image +
metadata fusion model, and the models that fine-tune it on cached feature maps
(the split itself, ``split_backbone``, lives in ``transfer``: notebook 3's
binary Lite0 fine-tunes the same way).

With batch norm frozen, everything below the first unfrozen block is a fixed
function of the (augmented) image. Its output is computed once for the
original training images and for ``n_copies - 1`` augmented copies of them
("the pool", ``training.augmented_pool``); fine-tuning then runs the unfrozen
top blocks and the head on maps drawn from the pool. That is the same model
and the same gradients as fine-tuning on pixels, except that augmentations
come from a fixed pool instead of being drawn afresh every epoch -- and no
epoch pays again for the forward pass through the network's high-resolution
layers.
"""
from __future__ import annotations

import keras
import numpy as np

from .transfer import TransferModel, maps_model


def assemble_fusion_model(tm: TransferModel, fusion_head, n_metadata: int):
    """One file for the image+metadata model: inputs ``pixels`` (raw 0-255) and
    ``metadata`` (``MetadataEncoder`` output) -> 7 probabilities."""
    pixels = keras.Input((tm.image_size, tm.image_size, 3), name="pixels")
    meta = keras.Input((n_metadata,), name="metadata")
    feats = tm.base(pixels, training=False)
    return keras.Model([pixels, meta], fusion_head([feats, meta]), name="lite0_7class_metadata")


def top_model(tm: TransferModel, top):
    """Feature maps -> 7 probabilities through the (shared) top blocks and head."""
    return maps_model(tm, top, name="lite0_top_7class")


def joint_model(tm: TransferModel, top, fusion_head, n_metadata: int):
    """Maps and metadata -> [image head's 7 probabilities | fusion head's 7 probabilities].

    Both heads sit on the same (shared, fine-tuned) top blocks and are trained
    together with the summed loss, so the only difference between them is the
    metadata input. Used for training only; the two models that are saved are
    ``tm.model`` (pixels) and ``assemble_fusion_model`` (pixels + metadata).
    """
    maps = keras.Input(tuple(top.input.shape[1:]), name="maps")
    meta = keras.Input((n_metadata,), name="metadata")
    feats = top(maps, training=False)
    both = keras.layers.Concatenate(name="image_and_fused")([tm.head(feats), fusion_head([feats, meta])])
    return keras.Model({"maps": maps, "metadata": meta}, both, name="lite0_joint")


def head_outputs(P: np.ndarray, n_heads: int) -> list[np.ndarray]:
    """Split side-by-side softmax outputs (``joint_model``) into one (n, k) array per head."""
    k = P.shape[1] // n_heads
    return [P[:, h * k:(h + 1) * k] for h in range(n_heads)]
