"""Artefact detectors, removal and analysis on drawn images: skin with a lesion,
plus hair lines, dark corners, violet ink and a ruler drawn where we know."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artefact_factory import (LESION, SIZE, SKIN, skin_with_lesion, with_hair, with_ink, with_letterbox,
                              with_ruler, with_vignette)
from helpers.explain import artefacts, shortcuts
from helpers.figures import explain as figexplain


def flags(image: np.ndarray) -> dict[str, bool]:
    row = artefacts.detect(image[None]).iloc[0]
    return {a: bool(row[a]) for a in artefacts.DETECTED}


def test_clean_image_is_not_flagged():
    assert flags(skin_with_lesion()) == dict.fromkeys(artefacts.DETECTED, False)


def test_drawn_hair_is_found_and_removed():
    img, drawn = with_hair()
    assert flags(img) == {"hair": True, "vignette": False, "ink": False, "ruler": False, "letterbox": False}
    mask = artefacts.hair_mask(img)
    assert mask[drawn].mean() > 0.8  # most of every drawn hair
    assert mask[~artefacts._grow(drawn, 3)].mean() < 0.01  # little else
    cleaned = artefacts.remove(img, "hair", mask)
    off_lesion = drawn & (artefacts.lesion_mask(skin_with_lesion()) == 0)
    # hair on the skin is replaced by skin colour
    assert np.abs(cleaned[off_lesion].astype(float) - SKIN).mean() < 25
    assert not flags(cleaned)["hair"]


def test_dark_corners_are_found_and_masked():
    img = with_vignette()
    found = flags(img)
    assert found["vignette"] and not found["hair"] and not found["ruler"]
    mask = artefacts.vignette_mask(img)
    assert mask[0, 0] and mask[-1, -1] and not mask[112, 112]
    masked = artefacts.mask_vignette(img, mask)
    assert np.abs(masked[0, 0].astype(float) - SKIN).max() < 20  # painted the skin's colour
    assert np.array_equal(masked[112, 112], img[112, 112])  # the lesion is untouched
    assert not flags(masked)["vignette"]


def test_letterbox_bars_are_found_and_not_taken_for_a_vignette():
    img = with_letterbox(bar=20)
    found = flags(img)
    assert found["letterbox"] and not found["vignette"]
    mask = artefacts.letterbox_mask(img)
    assert mask[:, :20].all() and mask[:, SIZE - 20:].all() and not mask[:, 25:SIZE - 25].any()
    # a round field's dark corners are a vignette, not bars
    assert not flags(with_vignette())["letterbox"]
    # a thin dark edge (1 row) is not a bar
    edge = skin_with_lesion()
    edge[0] = 0
    assert not artefacts.letterbox_mask(edge).any()
    painted = artefacts.remove(img, "letterbox")
    assert artefacts.grey(painted)[:, :20].mean() > 0.5 and not flags(painted)["letterbox"]


def test_violet_ink_is_found_and_removed():
    img, drawn = with_ink()
    assert flags(img)["ink"]
    cleaned = artefacts.remove(img, "ink")
    assert not flags(cleaned)["ink"]
    assert np.abs(cleaned[drawn].astype(float) - SKIN).mean() < 30


def test_ruler_is_a_ruler_not_hair():
    img, drawn = with_ruler()
    found = flags(img)
    assert found["ruler"] and not found["hair"]
    assert artefacts.ruler_mask(img)[drawn].mean() > 0.7


def test_brown_lesion_texture_is_not_hair():
    """Dots and short streaks inside the lesion (pigment) must not count as hair."""
    img = skin_with_lesion(3)
    rng = np.random.default_rng(3)
    for _ in range(40):
        y, x = rng.integers(85, 135), rng.integers(75, 145)
        img[y:y + 2, x:x + rng.integers(2, 8)] = (45, 25, 20)
    assert not flags(img)["hair"]


def test_detectors_scale_with_image_size():
    img, _ = with_hair()
    small = artefacts.resize(img[None], 128)[0]
    assert small.shape == (128, 128, 3)
    assert flags(small)["hair"]
    assert not flags(artefacts.resize(skin_with_lesion()[None], 128)[0])["hair"]


def test_fill_methods_replace_only_the_mask():
    img = skin_with_lesion()
    mask = np.zeros(img.shape[:2], bool)
    mask[20:24, 10:200] = True
    dirty = img.copy()
    dirty[mask] = 0
    for method in ("smooth", "biharmonic"):
        out = artefacts.fill(dirty, mask, method=method)
        assert np.array_equal(out[~mask], dirty[~mask])
        assert np.abs(out[mask].astype(float) - SKIN).mean() < 15
    with pytest.raises(ValueError):
        artefacts.fill(dirty, mask, method="nope")


def test_scan_keeps_masks_of_flagged_images_only():
    hair, _ = with_hair()
    images = np.stack([skin_with_lesion(), hair, with_vignette()])
    found = artefacts.scan(images, ["a.jpg", "b.jpg", "c.jpg"])
    assert list(found.table["path"]) == ["a.jpg", "b.jpg", "c.jpg"]
    assert list(found.flagged("hair")) == [1] and list(found.flagged("vignette")) == [2]
    assert set(found.masks["hair"]) == {1} and set(found.lesions) == {1, 2}
    # control mask: same shape turned round, never on the artefact or the lesion
    ctrl = artefacts.control_mask(found.masks["hair"][1], found.lesions[1])
    assert not (ctrl & found.masks["hair"][1]).any() and not (ctrl & found.lesions[1]).any()


def test_agreement_counts_and_kappa():
    detected = pd.DataFrame({"path": list("abcd"), "hair": [True, True, False, False],
                             "vignette": [True, False, False, False], "ink": [False] * 4, "ruler": [False] * 4})
    tags = pd.DataFrame({"path": list("abcd"), "hair": [1, 0, 0, 0], "vignette": [1, 0, 0, 0],
                         "ink": [0] * 4, "ruler": [0] * 4})
    table = shortcuts.agreement(detected, tags)
    assert table.loc["hair", ["both", "detector_only", "eye_only"]].tolist() == [1, 1, 0]
    assert table.loc["hair", "agreement"] == pytest.approx(0.75)
    assert table.loc["hair", "kappa"] == pytest.approx(0.5)
    assert table.loc["vignette", "kappa"] == pytest.approx(1.0)
    # precision 1 of 2 flagged, recall 1 of 1 marked; Wilson intervals around them
    assert table.loc["hair", "precision"] == pytest.approx(0.5) and table.loc["hair", "recall"] == pytest.approx(1.0)
    lo, hi = table.loc["hair", "precision_ci95"]
    assert 0 < lo < 0.5 < hi < 1
    # artefacts the labels do not carry (here letterbox) are left out, not counted as absent
    assert "letterbox" not in table.index
    # nothing flagged: precision undefined, not zero
    assert np.isnan(table.loc["ink", "precision"]) and table.loc["ink", "precision_ci95"] == [None, None]
    lines = shortcuts.detector_sentences(table, "drawn images")
    assert lines[0].startswith("hair: precision 0.50 [") and "n/a" in lines[2]


def test_training_labels_file_is_well_formed():
    """The labels by eye that the detectors are checked against: training images only, 150 or more."""
    from helpers.config import REPO_ROOT

    labels = pd.read_csv(REPO_ROOT / "tests" / "fixtures" / "artefact_labels_training.csv", keep_default_na=False)
    assert len(labels) >= 150 and labels["path"].is_unique
    assert labels["path"].str.match(r"^train/(benign|malignant)/\d+\.jpg$").all()
    marked = ["ruler", "ink", "vignette", "letterbox"]
    assert labels[marked].isin([0, 1]).all().all() and (labels[marked].sum() > 0).all()
    assert labels["how"].str.contains("before any detector").all()


def test_by_eye_tags_file_is_well_formed():
    from helpers.config import REPO_ROOT

    tags = pd.read_csv(REPO_ROOT / "tests" / "fixtures" / "artefact_tags_by_eye.csv")
    assert 20 <= len(tags) and tags["path"].is_unique
    tagged = [a for a in artefacts.DETECTED if a != "letterbox"]  # tagged before the letterbox detector existed
    assert set(tagged) <= set(tags.columns)
    assert tags[tagged + ["seen_in_tuning"]].isin([0, 1]).all().all()
    assert tags["path"].str.match(r"^test/(benign|malignant)/\d+\.jpg$").all()


def _removal_case():
    """Six images, two with hair; a fake model whose P(malignant) drops when hair goes."""
    flags_table = pd.DataFrame({a: [False] * 6 for a in artefacts.DETECTED})
    flags_table.loc[[0, 3], "hair"] = True
    y = np.array([1, 0, 0, 1, 1, 0])
    p_all = np.array([0.9, 0.2, 0.3, 0.55, 0.8, 0.1])
    empty = np.array([], dtype=int)
    removal = shortcuts.Removal(
        p_all=p_all,
        index={a: (np.array([0, 3]) if a == "hair" else empty) for a in artefacts.DETECTED},
        after={a: (np.array([0.7, 0.25]) if a == "hair" else np.array([])) for a in artefacts.DETECTED},
        control={a: (np.array([0.89, 0.55]) if a == "hair" else None) for a in artefacts.DETECTED})
    return flags_table, y, p_all, removal


def test_effects_measure_auc_and_flips():
    flags_table, y, p_all, removal = _removal_case()
    table = shortcuts.effects("m", flags_table, y, p_all, removal, threshold=0.5, n_resamples=50)
    hair = table.set_index("artefact").loc["hair"]
    assert hair["n_with"] == 2 and hair["n_with_malignant"] == 2 and hair["n_without"] == 4
    assert hair["auc_with"] is None  # one class only among the flagged images
    assert hair["auc_without"] == pytest.approx(1.0)
    assert hair["mean_dp"] == pytest.approx(-0.25) and hair["mean_abs_dp"] == pytest.approx(0.25)
    assert hair["control_mean_abs_dp"] == pytest.approx(0.005)
    assert hair["flips"] == 1 and hair["flips_to_benign"] == 1
    assert hair["auc_all_before"] == pytest.approx(1.0)
    assert hair["auc_all_after"] == pytest.approx(8 / 9)  # the cleaned 0.25 now ranks below a benign 0.3
    text = "\n".join(shortcuts.interpret(table, shortcuts.rates_by_class(flags_table, y)))
    assert "evidence for malignant" in text and "ink: not found" in text
    (line,) = shortcuts.bottom_line(table)
    assert line.startswith("m: removing hair") and "hair moves them beyond" in line and "1 decisions" in line


def test_removal_predictions_runs_a_model_on_cleaned_images():
    hair, _ = with_hair()
    images = np.stack([skin_with_lesion(), hair])
    found = artefacts.scan(images)
    calls = []

    def predict(x):  # darker image -> more "malignant"; records the sizes it sees
        calls.append(x.shape)
        return 1 - x.mean(axis=(1, 2, 3)) / 255

    removal = shortcuts.removal_predictions(predict, 64, images, found)
    assert all(shape[1:] == (64, 64, 3) for shape in calls)
    assert list(removal.index["hair"]) == [1]
    assert removal.after["hair"][0] < removal.p_all[1]  # hair removed: lighter, less "malignant"
    assert removal.control["vignette"] is None


def test_figures_draw(tmp_path):
    hair, _ = with_hair()
    ink, _ = with_ink()
    ruler, _ = with_ruler()
    images = np.stack([hair, with_vignette(), ink, ruler])
    found = artefacts.scan(images, [f"test/benign/{i}.jpg" for i in range(4)])
    fig = figexplain.plot_examples(images, found.table["path"].tolist(), found, per_artefact=1)
    assert len(fig.axes) == 3 * 4
    flags_table, y, p_all, removal = _removal_case()
    table = pd.concat([shortcuts.effects(m, flags_table, y, p_all, removal, 0.5, n_resamples=20)
                       for m in ("a", "b")])
    fig = figexplain.plot_effects(table)
    fig.savefig(tmp_path / "effects.png")
    assert (tmp_path / "effects.png").stat().st_size > 1000


def test_lesion_mask_in_one_or_several_parts():
    img = skin_with_lesion()
    img[15:55, 15:55] = LESION  # a second, smaller dark patch away from the centre
    one = artefacts.lesion_mask(img)
    both = artefacts.lesion_mask(img, all_parts=True)
    assert one[112, 112] and not one[35, 35]
    assert both[112, 112] and both[35, 35]


def test_examples_prefer_images_confirmed_by_eye():
    hair_a, _ = with_hair(1)
    hair_b, _ = with_hair(2)
    images = np.stack([hair_a, hair_b, skin_with_lesion()])
    paths = ["a.jpg", "b.jpg", "c.jpg"]
    found = artefacts.scan(images, paths)
    first = figexplain._example_rows(found, paths, 1, None)
    preferred = figexplain._example_rows(found, paths, 1, {"hair": {"b.jpg"}})
    assert [i for a, i in preferred if a == "hair"] == [1]
    assert len([i for a, i in first if a == "hair"]) == 1
