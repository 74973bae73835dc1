"""helpers.models.ensemble: several binary models as one saved model (mean logit),
which loads, predicts, explains (Grad-CAM) and converts like any other."""
import keras
import numpy as np
import pytest

from helpers import seeding
from helpers.explain import gradcam
from helpers.models import baselines, ensemble, saved
from helpers.training import fitting


def _logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


@pytest.fixture(scope="module")
def members():
    out = []
    for seed in (0, 1):
        seeding.set_seed(seed)
        out.append(baselines.build_small_cnn(32))
    return out


@pytest.fixture
def images():
    rng = np.random.default_rng(3)
    x = rng.integers(60, 220, (6, 32, 32, 3), dtype=np.uint8)
    x[:, 8:20, 10:24] = 40  # a dark "lesion"
    return x


def test_the_ensemble_is_the_mean_logit_of_its_members_and_survives_saving(members, images, tmp_path):
    model = ensemble.mean_logit_ensemble(members)
    p = [fitting.predict_proba(m, images) for m in members]
    expected = 1 / (1 + np.exp(-(_logit(p[0]) + _logit(p[1])) / 2))
    got = fitting.predict_proba(model, images)
    assert got == pytest.approx(expected, abs=1e-5)
    assert not np.allclose(p[0], p[1])  # two different members, or the test proves nothing
    assert [m.name for m in ensemble.ensemble_members(model)] == ["member_0", "member_1"]
    assert ensemble.ensemble_members(members[0]) is None
    loaded = saved.load_model(saved.save_model(model, tmp_path / "ens.keras"))
    assert fitting.predict_proba(loaded, images) == pytest.approx(got, abs=1e-6)
    assert len(ensemble.ensemble_members(loaded)) == 2


def test_members_must_be_binary_models_of_one_input_size(members):
    with pytest.raises(ValueError, match="at least two"):
        ensemble.mean_logit_ensemble(members[:1])
    seeding.set_seed(2)
    with pytest.raises(ValueError, match="different inputs"):
        ensemble.mean_logit_ensemble([members[0], baselines.build_small_cnn(64)])
    pixels = keras.Input((32, 32, 3))
    seven = keras.Model(pixels, keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(pixels)))
    with pytest.raises(ValueError, match="binary"):
        ensemble.mean_logit_ensemble([members[0], seven])


def test_grad_cam_of_an_ensemble_is_the_mean_of_its_members_maps(members, images):
    model = ensemble.mean_logit_ensemble(members)
    maps = [gradcam.grad_cam(m, images[0]) for m in members]
    cam = gradcam.grad_cam(model, images[0])
    assert cam == pytest.approx(np.mean(maps, axis=0), abs=1e-6)
    assert cam.shape == (32, 32) and cam.max() > 0
    traced = gradcam.GradCam(model)  # the web page's traced version gives the same map
    assert traced(images[0]) == pytest.approx(cam, abs=1e-5)
    assert gradcam.grad_cam(model, images[0], cls=0) == pytest.approx(
        np.mean([gradcam.grad_cam(m, images[0], cls=0) for m in members], axis=0), abs=1e-6)


def test_an_ensemble_of_transfer_models_explains_and_converts_to_tflite(images, tmp_path):
    from helpers.apps import tflite
    from helpers.models import transfer

    lite = []
    for seed in (0, 1):
        seeding.set_seed(seed)
        lite.append(transfer.build_lite0_transfer(32, pretrained=False, colour_constancy=True).model)
    model = ensemble.mean_logit_ensemble(lite)
    cam = gradcam.grad_cam(model, images[0])
    assert cam == pytest.approx(np.mean([gradcam.grad_cam(m, images[0]) for m in lite], axis=0), abs=1e-6)
    path = tmp_path / "ens.tflite"
    path.write_bytes(tflite.convert(model)["tflite_float"])
    runner = saved.TFLiteRunner(path)
    assert runner(images.astype("float32")).reshape(-1) == pytest.approx(fitting.predict_proba(model, images), abs=1e-4)
