import keras
import numpy as np
import pytest

from helpers import models, seeding, training


@pytest.fixture
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    y = np.tile([0, 1], 24)
    x[y == 1, 8:24, 8:24] = 20  # a dark "lesion" makes the classes learnable
    return x, y


@pytest.mark.parametrize("builder", [models.build_mlp, models.build_small_cnn])
def test_baselines_output_one_probability(builder):
    model = builder(32)
    p = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert p.shape == (2, 1) and np.all((p >= 0) & (p <= 1))


def test_small_cnn_has_the_documented_blocks():
    cnn = models.build_small_cnn(64)
    convs = [l.filters for l in cnn.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs == [32, 64, 128]
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in cnn.layers) == 3
    assert any(isinstance(l, keras.layers.Dense) and l.units == 128 and l.kernel_regularizer for l in cnn.layers)


def test_vgg_preprocess_is_bgr_minus_imagenet_means():
    layer = models.VGGPreprocess()
    rgb = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    out = np.asarray(layer(rgb))
    assert np.allclose(out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)


def test_vgg16_without_weights_is_labelled_random_init(capsys):
    tm = models.build_vgg16_transfer(32, try_imagenet=False)
    assert tm.weights == "none" and tm.model.name == "vgg16_random_init"
    assert not tm.base.trainable
    n = models.unfreeze_vgg16_last_block(tm)
    assert n == 6  # block5: three convolutions, kernel and bias each
    assert all(l.trainable == l.name.startswith("block5") for l in tm.base.layers if l.weights)


def test_augmentation_changes_every_epoch_but_is_seeded():
    x = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    y = np.array([0, 1, 0, 1])

    def first_two_epochs(seed):
        ds, steps = training.train_dataset(x, y, batch_size=4, seed=seed, augment=training.Augmentation())
        it = iter(ds)
        return [next(it)[0].numpy() for _ in range(2 * steps)]

    a, b = first_two_epochs(3), first_two_epochs(3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))  # same seed, same stream
    assert not np.array_equal(np.sort(a[0], axis=0), np.sort(a[1], axis=0))  # epoch 2 differs
    assert a[0].min() >= 0 and a[0].max() <= 255


def test_class_weights_balance_the_loss():
    w = training.balanced_class_weight(np.array([0, 0, 0, 1]))
    assert w[0] * 3 == pytest.approx(w[1] * 1)


def _train_once(x, y, seed):
    seeding.set_seed(seed)
    model = models.build_small_cnn(32)
    training.fit(model, x[:32], y[:32], x[32:], y[32:], epochs=2, seed=seed, batch_size=8,
                 augment=training.Augmentation(), verbose=0)
    return model.get_weights()


def test_two_seeded_trainings_give_identical_weights(tiny_data):
    x, y = tiny_data
    w1, w2 = _train_once(x, y, 7), _train_once(x, y, 7)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    w3 = _train_once(x, y, 8)
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w3))


def test_fit_stops_early_and_saved_model_reloads_exactly(tiny_data, tmp_path):
    x, y = tiny_data
    seeding.set_seed(0)
    model = models.build_small_cnn(32)
    fit = training.fit(model, x[:32], y[:32], x[32:], y[32:], epochs=30, seed=0, batch_size=8,
                       patience=1, verbose=0)
    assert fit.epochs_run < 30 and 1 <= fit.best_epoch <= fit.epochs_run
    assert set(fit.history) >= {"loss", "val_loss", "auc", "val_auc"}
    path = training.save_model(model, tmp_path / "cnn.keras")
    reloaded = keras.models.load_model(path)
    assert np.array_equal(training.predict_proba(model, x), training.predict_proba(reloaded, x))


def test_save_model_refuses_other_formats(tmp_path):
    with pytest.raises(ValueError, match=".keras"):
        training.save_model(models.build_mlp(8), tmp_path / "m.h5")


def test_transfer_model_trains_head_then_finetunes(tiny_data, tmp_path):
    x, y = tiny_data
    seeding.set_seed(0)
    tm = models.build_vgg16_transfer(32, try_imagenet=False)
    xs, ys = {"train": x[:32], "val": x[32:]}, {"train": y[:32], "val": y[32:]}
    fit = training.fit_transfer(tm, xs, ys, head_epochs=2, finetune_epochs=1,
                                unfreeze=models.unfreeze_vgg16_last_block, seed=0, batch_size=8, verbose=0)
    assert fit.epochs_run == 3 and fit.finetune_epochs_run == 1 and len(fit.history["val_auc"]) == 3
    reloaded = keras.models.load_model(training.save_model(tm.model, tmp_path / "vgg.keras"))
    assert np.allclose(training.predict_proba(tm.model, x[:4]), training.predict_proba(reloaded, x[:4]), atol=1e-6)


def test_shades_of_gray_removes_a_colour_cast_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.uniform(60, 180, (1, 16, 16, 1)).repeat(3, axis=-1)
    tinted = (grey * np.array([1.25, 1.0, 0.7])).astype("float32")  # a warm cast
    out = np.asarray(models.ShadesOfGray()(tinted))
    means = out.reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) / means.mean() < 0.02  # channels balanced again
    assert abs(out.mean() - tinted.mean()) / tinted.mean() < 0.05  # brightness kept
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, models.ShadesOfGray(power=4.0)(inputs))
    reloaded = keras.models.load_model(training.save_model(model, tmp_path / "sog.keras"))
    assert reloaded.layers[1].power == 4.0
    assert np.allclose(reloaded.predict(tinted, verbose=0), model.predict(tinted, verbose=0))


def test_batch_norm_calibration_revives_a_random_base():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    seeding.set_seed(0)
    tm = models.build_lite0_transfer(32, pretrained=False)
    before = tm.features.predict(images, verbose=0)
    assert before.std() < 1e-6  # the signal vanishes through the random blocks
    assert models.calibrate_batch_norm(tm, images, seed=0, batch_size=32) == 64
    after = tm.features.predict(images, verbose=0)
    assert after.std(axis=0).mean() > 1e-2  # features now differ between images
    # Two equal batches: the stem's moving mean is the mean of its conv output over all images.
    stem = keras.Model(tm.base.inputs, tm.base.get_layer("stem_conv").output)
    expected = stem.predict(images.astype("float32"), verbose=0).mean(axis=(0, 1, 2))
    bn = tm.base.get_layer("stem_bn")
    assert np.allclose(np.asarray(bn.moving_mean), expected, rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99 and not tm.base.trainable  # restored for training
