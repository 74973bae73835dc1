"""Counterfactual artefacts: paste a real ruler, a real ink mark or letterbox
bars onto images that lack them, and measure how P(malignant) and the decisions
move. A model that reads the lesion should barely notice.

The rulers and ink marks are *stickers*: the pixels under a detector's mask,
cut from training images (``artefact_bank``). The same bank feeds the
artefact augmentation of notebook 3 (``training.augment.ArtefactAugmentation``),
so the bank is split in two disjoint halves: one for training, one for the
counterfactual test, and a model trained with stickers is never tested with a
sticker it has seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ..data.images import load_images
from ..evaluation.binary import proportion_ci
from ..evaluation.resampling import bootstrap_counts, percentile_interval
from .artefacts import REFERENCE_SIZE, _grow, lesion_mask, median_skin_colour, resize, scan

PASTED = ("ruler", "ink", "letterbox")
# A paste with at most this share of its pixels on the lesion lies "on the skin": it hides nothing
# the model should read, so what it does is the artefact's (or the covering's) doing alone.
ON_SKIN = 0.01


@dataclass(frozen=True)
class Sticker:
    """An artefact cut from one image: its pixels and where they are."""

    artefact: str
    source: str           # the image it was cut from
    pixels: np.ndarray    # uint8 RGB, the whole image (only ``mask`` is used)
    mask: np.ndarray      # bool

    def at(self, size: int) -> "Sticker":
        """The sticker at another image size (bilinear pixels, mask kept where over half covered)."""
        if self.mask.shape[0] == size:
            return self
        pixels = np.asarray(Image.fromarray(self.pixels).resize((size, size), Image.Resampling.BILINEAR))
        cover = np.asarray(Image.fromarray(self.mask.astype(np.float32)).resize((size, size),
                                                                                Image.Resampling.BILINEAR))
        return Sticker(self.artefact, self.source, pixels, cover > 0.5)


def letterbox(size: int, width: float = 0.10, sides: str = "left-right", value: int = 4) -> Sticker:
    """Black bars of ``width`` (share of the side) on two opposite sides, as a
    non-square photo padded to a square shows them."""
    pixels = np.full((size, size, 3), value, np.uint8)
    mask = np.zeros((size, size), bool)
    bar = max(1, round(width * size))
    if sides == "left-right":
        mask[:, :bar] = mask[:, size - bar:] = True
    elif sides == "top-bottom":
        mask[:bar] = mask[size - bar:] = True
    else:
        raise ValueError(f"sides must be 'left-right' or 'top-bottom', not {sides!r}")
    return Sticker("letterbox", f"{sides} bars of {width:.0%}", pixels, mask)


def paste(image: np.ndarray, sticker: Sticker) -> np.ndarray:
    """``image`` with the sticker's pixels where its mask is (same place as in its source)."""
    sticker = sticker.at(image.shape[0])
    out = np.asarray(image, dtype=np.uint8).copy()
    out[sticker.mask] = sticker.pixels[sticker.mask]
    return out


def plain_patch(image: np.ndarray, sticker: Sticker) -> np.ndarray:
    """``image`` with the sticker's mask filled with the image's median skin colour:
    the same place and shape as the artefact, none of its look. The control of a
    paste: what covering that much of the image does by itself."""
    sticker = sticker.at(image.shape[0])
    out = np.asarray(image, dtype=np.uint8).copy()
    out[sticker.mask] = median_skin_colour(image, exclude=sticker.mask)
    return out


def artefact_bank(images: np.ndarray, paths: Sequence[str], per_half: int = 8,
                  artefacts: Sequence[str] = ("ruler", "ink")) -> dict[str, dict[str, list[Sticker]]]:
    """Stickers cut from (training) images at 224 px, in two disjoint halves.

    Per artefact, the flagged images are ranked by how much of the image the
    artefact covers (the largest are the clearest) and dealt alternately into
    ``"train"`` and ``"test"``, up to ``per_half`` each; the mask is grown by
    one pixel (at 224 px) to take the soft edge along. Returns
    ``{"train": {artefact: [...]}, "test": {...}}``.
    """
    if images.shape[1] != REFERENCE_SIZE:
        raise ValueError(f"cut stickers at the detectors' {REFERENCE_SIZE} px, not {images.shape[1]}")
    found = scan(images, paths)
    bank: dict[str, dict[str, list[Sticker]]] = {"train": {}, "test": {}}
    for artefact in artefacts:
        flagged = found.flagged(artefact)
        order = flagged[np.argsort(-found.table[f"{artefact}_share"].to_numpy()[flagged], kind="stable")]
        stickers = [Sticker(artefact, str(paths[i]), np.asarray(images[i], np.uint8).copy(),
                            _grow(found.masks[artefact][i], 1)) for i in order[:2 * per_half]]
        bank["train"][artefact] = stickers[0::2]
        bank["test"][artefact] = stickers[1::2]
    return bank


def _draws(stickers: Mapping[str, Sequence[Sticker]], n: int, seed: int) -> dict[str, np.ndarray]:
    """Which sticker of each artefact goes onto each of ``n`` images (seeded)."""
    rng = np.random.default_rng(seed)
    return {artefact: rng.integers(len(pool), size=n) for artefact, pool in stickers.items() if pool}


def pasted_predictions(predict: Callable[[np.ndarray], np.ndarray], image_size: int, images: np.ndarray,
                       stickers: Mapping[str, Sequence[Sticker]], seed: int = 0, *,
                       edit: Callable[[np.ndarray, Sticker], np.ndarray] = paste) -> dict[str, np.ndarray]:
    """P(malignant) of every image with one sticker of each artefact pasted on
    (a seeded draw of the artefact's stickers per image; at the images'
    resolution, then resized to the model's size like the originals).
    ``edit=plain_patch`` gives the control: the same draws, the same places, plain skin."""
    out = {}
    for artefact, pick in _draws(stickers, len(images), seed).items():
        edited = np.stack([edit(im, stickers[artefact][k]) for im, k in zip(images, pick)])
        out[artefact] = predict(resize(edited, image_size))
    return out


def lesion_cover(images: np.ndarray, stickers: Mapping[str, Sequence[Sticker]], seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """Per artefact, the share of each image's pasted pixels that lie on its
    lesion (``artefacts.lesion_mask``, every sizeable dark region), for the same
    draws as ``pasted_predictions`` with ``seed``. A paste over the lesion hides
    part of what the model should read, so a change there is not all shortcut."""
    lesions = [lesion_mask(np.asarray(im, np.uint8), all_parts=True) for im in images]
    out = {}
    for artefact, pick in _draws(stickers, len(images), seed).items():
        masks = [stickers[artefact][k].at(im.shape[0]).mask for im, k in zip(images, pick)]
        out[artefact] = np.array([(m & les).sum() / max(m.sum(), 1) for m, les in zip(masks, lesions)])
    return out


def _bootstrap_mean_ci(d: np.ndarray, seed: int, n_resamples: int) -> list[float | None]:
    """95% percentile interval of the mean of ``d``, on the project's shared resampling."""
    rng = np.random.default_rng(seed)
    means = np.concatenate([counts @ d / len(d) for counts in bootstrap_counts(len(d), n_resamples, rng)])
    return list(percentile_interval(means))


def paste_effects(model: str, p_before: np.ndarray, p_after: Mapping[str, np.ndarray], threshold: float,
                  *, images: str, seed: int = 0, n_resamples: int = 1000,
                  p_control: Mapping[str, np.ndarray] | None = None,
                  cover: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per pasted artefact: mean change of P(malignant) (after - before)
    with a 95% bootstrap CI over the images, and the decisions at the model's
    threshold that flip, with a 95% Wilson CI of their share.

    With ``p_control`` (the same places covered with plain skin, ``plain_patch``),
    also what the plain patch alone does (``control_*``) and the artefact against
    the plain patch on the same image (``vs_control_*``: the change and the
    decisions that differ): the part of the effect that is the artefact's look,
    not the covering of part of the image.

    With ``cover`` (``lesion_cover``), the same for the pastes that lie on the
    skin (``on_skin_*``: at most ``ON_SKIN`` of the paste on the lesion) and the
    flips among those that cover part of the lesion (``over_lesion_*``).
    """
    rows = []
    before = np.asarray(p_before, float)
    for artefact, after in p_after.items():
        after = np.asarray(after, float)
        d = after - before
        flips = (before >= threshold) != (after >= threshold)
        lo, hi = proportion_ci(int(flips.sum()), len(d))
        row = {"model": model, "artefact": artefact, "images": images, "n": len(d),
               "mean_dp": float(d.mean()), "mean_dp_ci95": _bootstrap_mean_ci(d, seed, n_resamples),
               "mean_abs_dp": float(np.abs(d).mean()),
               "flips": int(flips.sum()), "flip_rate": float(flips.mean()), "flip_rate_ci95": [lo, hi],
               "to_malignant": int((flips & (after >= threshold)).sum()),
               "to_benign": int((flips & (after < threshold)).sum())}
        if p_control is not None and artefact in p_control:
            control = np.asarray(p_control[artefact], float)
            control_flips = (before >= threshold) != (control >= threshold)
            vs, differ = after - control, (after >= threshold) != (control >= threshold)
            row.update({"control_mean_dp": float((control - before).mean()),
                        "control_flips": int(control_flips.sum()), "control_flip_rate": float(control_flips.mean()),
                        "vs_control_mean_dp": float(vs.mean()),
                        "vs_control_mean_dp_ci95": _bootstrap_mean_ci(vs, seed, n_resamples),
                        "vs_control_flips": int(differ.sum()), "vs_control_flip_rate": float(differ.mean()),
                        "vs_control_flip_rate_ci95": list(proportion_ci(int(differ.sum()), len(d)))})
        if cover is not None and artefact in cover:
            row.update(_by_cover(np.asarray(cover[artefact], float) <= ON_SKIN, d, flips, seed, n_resamples,
                                 None if p_control is None or artefact not in p_control else control_flips))
        rows.append(row)
    return pd.DataFrame(rows)


def _by_cover(skin: np.ndarray, d: np.ndarray, flips: np.ndarray, seed: int, n_resamples: int,
              control_flips: np.ndarray | None) -> dict:
    """``paste_effects``' columns for the pastes on the skin and over the lesion."""
    out = {}
    for part, sel in (("on_skin", skin), ("over_lesion", ~skin)):
        k, n = int(flips[sel].sum()), int(sel.sum())
        out.update({f"{part}_n": n, f"{part}_flips": k, f"{part}_flip_rate": k / n if n else None,
                    f"{part}_flip_rate_ci95": list(proportion_ci(k, n)) if n else [None, None],
                    f"{part}_mean_dp": float(d[sel].mean()) if n else None})
        if control_flips is not None:
            out[f"{part}_control_flips"] = int(control_flips[sel].sum())
    out["on_skin_mean_dp_ci95"] = _bootstrap_mean_ci(d[skin], seed, n_resamples) if skin.any() else [None, None]
    return out


def paste_sentences(table: pd.DataFrame, small_change: float = 0.02, few_flips: float = 0.02) -> list[str]:
    """Plain sentences from ``paste_effects`` rows, against the project's target
    (mean change under ``small_change`` and under ``few_flips`` of decisions flipped)."""
    lines = []
    for r in table.itertuples():
        lo, hi = r.mean_dp_ci95
        flo, fhi = r.flip_rate_ci95
        met = abs(r.mean_dp) < small_change and r.flip_rate < few_flips
        line = (f"{r.model}: pasting {r.artefact} onto {r.n} {r.images} moved P(malignant) by {r.mean_dp:+.3f} "
                f"[{lo:+.3f}, {hi:+.3f}] on average and flipped {r.flips} decisions ({r.flip_rate:.1%} "
                f"[{flo:.1%}-{fhi:.1%}]; {r.to_malignant} to malignant) - "
                + ("within" if met else "outside")
                + f" the target (|change| < {small_change}, flips < {few_flips:.0%}).")
        if pd.notna(getattr(r, "control_flips", np.nan)):
            line += " " + control_sentence(r._asdict())
        if pd.notna(getattr(r, "on_skin_n", np.nan)):
            line += " " + cover_sentence(r._asdict(), small_change, few_flips)
        lines.append(line)
    return lines


def control_sentence(r: Mapping) -> str:
    """What a plain-skin patch in the artefact's place did, and the artefact against it."""
    lo, hi = r["vs_control_mean_dp_ci95"]
    return (f"A plain-skin patch in the same place moved it by {r['control_mean_dp']:+.3f} and flipped "
            f"{r['control_flips']}; against that patch, the {r['artefact']}'s look moved it by "
            f"{r['vs_control_mean_dp']:+.3f} [{lo:+.3f}, {hi:+.3f}] and changed {r['vs_control_flips']} decisions "
            f"({r['vs_control_flip_rate']:.1%}).")


def cover_sentence(r: Mapping, small_change: float = 0.02, few_flips: float = 0.02) -> str:
    """The paste on the skin against the paste over part of the lesion."""
    if not r["on_skin_n"]:
        return f"Every {r['artefact']} paste covered part of the lesion."
    lo, hi = r["on_skin_flip_rate_ci95"]
    met = abs(r["on_skin_mean_dp"]) < small_change and r["on_skin_flip_rate"] < few_flips
    line = (f"Where the {r['artefact']} lay on the skin only ({r['on_skin_n']} images) it moved P(malignant) by "
            f"{r['on_skin_mean_dp']:+.3f} and flipped {r['on_skin_flips']} ({r['on_skin_flip_rate']:.1%} "
            f"[{lo:.1%}-{hi:.1%}]; {'within' if met else 'outside'} the target)")
    if r["over_lesion_n"]:
        line += (f"; where it covered part of the lesion ({r['over_lesion_n']} images, whose hidden part the model "
                 f"may rightly miss) it flipped {r['over_lesion_flips']} ({r['over_lesion_flip_rate']:.1%})")
        if pd.notna(r.get("over_lesion_control_flips", np.nan)):
            line += f", a plain-skin patch there {int(r['over_lesion_control_flips'])}"
    return line + "."


def training_bank(table: pd.DataFrame, n_scan: int = 800, per_half: int = 8, seed: int = 0
                  ) -> dict[str, dict[str, list[Sticker]]]:
    """``artefact_bank`` over a seeded sample of ``n_scan`` rows of a training
    table (its ``path`` column), read at 224 px: notebook 3 trains with the
    ``"train"`` half, notebook 4 tests with the ``"test"`` half of the same call."""
    rows = table.sample(n=min(n_scan, len(table)), random_state=seed) if len(table) else table
    paths = rows["path"].astype(str).tolist()
    x, bad = load_images(paths, REFERENCE_SIZE)
    if bad:
        raise ValueError(f"{len(bad)} training images could not be read for the artefact bank, e.g. {bad[:3]}")
    return artefact_bank(x, paths, per_half)
