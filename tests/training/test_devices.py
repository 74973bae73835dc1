"""Where training runs: the CPU default changes nothing, and the GPU path's code
(MirroredStrategy, set for the whole process) trains the project's models on one
CPU replica to the same weights."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.models.baselines import build_small_cnn
from helpers.seeding import set_seed
from helpers.training import devices
from helpers.training.fitting import fit, predict_proba


@pytest.fixture(autouse=True)
def _defaults_after(monkeypatch):
    monkeypatch.delenv(devices.DEVICES_ENV_VAR, raising=False)
    devices.reset()
    yield
    devices.reset()


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(48, 16, 16, 3)).astype("uint8")
    return x, (x[..., 0].mean(axis=(1, 2)) > 127).astype("int64")  # learnable: the red channel's mean


def _train(seed: int = 0) -> tuple[np.ndarray, object, object]:
    """The project's own path: the notebook-2 CNN through ``fitting.fit`` (seeded, shuffled)."""
    x, y = _data()
    set_seed(seed)
    model = build_small_cnn(16)
    result = fit(model, x[:32], y[:32], x[32:], y[32:], epochs=2, seed=seed, batch_size=8, verbose=0)
    return predict_proba(model, x[32:]), result, model


def _unshuffled_losses() -> list[float]:
    """Per-batch training losses of the same CNN (no dropout) on batches in a fixed order."""
    x, y = _data()
    set_seed(0)
    model = build_small_cnn(16, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    batches = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y.astype("float32"))).batch(8)
    seen = []
    log = keras.callbacks.LambdaCallback(on_train_batch_end=lambda _, logs: seen.append(logs["loss"]))
    model.fit(batches, epochs=2, verbose=0, shuffle=False, callbacks=[log])
    return seen


def test_cpu_and_auto_without_a_gpu_change_nothing():
    assert devices.gpus() == []  # tensorflow-cpu: the suite runs where every committed number ran
    chosen = devices.use_devices("auto")
    assert chosen == {"setting": "auto", "gpus": [], "strategy": "default (one device)", "replicas": 1,
                      "mixed_precision": False}
    assert not tf.distribute.has_strategy() and keras.mixed_precision.global_policy().name == "float32"
    assert devices.describe(chosen) == "devices: CPU"
    devices.reset()
    assert devices.use_devices("cpu")["strategy"] == "default (one device)"


def test_mirrored_strategy_on_one_cpu_trains_the_projects_models():
    """The code path a GPU user gets, on the CPU: models built in a notebook's cells (no
    scope around them) are built under the strategy, and fit and predict run through it.

    On batches in a fixed order, without dropout draws, a training step is the default
    path's to the float. Through ``fitting.fit`` the shuffle order and the dropout draws
    differ from the default path's for the same seed (seen here: Keras' distributed input
    and the replica context draw other random numbers; a second model built in the same
    process draws differently again, while a fresh process repeats the first), so a GPU
    run is not bit-equal to the CPU run whose numbers are committed."""
    default_losses = _unshuffled_losses()

    chosen = devices.use_devices("mirrored")
    assert chosen["strategy"] == "MirroredStrategy" and chosen["replicas"] == 1
    assert chosen["mixed_precision"] is False  # float16 only on a GPU
    assert "MirroredStrategy over the CPU" in devices.describe(chosen)
    np.testing.assert_allclose(_unshuffled_losses(), default_losses, rtol=1e-6)

    p_mirrored, r_mirrored, m_mirrored = _train()
    assert isinstance(m_mirrored.distribute_strategy, tf.distribute.MirroredStrategy)
    assert any("MirroredVariable" in type(v.value).__name__ for v in m_mirrored.weights)
    assert r_mirrored.epochs_run == 2 and r_mirrored.best_epoch in (1, 2)
    assert set(r_mirrored.history) == {"loss", "auc", "val_loss", "val_auc"}  # what fit records on the default path
    assert p_mirrored.shape == (16,) and np.all((p_mirrored >= 0) & (p_mirrored <= 1))


def test_the_setting_comes_from_the_environment_and_is_checked(monkeypatch):
    monkeypatch.setenv(devices.DEVICES_ENV_VAR, "mirrored")
    assert devices.use_devices()["setting"] == "mirrored"
    assert devices.use_devices("mirrored")["replicas"] == 1  # the same again: the first choice
    with pytest.raises(RuntimeError, match="restart the kernel"):
        devices.use_devices("cpu")  # models built so far keep their strategy
    devices.reset()
    with pytest.raises(ValueError, match="one of auto, cpu, mirrored"):
        devices.use_devices("gpu")
