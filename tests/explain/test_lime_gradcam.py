"""helpers.explain: LIME on the exact reported image, Grad-CAM, lesion focus, test errors;
helpers.models.saved.load_best picks the model to explain on validation."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from helpers import figures, results, seeding
from helpers.data import images
from helpers.explain import focus, gradcam, lime
from helpers.figures import explain as figexplain
from helpers.models import baselines, saved, transfer
from helpers.training import fitting


@pytest.fixture(scope="module")
def cnn():
    seeding.set_seed(0)
    return baselines.build_small_cnn(32)


@pytest.fixture
def image():
    rng = np.random.default_rng(5)
    img = rng.integers(100, 200, (32, 32, 3), dtype=np.uint8)
    img[10:22, 10:22] = 30
    return img


def test_two_class_predict_fn_sums_to_one_for_a_sigmoid_model(cnn, image):
    probs = lime.two_class_predict_fn(cnn)(np.stack([image, image[::-1]]))
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1)
    p = cnn.predict(image[None].astype("float32"), verbose=0)[0, 0]
    assert probs[0, 1] == pytest.approx(p, abs=1e-6)


def test_lime_explains_the_given_pixels_and_is_repeatable(cnn, image):
    a = lime.explain_lime(cnn, "x/test/1.jpg", image, 1, num_samples=120, seed=3, n_segments=20)
    b = lime.explain_lime(cnn, "x/test/1.jpg", image, 1, num_samples=120, seed=3, n_segments=20)
    assert np.array_equal(a.image, image) and a.pixel_sha256 == b.pixel_sha256
    assert a.p_malignant == pytest.approx(float(cnn.predict(image[None].astype("float32"), verbose=0)[0, 0]), abs=1e-6)
    assert np.array_equal(a.mask(1), b.mask(1)) and np.array_equal(a.mask(0), b.mask(0))
    assert a.segments.max() + 1 >= 8  # SLIC gives usable superpixels at small sizes
    assert set(a.weights) == {0, 1}


def test_choose_images_follows_the_rules():
    table = pd.DataFrame({"path": [f"{i}.jpg" for i in range(6)], "label": [0, 0, 0, 1, 1, 1]})
    p = np.array([0.05, 0.9, 0.52, 0.95, 0.1, 0.49])
    chosen = lime.choose_images(table, p, threshold=0.5)
    by_reason = dict(zip(chosen["reason"], chosen["path"]))
    assert by_reason["most confident correct, true benign"] == "0.jpg"
    assert by_reason["most confident wrong, true benign"] == "1.jpg"
    assert by_reason["most confident correct, true malignant"] == "3.jpg"
    assert by_reason["most confident wrong, true malignant"] == "4.jpg"
    assert set(chosen.loc[chosen["reason"] == "nearest the threshold", "path"]) == {"2.jpg", "5.jpg"}
    assert chosen["row"].is_unique


def test_grad_cam_for_plain_and_transfer_models(cnn, image):
    cam = gradcam.grad_cam(cnn, image)
    assert cam.shape == image.shape[:2] and 0 <= cam.min() and cam.max() <= 1 + 1e-6
    tm = transfer.build_vgg16_transfer(32, try_imagenet=False)
    assert gradcam.last_conv_layer(tm.model)[1] == "block5_conv3"
    assert gradcam.grad_cam(tm.model, image).shape == image.shape[:2]


# ---------------------------------------------------------------- added for notebook 4

from image_factory import save, textured


@pytest.fixture
def test_folder(tmp_path):
    """A small test split on disk (JPEG and PNG) and the table the notebook would hold."""
    paths = [save(textured(i, 48), tmp_path / "test" / cls / f"{i}.{ext}")
             for i, (cls, ext) in enumerate([("benign", "jpg"), ("benign", "png"), ("malignant", "jpg"),
                                             ("malignant", "png"), ("benign", "jpg"), ("malignant", "jpg")])]
    table = pd.DataFrame({"path": [str(p) for p in paths], "label": [0, 0, 1, 1, 0, 1]})
    return table


def test_explained_image_is_exactly_the_reported_test_image(cnn, test_folder):
    x, bad = images.load_images(test_folder["path"].tolist(), 32)
    assert not bad
    p = fitting.predict_proba(cnn, x)
    chosen = lime.choose_images(test_folder, p, threshold=float(np.median(p)))
    explained = lime.explain_chosen(cnn, chosen, x, num_samples=60, seed=1, n_segments=12)
    for e, row in zip(explained, chosen.itertuples()):
        assert e.path == row.path
        assert lime.same_pixels_as_file(e, 32)  # same file, same pixels as the loader reads
        assert e.p_malignant == pytest.approx(row.p, abs=1e-5)  # the reported prediction
    # a different file, or the right file with one pixel changed, is caught
    other = dataclasses.replace(explained[0], path=test_folder["path"].iloc[-1]
                                if explained[0].path != test_folder["path"].iloc[-1] else test_folder["path"].iloc[0])
    assert not lime.same_pixels_as_file(other, 32)
    touched = explained[0].image.copy()
    touched[0, 0, 0] ^= 1
    assert not lime.same_pixels_as_file(dataclasses.replace(explained[0], image=touched), 32)


def test_same_seed_same_mask_for_every_hide_mode(cnn, image):
    for hide in ("skin", "black", "mean"):
        a = lime.explain_lime(cnn, "a.jpg", image, 0, num_samples=80, seed=7, n_segments=16, hide=hide)
        b = lime.explain_lime(cnn, "a.jpg", image, 0, num_samples=80, seed=7, n_segments=16, hide=hide)
        assert a.weights == b.weights and np.array_equal(a.mask(0), b.mask(0)), hide


def test_batched_predict_matches_keras_predict(cnn, image):
    batch = np.stack([image, image[::-1], image[:, ::-1]] * 5)
    p = lime.malignant_predict_fn(cnn, batch_size=4)(batch)
    expected = cnn.predict(batch.astype("float32"), verbose=0).reshape(-1)
    assert p.shape == (15,) and np.allclose(p, expected, atol=1e-6)


def test_grad_cam_is_not_empty_for_a_saturated_prediction(image):
    seeding.set_seed(0)
    model = baselines.build_small_cnn(32)
    final = model.get_layer("p_malignant")
    final.bias.assign(np.array([60.0], dtype="float32"))  # P(malignant) = 1.0 in float32
    assert float(model.predict(image[None].astype("float32"), verbose=0)[0, 0]) == 1.0
    cam = gradcam.grad_cam(model, image, cls=1)
    assert cam.max() > 0.5  # the gradient of the logit does not underflow


def test_best_recorded_uses_validation_and_present_files(out_dir):
    seeding.set_seed(0)
    saved.save_model(baselines.build_small_cnn(32), out_dir.models / "cnn_a.keras")
    for name, backbone, val, test_auc, present in (("cnn_a", "small_cnn", 0.80, 0.60, True),
                                                   ("cnn_b", "small_cnn", 0.90, 0.99, False),
                                                   ("mlp", "mlp", 0.95, 0.99, True)):
        results.record_model(name, {"backbone": backbone, "model_file": f"{name}.keras", "image_size": 32,
                                    "validation": {"auc": val}, "test": {"auc": test_auc}}, out_dir.results)
    name, record, model = saved.load_best(out_dir, backbones=("small_cnn",))
    assert name == "cnn_a" and record["backbone"] == "small_cnn" and model.input_shape[1] == 32
    with pytest.raises(FileNotFoundError):
        saved.load_best(out_dir, backbones=("vgg16", "efficientnet_lite0"))


def test_error_list_and_contact_sheet():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"path": [f"/data/test/c/{i}.jpg" for i in range(8)], "label": [0, 0, 0, 0, 1, 1, 1, 1]})
    p = np.array([0.1, 0.9, 0.6, 0.2, 0.8, 0.05, 0.45, 0.7])
    wrong = focus.list_errors(table, p, threshold=0.5)
    # missed malignant first (most confident first), then false alarms
    assert wrong["row"].tolist() == [5, 6, 1, 2]
    assert wrong["kind"].tolist() == ["missed malignant"] * 2 + ["false alarm"] * 2
    images = rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    fig = figexplain.error_contact_sheet(table, images, p, 0.5, "m", ncols=3)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titled) == 4 and titled[0].startswith("FN 5.jpg") and titled[2].startswith("FP 1.jpg")


def test_lime_gradcam_figure_and_lesion_focus(cnn, image, tmp_path):
    e = lime.explain_lime(cnn, "/d/test/benign/1.jpg", image, 0, num_samples=60, seed=0, n_segments=16,
                             reason="nearest the threshold")
    fig = figexplain.plot_lime_gradcam([e, e], cnn, 0.5, "cnn", num_features=3)
    assert len(fig.axes) == 10 + 1  # 2 rows x 5 panels and the Grad-CAM colour bar
    assert "Grad-CAM weight" in fig.axes[-1].get_ylabel()
    figures.save_fig("lime_gradcam", fig, images_dir=tmp_path)  # as a notebook saves it: no layout warning
    fig = figexplain.plot_explanations([e], 0.5, model=cnn, num_features=3)
    assert len(fig.axes) == 4 + 1
    figures.save_fig("lime_explanations", fig, images_dir=tmp_path)
    lesion = np.zeros(image.shape[:2], bool)
    lesion[10:22, 10:22] = True
    on_lesion = focus.lesion_focus(e, np.ones(image.shape[:2]), lesion, threshold=0.5)
    assert on_lesion["lesion_area"] == pytest.approx(lesion.mean())
    assert on_lesion["gradcam_on_lesion"] == pytest.approx(lesion.mean())  # a flat map: no focus
    assert 0 <= on_lesion["lime_on_lesion"] <= 1
