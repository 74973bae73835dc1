"""helpers.models.fusion and the seven-class Lite0: heads, the split network, the
cached-map pool and the joint model, and the saved files agreeing with them."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from helpers import seeding
from helpers.models import fusion, heads, saved, transfer
from helpers.training import augment, fitting, imbalance
from helpers.training import multiclass as mc_training

K = 7  # the seven diagnoses


def test_fusion_and_image_heads_shapes():
    head = heads.build_head((16,), K, units=8, n_metadata=5, metadata_units=4, input_dropout=True)
    assert [i.name for i in head.inputs] == ["features", "metadata"]
    rng = np.random.default_rng(0)
    P = mc_training.predict_head(head, rng.random((9, 16), dtype=np.float32), rng.random((9, 5), dtype=np.float32))
    assert P.shape == (9, K) and np.allclose(P.sum(axis=1), 1, atol=1e-5)
    image_only = heads.build_head((16,), K, units=8, input_dropout=True)
    assert len(image_only.inputs) == 1
    assert mc_training.predict_head(image_only, rng.random((4, 16), dtype=np.float32)).shape == (4, K)


def test_lite0_split_pool_joint_model_and_saved_files_agree(tmp_path):
    seeding.set_seed(0)
    im = transfer.build_lite0_transfer(32, pretrained=False, pooling="avg", name="lite0_7class", n_classes=K,
                                      units=8, input_dropout=True)
    assert im.model.input_shape == (None, 32, 32, 3) and im.model.output_shape == (None, K)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 32, 32, 3)).astype("uint8")
    meta = rng.random((5, 4)).astype("float32")
    bottom, top = transfer.split_backbone(im, 5)
    direct = fitting.predict_array(im.model, x, batch_size=2)  # 5 images: the last batch is padded
    assert direct.shape == (5, K)
    np.testing.assert_allclose(direct, fitting.predict_array(fusion.top_model(im, top), fitting.predict_array(bottom, x)), atol=1e-5)
    pool = fitting.augmented_pool(bottom, x, 3, augment.Augmentation(), seed=1)
    assert pool.shape == (3, 5) + tuple(top.input.shape[1:]) and pool.dtype == np.float32
    np.testing.assert_array_equal(pool[0], fitting.predict_array(bottom, x))  # copy 0: the original images
    assert not np.allclose(pool[1], pool[0])
    with pytest.raises(ValueError):
        transfer.split_backbone(im, 16)

    n_trainable = transfer.lite0_unfreezer(5)(im)
    assert 0 < n_trainable < len(im.model.weights)
    fusion_head = heads.build_head((1280,), K, units=8, n_metadata=4, metadata_units=4, input_dropout=True,
                                  name="fusion_head")
    joint = fusion.joint_model(im, top, fusion_head, 4)
    result = mc_training.fit_multiclass(joint, {"maps": pool[0], "metadata": meta}, np.arange(5), {"maps": pool[0], "metadata": meta},
                            np.arange(5), choice=imbalance.LOSS_CANDIDATES[3], epochs=2, seed=0, n_heads=2)
    assert np.array(result.history["val_balanced_accuracy_per_head"]).shape == (result.epochs_run, 2)
    image_part, fused_part = fusion.head_outputs(fitting.predict_array(joint, {"maps": pool[0], "metadata": meta}), 2)
    fused = fusion.assemble_fusion_model(im, fusion_head, 4)
    np.testing.assert_allclose(image_part, fitting.predict_array(im.model, x), atol=1e-5)
    np.testing.assert_allclose(fused_part, fitting.predict_array(fused, {"pixels": x, "metadata": meta}), atol=1e-5)

    for model, inputs in ((im.model, x.astype("float32")), (fused, [x.astype("float32"), meta])):
        loaded = keras.models.load_model(saved.save_model(model, tmp_path / f"{model.name}.keras"))
        np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-5)
    assert [i.name for i in loaded.inputs] == ["pixels", "metadata"]
