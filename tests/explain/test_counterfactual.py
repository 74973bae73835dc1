"""Pasting artefacts onto images, the sticker bank, and the artefact augmentation,
on drawn images (tests/explain/test_artefacts.py draws them)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artefact_factory import SIZE, skin_with_lesion, with_ink, with_ruler
from helpers.explain import artefacts, counterfactual
from helpers.figures import explain as figexplain
from helpers.training.augment import ArtefactAugmentation, Augmentation, augmented_examples



def test_paste_puts_the_sticker_where_it_was_and_nothing_else():
    ruler, drawn = with_ruler()
    sticker = counterfactual.Sticker("ruler", "r.jpg", ruler, drawn)
    clean = skin_with_lesion(seed=5)
    out = counterfactual.paste(clean, sticker)
    assert (out[drawn] == ruler[drawn]).all()
    assert (out[~drawn] == clean[~drawn]).all()
    assert artefacts.detect(out[None]).iloc[0]["ruler"]
    # at another size the sticker is resized with the image
    small = counterfactual.paste(clean[::2, ::2], sticker)
    assert small.shape == (SIZE // 2, SIZE // 2, 3) and (small != clean[::2, ::2]).any()


def test_letterbox_sticker_makes_bars_the_detector_finds():
    bars = counterfactual.letterbox(SIZE, width=0.1)
    out = counterfactual.paste(skin_with_lesion(), bars)
    assert artefacts.detect(out[None]).iloc[0]["letterbox"]
    assert bars.mask[:, :22].all() and not bars.mask[:, 30:SIZE - 30].any()
    top = counterfactual.letterbox(SIZE, width=0.1, sides="top-bottom")
    assert top.mask[:22].all() and not top.mask[30:SIZE - 30].any()
    with pytest.raises(ValueError, match="sides"):
        counterfactual.letterbox(SIZE, sides="diagonal")


def test_bank_halves_are_disjoint_and_clearest_first():
    rulers = [with_ruler(seed)[0] for seed in range(4)]
    inks = [with_ink(seed)[0] for seed in range(2)]
    images = np.stack(rulers + inks + [skin_with_lesion(9)])
    paths = [f"train/x/{i}.jpg" for i in range(len(images))]
    bank = counterfactual.artefact_bank(images, paths, per_half=1)
    assert len(bank["train"]["ruler"]) == len(bank["test"]["ruler"]) == 1
    assert bank["train"]["ruler"][0].source != bank["test"]["ruler"][0].source
    assert {s.source for h in bank.values() for s in h["ink"]} <= set(paths[4:6])
    with pytest.raises(ValueError, match="224"):
        counterfactual.artefact_bank(images[:, ::2, ::2], paths)


def test_paste_effects_measure_change_and_flips():
    before = np.array([0.1, 0.2, 0.3, 0.45])
    after = {"ruler": np.array([0.1, 0.2, 0.3, 0.55]), "ink": before.copy()}
    table = counterfactual.paste_effects("m", before, after, 0.5, images="benign", n_resamples=200).set_index(
        "artefact")
    assert table.loc["ruler", "mean_dp"] == pytest.approx(0.025)
    assert table.loc["ruler", "flips"] == 1 and table.loc["ruler", "to_malignant"] == 1
    lo, hi = table.loc["ruler", "mean_dp_ci95"]
    assert 0 <= lo <= 0.025 <= hi <= 0.1
    assert table.loc["ink", "mean_dp"] == 0 and table.loc["ink", "flips"] == 0
    lines = counterfactual.paste_sentences(table.reset_index())
    assert "outside the target" in lines[0] and "within the target" in lines[1]
    assert "control" not in table.columns and "plain-skin" not in lines[0]


def test_paste_effects_set_the_artefact_against_a_plain_patch_in_its_place():
    before = np.array([0.1, 0.2, 0.45, 0.45])
    after = {"ruler": np.array([0.1, 0.2, 0.55, 0.55])}
    control = {"ruler": np.array([0.1, 0.2, 0.55, 0.45])}  # covering alone flips the third image
    row = counterfactual.paste_effects("m", before, after, 0.5, images="benign", n_resamples=200,
                                       p_control=control).iloc[0]
    assert row["flips"] == 2 and row["control_flips"] == 1 and row["control_flip_rate"] == 0.25
    assert row["control_mean_dp"] == pytest.approx(0.025)
    assert row["vs_control_mean_dp"] == pytest.approx(0.025) and row["vs_control_flips"] == 1
    lo, hi = row["vs_control_flip_rate_ci95"]
    assert lo < 0.25 < hi
    line = counterfactual.paste_sentences(pd.DataFrame([row]))[0]
    assert "plain-skin patch in the same place moved it by +0.025 and flipped 1" in line
    assert "changed 1 decisions (25.0%)" in line


def test_lesion_cover_tells_pastes_on_the_skin_from_pastes_over_the_lesion():
    images = np.stack([skin_with_lesion(s) for s in range(3)])
    narrow, wide = counterfactual.letterbox(SIZE, width=0.1), counterfactual.letterbox(SIZE, width=0.35)
    cover = counterfactual.lesion_cover(images, {"letterbox": [narrow], "wide": [wide]})
    # the drawn lesion spans x 62-162 of 224: 22 px bars miss it, 78 px bars reach into it
    assert (cover["letterbox"] == 0).all()
    assert ((cover["wide"] > 0.02) & (cover["wide"] < 0.5)).all()
    # at half the size the same draws give about the same shares
    half = counterfactual.lesion_cover(images[:, ::2, ::2], {"wide": [wide]})["wide"]
    assert half == pytest.approx(cover["wide"], abs=0.03)


def test_paste_effects_split_by_whether_the_paste_covers_the_lesion():
    before = np.array([0.1, 0.45, 0.45, 0.45])
    after = {"letterbox": np.array([0.1, 0.55, 0.55, 0.45])}
    control = {"letterbox": np.array([0.1, 0.45, 0.55, 0.55])}
    cover = {"letterbox": np.array([0.0, 0.005, 0.3, 0.5])}
    row = counterfactual.paste_effects("m", before, after, 0.5, images="benign", n_resamples=200,
                                       p_control=control, cover=cover).iloc[0]
    assert (row["on_skin_n"], row["on_skin_flips"], row["on_skin_flip_rate"]) == (2, 1, 0.5)
    assert (row["over_lesion_n"], row["over_lesion_flips"], row["over_lesion_control_flips"]) == (2, 1, 2)
    assert row["on_skin_control_flips"] == 0
    assert row["on_skin_mean_dp"] == pytest.approx(0.05)
    lo, hi = row["on_skin_mean_dp_ci95"]
    assert 0 <= lo <= 0.05 <= hi <= 0.1 + 1e-12
    line = counterfactual.paste_sentences(pd.DataFrame([row]))[0]
    assert "on the skin only (2 images) it moved P(malignant) by +0.050 and flipped 1 (50.0%" in line
    assert "covered part of the lesion (2 images" in line and "a plain-skin patch there 2" in line
    # every paste on the lesion: said so, no rates of an empty set
    all_over = counterfactual.paste_effects("m", before, after, 0.5, images="benign", n_resamples=50,
                                            cover={"letterbox": np.ones(4)}).iloc[0]
    assert all_over["on_skin_n"] == 0 and all_over["on_skin_flip_rate"] is None
    assert "Every letterbox paste covered part of the lesion" in counterfactual.paste_sentences(
        pd.DataFrame([all_over]))[0]


def test_pasted_predictions_use_the_model_on_pasted_images():
    ruler, drawn = with_ruler()
    stickers = {"ruler": [counterfactual.Sticker("ruler", "r.jpg", ruler, drawn)],
                "letterbox": [counterfactual.letterbox(SIZE)]}
    images = np.stack([skin_with_lesion(s) for s in range(3)])
    # a "model" that answers the share of dark pixels, at 112 px
    def dark(x):
        assert x.shape[1:] == (112, 112, 3)
        return (x.mean(axis=-1) < 100).mean(axis=(1, 2))

    p = counterfactual.pasted_predictions(dark, 112, images, stickers)
    base = dark(artefacts.resize(images, 112))
    assert p["letterbox"] - base == pytest.approx([0.2] * 3, abs=0.03)
    assert (p["ruler"] > base).all() and (p["ruler"] - base < 0.05).all()
    # the control covers the same places with plain skin: no dark bars, no ruler marks
    plain = counterfactual.pasted_predictions(dark, 112, images, stickers, edit=counterfactual.plain_patch)
    assert plain["letterbox"] == pytest.approx(base, abs=0.01)
    assert (plain["ruler"] <= base + 1e-9).all()


def test_plain_patch_covers_the_stickers_place_with_the_images_skin():
    ruler, drawn = with_ruler()
    image = skin_with_lesion(2)
    out = counterfactual.plain_patch(image, counterfactual.Sticker("ruler", "r.jpg", ruler, drawn))
    assert (out[~drawn] == image[~drawn]).all()
    colour = artefacts.median_skin_colour(image, exclude=drawn)
    assert (out[drawn] == colour).all() and colour.mean() > 120  # skin, not the dark lesion


def test_artefact_augmentation_pastes_on_a_share_of_images_and_is_seeded():
    ruler, drawn = with_ruler()
    still = Augmentation(flips=False, rot90=False, brightness=0, contrast=0, saturation=0, crop_fraction=1)
    always = ArtefactAugmentation(ruler[None], drawn[None], base=still, sticker_rate=1.0, letterbox_rate=0.0)
    clean = skin_with_lesion(seed=3)
    outs = [augmented_examples(clean, always, seed) for seed in range(8)]
    # the ruler lands whole, turned by a multiple of 90 degrees
    assert all(any((np.abs(o.astype(int) - np.rot90(ruler, k).astype(int))[np.rot90(drawn, k)] <= 1).all()
                   for k in range(4)) for o in outs)
    assert (augmented_examples(clean, always, 1) == outs[1]).all()
    bars = ArtefactAugmentation(ruler[None], drawn[None], base=still, sticker_rate=0.0, letterbox_rate=0.5)
    with_bars = [artefacts.detect(augmented_examples(clean, bars, seed)[None]).iloc[0]["letterbox"]
                 for seed in range(40)]
    assert 8 <= sum(with_bars) <= 32
    with pytest.raises(ValueError, match="masks"):
        ArtefactAugmentation(ruler[None], np.zeros((2, SIZE, SIZE), bool))


def test_counterfactual_figures_draw(tmp_path):
    ruler, drawn = with_ruler()
    stickers = {"ruler": [counterfactual.Sticker("ruler", "train/malignant/1.jpg", ruler, drawn)],
                "letterbox": [counterfactual.letterbox(SIZE)]}
    fig = figexplain.plot_pasted(skin_with_lesion(), stickers)
    assert len(fig.axes) == 3
    before = np.array([0.1, 0.6, 0.3])
    table = counterfactual.paste_effects("m", before, {"ruler": before + 0.1, "letterbox": before}, 0.5,
                                         images="benign", n_resamples=50)
    fig = figexplain.plot_paste_effects(table)
    fig.savefig(tmp_path / "pasted.png")
    controlled = counterfactual.paste_effects("m", before, {"ruler": before + 0.1}, 0.5, images="benign",
                                              n_resamples=50, p_control={"ruler": before + 0.05})
    fig = figexplain.plot_paste_effects(controlled)
    assert "plain-skin patch (control)" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "pasted on the skin only" not in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    split = counterfactual.paste_effects("m", before, {"ruler": before + 0.1}, 0.5, images="benign",
                                         n_resamples=50, cover={"ruler": np.array([0.0, 0.4, 0.0])})
    fig = figexplain.plot_paste_effects(split)
    assert "pasted on the skin only" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert (tmp_path / "pasted.png").stat().st_size > 1000
