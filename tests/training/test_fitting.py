"""helpers.training.fitting: seeded augmented input, early stopping, two-stage transfer, class weights."""
import keras
import numpy as np
import pytest

from helpers import seeding
from helpers.models import baselines, saved, transfer
from helpers.training import augment, fitting, imbalance


def test_augmentation_changes_every_epoch_but_is_seeded():
    x = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    y = np.array([0, 1, 0, 1])

    def first_two_epochs(seed):
        ds, steps = fitting.train_dataset(x, y, batch_size=4, seed=seed, augment=augment.Augmentation())
        it = iter(ds)
        return [next(it)[0].numpy() for _ in range(2 * steps)]

    a, b = first_two_epochs(3), first_two_epochs(3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))  # same seed, same stream
    assert not np.array_equal(np.sort(a[0], axis=0), np.sort(a[1], axis=0))  # epoch 2 differs
    assert a[0].min() >= 0 and a[0].max() <= 255


def test_class_weights_balance_the_loss():
    w = imbalance.class_weights(np.array([0, 0, 0, 1]), n_classes=2)
    assert w[0] * 3 == pytest.approx(w[1] * 1)


def _train_once(x, y, seed):
    seeding.set_seed(seed)
    model = baselines.build_small_cnn(32)
    fitting.fit(model, x[:32], y[:32], x[32:], y[32:], epochs=2, seed=seed, batch_size=8,
            augment=augment.Augmentation(), verbose=0)
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
    model = baselines.build_small_cnn(32)
    result = fitting.fit(model, x[:32], y[:32], x[32:], y[32:], epochs=30, seed=0, batch_size=8,
                     patience=1, verbose=0)
    assert result.epochs_run < 30 and 1 <= result.best_epoch <= result.epochs_run
    assert result.best_score == max(result.history["val_auc"])
    assert set(result.history) >= {"loss", "val_loss", "auc", "val_auc"}
    path = saved.save_model(model, tmp_path / "cnn.keras")
    reloaded = keras.models.load_model(path)
    assert np.array_equal(fitting.predict_proba(model, x), fitting.predict_proba(reloaded, x))


def test_transfer_model_trains_head_then_finetunes(tiny_data, tmp_path):
    x, y = tiny_data
    seeding.set_seed(0)
    tm = transfer.build_vgg16_transfer(32, try_imagenet=False)
    xs, ys = {"train": x[:32], "val": x[32:]}, {"train": y[:32], "val": y[32:]}
    result = fitting.fit_transfer(tm, xs, ys, head_epochs=2, finetune_epochs=1,
                              unfreeze=transfer.unfreeze_vgg16_last_block, seed=0, batch_size=8, verbose=0)
    assert result.epochs_run == 3 and result.finetune_epochs_run == 1 and len(result.history["val_auc"]) == 3
    reloaded = keras.models.load_model(saved.save_model(tm.model, tmp_path / "vgg.keras"))
    assert np.allclose(fitting.predict_proba(tm.model, x[:4]), fitting.predict_proba(reloaded, x[:4]), atol=1e-6)


def test_split_backbone_keeps_the_models_preprocessing(tiny_data):
    """The colour-constancy layer of notebook 3's Lite0 sits before the base: the
    bottom half must apply it, or cached maps would not be the model's own."""
    x, _ = tiny_data
    seeding.set_seed(0)
    tm = transfer.build_lite0_transfer(32, pretrained=False, colour_constancy=True)
    bottom, top = transfer.split_backbone(tm, 5)
    direct = fitting.predict_array(tm.model, x[:6])
    via_maps = fitting.predict_array(transfer.maps_model(tm, top), fitting.predict_array(bottom, x[:6]))
    np.testing.assert_allclose(direct, via_maps, atol=1e-5)
    plain = transfer.build_lite0_transfer(32, pretrained=False)
    assert transfer.split_backbone(plain, 5)[0].input_shape == bottom.input_shape


def test_finetuning_on_cached_maps_trains_only_the_top_of_the_saved_model(tiny_data):
    x, y = tiny_data
    seeding.set_seed(0)
    tm = transfer.build_lite0_transfer(32, pretrained=False, colour_constancy=True)
    bottom, top = transfer.split_backbone(tm, 3)
    before_bottom, before_top = bottom.get_weights(), top.get_weights()
    xs, ys = {"train": x[:32], "val": x[32:]}, {"train": y[:32], "val": y[32:]}
    result = fitting.fit_transfer(tm, xs, ys, head_epochs=1, finetune_epochs=2, unfreeze=transfer.lite0_unfreezer(3),
                                  seed=0, batch_size=8, augment=augment.Augmentation(), pool_copies=3,
                                  split=lambda m: transfer.split_backbone(m, 3), patience=5, verbose=0)
    assert result.finetune_epochs_run == 2 and len(result.history["val_auc"]) == 3
    assert all(np.array_equal(a, b) for a, b in zip(before_bottom, bottom.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(before_top, top.get_weights()))
    # the saved model (pixels in) is the model that was fine-tuned on maps
    np.testing.assert_allclose(fitting.predict_array(tm.model, x[32:]),
                               fitting.predict_array(transfer.maps_model(tm, top), fitting.predict_array(bottom, x[32:])),
                               atol=1e-5)


def _run(val_auc, finetune=0):
    return fitting.FitResult({"val_auc": val_auc, "loss": [1.0] * len(val_auc)}, 1.0, len(val_auc),
                     int(np.argmax(val_auc)) + 1, max(val_auc), finetune)


def test_stopping_reading_tells_early_stopping_from_a_cap_that_cut_training_short():
    early = fitting.stopping_reading(_run([0.6, 0.7, 0.65, 0.66]), cap=10, patience=2)
    assert early.startswith("early stopping ended it after 4 of at most 10 epochs") and "epoch 2" in early
    cut = fitting.stopping_reading(_run([0.6, 0.7, 0.8, 0.9]), cap=4, patience=2)
    assert "may still have been improving" in cut and "epoch 4" in cut
    levelled = fitting.stopping_reading(_run([0.6, 0.9, 0.8, 0.7, 0.7]), cap=5, patience=2)
    assert "did not cut it short" in levelled and "(2) was 3 epochs" in levelled


def test_stopping_reading_of_a_transfer_head_reads_stage_one_only():
    # stage 1: 3 head epochs (best the 3rd, at its cap of 3), then 2 fine-tuning epochs that do better
    run = _run([0.6, 0.7, 0.8, 0.9, 0.95], finetune=2)
    assert "may still have been improving" in fitting.stopping_reading(run, cap=3, patience=2, head_only=True)
    assert fitting.stopping_reading(run, cap=5, patience=2, head_only=True).startswith("early stopping ended it after 3")
