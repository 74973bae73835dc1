import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import seeding
from helpers.config import REPO_ROOT
from helpers.models import baselines, heads, layers, saved, transfer
from helpers.training.imbalance import make_loss


@pytest.mark.parametrize("builder", [baselines.build_mlp, baselines.build_small_cnn])
def test_baselines_output_one_probability(builder):
    model = builder(32)
    p = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert p.shape == (2, 1) and np.all((p >= 0) & (p <= 1))


def test_small_cnn_has_the_documented_blocks():
    cnn = baselines.build_small_cnn(64)
    convs = [l.filters for l in cnn.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs == [32, 64, 128]
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in cnn.layers) == 3
    assert any(isinstance(l, keras.layers.Dense) and l.units == 128 and l.kernel_regularizer for l in cnn.layers)


def test_vgg_preprocess_is_bgr_minus_imagenet_means():
    layer = layers.VGGPreprocess()
    rgb = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    out = np.asarray(layer(rgb))
    assert np.allclose(out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)


def test_vgg16_without_weights_is_labelled_random_init(capsys):
    tm = transfer.build_vgg16_transfer(32, try_imagenet=False)
    assert tm.weights == "none" and tm.model.name == "vgg16_random_init"
    assert not tm.base.trainable
    n = transfer.unfreeze_vgg16_last_block(tm)
    assert n == 6  # block5: three convolutions, kernel and bias each
    assert all(l.trainable == l.name.startswith("block5") for l in tm.base.layers if l.weights)


def test_save_model_refuses_other_formats(tmp_path):
    with pytest.raises(ValueError, match=".keras"):
        saved.save_model(baselines.build_mlp(8), tmp_path / "m.h5")


def test_shades_of_gray_removes_a_colour_cast_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.uniform(60, 180, (1, 16, 16, 1)).repeat(3, axis=-1)
    tinted = (grey * np.array([1.25, 1.0, 0.7])).astype("float32")  # a warm cast
    out = np.asarray(layers.ShadesOfGray()(tinted))
    means = out.reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) / means.mean() < 0.02  # channels balanced again
    assert abs(out.mean() - tinted.mean()) / tinted.mean() < 0.05  # brightness kept
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, layers.ShadesOfGray(power=4.0)(inputs))
    reloaded = keras.models.load_model(saved.save_model(model, tmp_path / "sog.keras"))
    assert reloaded.layers[1].power == 4.0
    assert np.allclose(reloaded.predict(tinted, verbose=0), model.predict(tinted, verbose=0))


def test_batch_norm_calibration_revives_a_random_base():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    seeding.set_seed(0)
    tm = transfer.build_lite0_transfer(32, pretrained=False)
    before = tm.features.predict(images, verbose=0)
    assert before.std() < 1e-6  # the signal vanishes through the random blocks
    assert transfer.calibrate_batch_norm(tm, images, seed=0, batch_size=32) == 64
    after = tm.features.predict(images, verbose=0)
    assert after.std(axis=0).mean() > 1e-2  # features now differ between images
    # Two equal batches: the stem's moving mean is the mean of its conv output over all images.
    stem = keras.Model(tm.base.inputs, tm.base.get_layer("stem_conv").output)
    expected = stem.predict(images.astype("float32"), verbose=0).mean(axis=(0, 1, 2))
    bn = tm.base.get_layer("stem_bn")
    assert np.allclose(np.asarray(bn.moving_mean), expected, rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99 and not tm.base.trainable  # restored for training


def test_a_model_whose_head_was_compiled_with_the_focal_loss_loads_in_a_fresh_process(tmp_path):
    # Notebook 5's seven-class files carry their head's focal loss; `predict --model lite0_7class` loads
    # them without importing training, and failed ("Could not locate class 'SparseFocalLoss'").
    head = heads.build_head((8,), 3, name="head")
    head.compile(optimizer="adam", loss=make_loss("focal"))
    features = keras.Input((8,))
    path = saved.save_model(keras.Model(features, head(features)), tmp_path / "focal.keras")
    code = "import sys; from helpers.models import saved; print(saved.load_model(sys.argv[1]).output_shape)"
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(None, 3)")
