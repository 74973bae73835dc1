import numpy as np
import pandas as pd
import pytest

from helpers import explain, models, seeding


@pytest.fixture(scope="module")
def cnn():
    seeding.set_seed(0)
    return models.build_small_cnn(32)


@pytest.fixture
def image():
    rng = np.random.default_rng(5)
    img = rng.integers(100, 200, (32, 32, 3), dtype=np.uint8)
    img[10:22, 10:22] = 30
    return img


def test_two_class_predict_fn_sums_to_one_for_a_sigmoid_model(cnn, image):
    probs = explain.two_class_predict_fn(cnn)(np.stack([image, image[::-1]]))
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1)
    p = cnn.predict(image[None].astype("float32"), verbose=0)[0, 0]
    assert probs[0, 1] == pytest.approx(p, abs=1e-6)


def test_lime_explains_the_given_pixels_and_is_repeatable(cnn, image):
    a = explain.explain_lime(cnn, "x/test/1.jpg", image, 1, num_samples=120, seed=3, n_segments=20)
    b = explain.explain_lime(cnn, "x/test/1.jpg", image, 1, num_samples=120, seed=3, n_segments=20)
    assert np.array_equal(a.image, image) and a.pixel_sha256 == b.pixel_sha256
    assert a.p_malignant == pytest.approx(float(cnn.predict(image[None].astype("float32"), verbose=0)[0, 0]), abs=1e-6)
    assert np.array_equal(a.mask(1), b.mask(1)) and np.array_equal(a.mask(0), b.mask(0))
    assert a.segments.max() + 1 >= 8  # SLIC gives usable superpixels at small sizes
    assert set(a.weights) == {0, 1}


def test_choose_images_follows_the_rules():
    table = pd.DataFrame({"path": [f"{i}.jpg" for i in range(6)], "label": [0, 0, 0, 1, 1, 1]})
    p = np.array([0.05, 0.9, 0.52, 0.95, 0.1, 0.49])
    chosen = explain.choose_images(table, p, threshold=0.5)
    by_reason = dict(zip(chosen["reason"], chosen["path"]))
    assert by_reason["most confident correct, true benign"] == "0.jpg"
    assert by_reason["most confident wrong, true benign"] == "1.jpg"
    assert by_reason["most confident correct, true malignant"] == "3.jpg"
    assert by_reason["most confident wrong, true malignant"] == "4.jpg"
    assert set(chosen.loc[chosen["reason"] == "nearest the threshold", "path"]) == {"2.jpg", "5.jpg"}
    assert chosen["row"].is_unique


def test_grad_cam_for_plain_and_transfer_models(cnn, image):
    cam = explain.grad_cam(cnn, image)
    assert cam.shape == image.shape[:2] and 0 <= cam.min() and cam.max() <= 1 + 1e-6
    tm = models.build_vgg16_transfer(32, try_imagenet=False)
    assert explain.last_conv_layer(tm.model)[1] == "block5_conv3"
    assert explain.grad_cam(tm.model, image).shape == image.shape[:2]
