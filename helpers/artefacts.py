"""Artefacts in dermoscopic images: find them, remove them, and measure how much
a model's predictions depend on them.

Detectors work on uint8 RGB images, best at the data's native 224 px; every
length and area in ``Settings`` is stated for 224 px and scales with the size.

* ``hair``: DullRazor-style (Lee et al. 1997): a grey-level closing with short
  line elements in four directions fills thin dark lines and the black-hat
  (closing minus image) marks them; thick patches (dense pigment) are dropped,
  and only pieces holding a long straight run are kept (hair does; pigment
  network and dots do not); short streaks mostly inside the lesion are pigment.
* ``vignette``: the dark edge of a dermatoscope's round field (or the dark
  background of a clinical photo): pixels much darker than the skin, connected
  to a corner, in the outer ring of the image.
* ``ink``: surgical-marker ink / gentian violet: strongly saturated blue,
  violet or purple pixels on the skin, away from the lesion (lesions are brown
  or pink, their blue-grey is desaturated). Black pen marks are missed.
* ``ruler``: scale bars drawn as a dark bar with evenly spaced ticks (a comb
  among the thin dark lines). White rulers and loose tick marks are missed.

Removal: hair, ink and rulers are filled from the surrounding skin (a
normalised Gaussian fill, or ``skimage.restoration.inpaint_biharmonic``); dark
vignette corners are painted with the image's median skin colour.
``removal_predictions`` and ``effects`` measure what that does to a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from . import evaluation

DETECTED = ("hair", "vignette", "ink", "ruler")
REFERENCE_SIZE = 224  # the sizes and areas below are tuned for 224 px images


@dataclass(frozen=True)
class Settings:
    """Detector settings, for a 224 px image (scaled for other sizes)."""

    hair_line: int = 11            # length of the closing's line elements (px)
    hair_contrast: float = 0.06    # black-hat threshold, in grey levels 0..1
    hair_min_length: int = 17      # a hair holds a straight run at least this long (px)
    hair_max_width: float = 4.0    # wider dark patches are pigment, not hair (px)
    hair_long_in_lesion: int = 60  # px; a shorter piece mostly inside the lesion is pigment
    hair_flag: float = 0.006       # share of the pixels that must be hair to flag an image
    ruler_min_ticks: int = 6       # free ends of a comb-shaped piece (ticks and bar ends)
    ruler_min_length: int = 35     # px along the bar
    ruler_max_width: int = 12      # px across bar and ticks
    ruler_regularity: float = 0.7  # share of tick gaps within +-50% of the median gap
    ruler_flag: float = 0.004
    vignette_dark: float = 0.45    # darker than this fraction of the skin's brightness
    vignette_flag: float = 0.03    # share of the corner zones that must be dark
    vignette_ring: float = 0.85    # only pixels this far out (1 = edge middle, 1.41 = corner)
    ink_hue: tuple[float, float] = (0.55, 0.90)  # blue .. violet .. purple (HSV hue 0..1)
    ink_saturation: float = 0.40
    ink_value: float = 0.25
    ink_min_area: int = 6          # px; lone saturated pixels are JPEG noise
    ink_flag: float = 0.002


DEFAULT = Settings()


# ---------------------------------------------------------------- basics

def grey(image: np.ndarray) -> np.ndarray:
    """Luminance 0..1 (ITU-R 601 weights)."""
    x = np.asarray(image, dtype=np.float32) / 255.0
    return x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _scale(image: np.ndarray) -> float:
    return image.shape[0] / REFERENCE_SIZE


def _line_footprints(length: int) -> list[np.ndarray]:
    """Line structuring elements at 0, 45, 90 and 135 degrees."""
    length = max(3, length | 1)  # odd, so the line is centred
    horizontal = np.zeros((length, length), bool)
    horizontal[length // 2] = True
    diagonal = np.eye(length, dtype=bool)
    return [horizontal, horizontal.T, diagonal, diagonal[::-1]]


def _corner_zones(shape: tuple[int, int]) -> np.ndarray:
    """Pixels outside the disc inscribed in the image: where a dermatoscope's
    round field of view leaves dark corners."""
    return _radius(shape) > 1.0


def skin_brightness(image: np.ndarray) -> float:
    """A robust estimate of the skin's grey level: the 75th percentile (skin
    covers most of a dermoscopic image; lesion and vignette are darker)."""
    return float(np.percentile(grey(image), 75))


# ---------------------------------------------------------------- detectors

def _line(length: int, angle_deg: float) -> np.ndarray:
    """A one-pixel line of ``length`` pixels through the centre at ``angle_deg``."""
    length = max(3, length | 1)  # odd, so the line is centred
    fp = np.zeros((length, length), bool)
    r = np.linspace(-(length // 2), length // 2, 2 * length)
    t = np.deg2rad(angle_deg)
    fp[np.rint(length // 2 - r * np.sin(t)).astype(int), np.rint(length // 2 + r * np.cos(t)).astype(int)] = True
    return fp


def _grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilate a mask by ``radius`` px (a square neighbourhood: fast, and close enough)."""
    size = 2 * max(1, round(radius)) + 1
    return ndimage.maximum_filter(mask, size=size)


def _disc(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return yy**2 + xx**2 <= radius**2


def _radius(shape: tuple[int, int]) -> np.ndarray:
    """Distance from the image centre, 1.0 at the middle of each edge."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    return np.hypot((yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2))


def vignette_mask(image: np.ndarray, settings: Settings = DEFAULT) -> np.ndarray:
    """Boolean mask of dark pixels connected to the image's corners, in the outer
    ring of the image (a dark lesion touching the dark edge is not vignette)."""
    g = ndimage.uniform_filter(grey(image), size=3)  # JPEG noise would break the connection
    dark = (g < settings.vignette_dark * skin_brightness(image)) & (_radius(g.shape) > settings.vignette_ring)
    labels, _ = ndimage.label(dark)
    h, w = dark.shape
    corner_labels = {labels[0, 0], labels[0, w - 1], labels[h - 1, 0], labels[h - 1, w - 1]} - {0}
    return np.isin(labels, list(corner_labels))


def thin_dark_lines(image: np.ndarray, settings: Settings = DEFAULT,
                    vignette: np.ndarray | None = None) -> np.ndarray:
    """Thin dark lines holding a long straight run: hair, and the base lines of rulers.

    1. DullRazor's step: a grey closing with short lines in four directions fills
       thin dark structures; the black-hat (closing - image) above a contrast
       threshold marks them (hair, but also pigment network and dots).
    2. Patches wider than ``hair_max_width`` (dense pigment) are dropped, and so
       is the soft rim of a vignette.
    3. A binary opening with long lines in twelve directions keeps only pieces
       holding a straight run of ``hair_min_length`` px: hair does, the meshes
       and dots of a lesion's texture do not. Each kept run is then grown back
       along the thin candidates, so a curved hair is kept whole.

    All lengths are for a 224 px image and scale with its size.
    """
    s = _scale(image)
    g = grey(image)
    closed = np.max([ndimage.grey_closing(g, footprint=fp)
                     for fp in _line_footprints(round(settings.hair_line * s))], axis=0)
    candidates = (closed - g) > settings.hair_contrast
    vignette = vignette_mask(image, settings) if vignette is None else vignette
    candidates &= ~_grow(vignette, 4 * s)
    radius = max(1, round(settings.hair_max_width * s / 2))
    thick = ndimage.binary_opening(candidates, structure=_disc(radius))
    candidates &= ~_grow(thick, 1)
    length = round(settings.hair_min_length * s)
    # erosion by a line leaves the centres of the straight runs; growing them back
    # along the candidates restores the runs (as an opening would) and the rest of the hair
    centres = np.zeros_like(candidates)
    for angle in range(0, 180, 15):
        centres |= ndimage.binary_erosion(candidates, structure=_line(length, angle))
    return ndimage.binary_propagation(centres, structure=np.ones((3, 3)), mask=candidates)


def _is_comb(piece: np.ndarray, ends: np.ndarray, s: float, settings: Settings) -> bool:
    """Is this thin dark piece a ruler: a straight bar with evenly spaced ticks?"""
    yy, xx = np.nonzero(piece)
    ey, ex = np.nonzero(ends & piece)
    if len(ey) < settings.ruler_min_ticks or len(yy) < 3:
        return False
    eig, vec = np.linalg.eigh(np.cov(np.stack([yy, xx])))
    along, across = 4 * np.sqrt(max(eig[1], 0)), 4 * np.sqrt(max(eig[0], 0))
    if along < settings.ruler_min_length * s or across > settings.ruler_max_width * s:
        return False
    # tick ends, projected on the bar, should be evenly spaced
    position = np.sort(np.column_stack([ey - yy.mean(), ex - xx.mean()]) @ vec[:, 1])
    gaps = np.diff(position)
    gaps = gaps[gaps > 1.5 * s]  # two ends of one small skeleton spur count once
    if len(gaps) < 3:
        return False
    regular = np.mean(np.abs(gaps - np.median(gaps)) <= 0.5 * np.median(gaps))
    many = len(ey) >= 2 * settings.ruler_min_ticks
    return regular >= (settings.ruler_regularity - 0.15 * many)


def ruler_core(lines: np.ndarray, settings: Settings = DEFAULT) -> np.ndarray:
    """The pieces of ``thin_dark_lines`` that are scale bars (see ``_is_comb``)."""
    from skimage.morphology import skeletonize

    s = lines.shape[0] / REFERENCE_SIZE
    labels, n = ndimage.label(lines, structure=np.ones((3, 3)))
    if n == 0:
        return lines.copy()
    skeleton = skeletonize(lines)
    neighbours = ndimage.convolve(skeleton.astype(int), np.ones((3, 3), int), mode="constant") - 1
    ends = skeleton & (neighbours == 1)
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        keep[i] = _is_comb(labels[sl] == i, ends[sl], s, settings)
    return keep[labels]


def _widen(mask: np.ndarray) -> np.ndarray:
    """A line detector marks a line's dark core; widen it to cover the soft edge."""
    return _grow(mask, mask.shape[0] / REFERENCE_SIZE)


def _drop_lesion_texture(lines: np.ndarray, lesion: np.ndarray, settings: Settings) -> np.ndarray:
    """Drop short line pieces lying inside the lesion: pigment streaks, not hair
    (a hair over a lesion is long or runs out onto the skin)."""
    s = lines.shape[0] / REFERENCE_SIZE
    labels, n = ndimage.label(lines, structure=np.ones((3, 3)))
    if n == 0 or not lesion.any():
        return lines
    inside = ndimage.mean(lesion, labels, np.arange(1, n + 1))
    keep = np.ones(n + 1, bool)
    keep[0] = False
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        span = np.hypot(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start)
        keep[i] = inside[i - 1] < 0.8 or span >= settings.hair_long_in_lesion * s
    return keep[labels]


def hair_mask(image: np.ndarray, settings: Settings = DEFAULT) -> np.ndarray:
    """Boolean mask of hair: thin dark lines that are not rulers, ink strokes or
    short streaks inside the lesion."""
    return find_masks(image, settings)["hair"]


def ruler_mask(image: np.ndarray, settings: Settings = DEFAULT) -> np.ndarray:
    """Scale bars drawn as a dark bar with evenly spaced ticks (a comb). Rulers
    without a dark base line (white rulers, loose tick marks) are missed."""
    return _widen(ruler_core(thin_dark_lines(image, settings), settings))


def lesion_mask(image: np.ndarray, settings: Settings = DEFAULT,
                vignette: np.ndarray | None = None, all_parts: bool = False) -> np.ndarray:
    """A rough lesion mask: the dark (Otsu) region nearest the centre, holes filled.

    ``all_parts``: also every other dark region at least a fifth its size (a
    lesion in several pieces). Good enough to tell "on the lesion" from "on the
    skin around it"; not a segmentation to measure a lesion with.
    """
    from skimage.filters import threshold_otsu

    s = _scale(image)
    g = ndimage.gaussian_filter(grey(image), 2 * s)
    vignette = vignette_mask(image, settings) if vignette is None else vignette
    valid = ~_grow(vignette, 3 * s)
    if valid.sum() < 10 or np.ptp(g[valid]) < 1e-3:
        return np.zeros(g.shape, bool)
    dark = (g < threshold_otsu(g[valid])) & valid
    dark = ndimage.binary_opening(dark, structure=_disc(max(1, round(2 * s))))
    labels, n = ndimage.label(dark)
    if n == 0:
        return dark
    index = np.arange(1, n + 1)
    area = ndimage.sum_labels(dark, labels, index)
    cy, cx = np.array(ndimage.center_of_mass(dark, labels, index)).reshape(-1, 2).T
    h, w = g.shape
    off_centre = np.hypot((cy - h / 2) / h, (cx - w / 2) / w)
    best = index[np.argmax(area * np.exp(-((off_centre / 0.3) ** 2)))]
    keep = (index == best) | (all_parts & (area >= 0.2 * area[best - 1]))
    return ndimage.binary_fill_holes(np.isin(labels, index[keep]))


def _violet(image: np.ndarray, settings: Settings = DEFAULT) -> np.ndarray:
    """Strongly saturated blue, violet or purple pixels, wherever they are (HSV, computed directly)."""
    x = np.asarray(image, dtype=np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(axis=-1)
    c = v - x.min(axis=-1)
    sat = np.where(v > 0, c / np.maximum(v, 1e-6), 0)
    # hue of a pixel whose largest channel is blue (0.5..0.83) or red with blue above green (0.83..1)
    hue = np.where(v == b, (4.0 + (r - g) / np.maximum(c, 1e-6)) / 6.0,
                   np.where(v == r, ((g - b) / np.maximum(c, 1e-6) / 6.0) % 1.0, 0.0))
    lo, hi = settings.ink_hue
    return (c > 0) & (hue >= lo) & (hue <= hi) & (sat >= settings.ink_saturation) & (v >= settings.ink_value)


def ink_mask(image: np.ndarray, settings: Settings = DEFAULT, vignette: np.ndarray | None = None,
             lesion: np.ndarray | None = None, violet: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of strongly saturated blue/violet/purple pixels on the skin.

    Lesions can hold violet and blue-grey too, so pixels on or right beside the
    lesion do not count; nor does the rim of a vignette, which shades through
    blue-violet on many images.
    """
    s = _scale(image)
    mask = (_violet(image, settings) if violet is None else violet).copy()
    if not mask.any():
        return mask
    vignette = vignette_mask(image, settings) if vignette is None else vignette
    lesion = lesion_mask(image, settings, vignette) if lesion is None else lesion
    mask &= ~_grow(lesion, 5 * s)
    mask &= ~_grow(vignette, 6 * s)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return np.concatenate([[False], areas >= settings.ink_min_area * s**2])[labels]


def find_masks(image: np.ndarray, settings: Settings = DEFAULT) -> dict[str, np.ndarray]:
    """Every artefact's mask for one image (plus ``lesion``), sharing the work."""
    vignette = vignette_mask(image, settings)
    lines = thin_dark_lines(image, settings, vignette)
    ruler = ruler_core(lines, settings)
    lesion = lesion_mask(image, settings, vignette)
    violet = _violet(image, settings)
    ink = ink_mask(image, settings, vignette, lesion, violet)
    # violet strokes are marker ink, even where the ink detector ignores them (near the lesion)
    hair = lines & ~ruler & ~_grow(violet, 2)
    hair = _drop_lesion_texture(hair, lesion, settings)
    return {"hair": _widen(hair), "vignette": vignette, "ink": ink, "ruler": _widen(ruler), "lesion": lesion}


MASKS: dict[str, Callable[[np.ndarray, Settings], np.ndarray]] = {
    "hair": hair_mask, "vignette": vignette_mask, "ink": ink_mask, "ruler": ruler_mask}


def share(mask: np.ndarray, artefact: str) -> float:
    """How much of the image an artefact covers: the share of the corner zones
    for a vignette, of all pixels otherwise."""
    if artefact == "vignette":
        return float(mask[_corner_zones(mask.shape)].mean())
    return float(mask.mean())


def flag_threshold(artefact: str, settings: Settings = DEFAULT) -> float:
    """The share above which an image is flagged as carrying the artefact."""
    return getattr(settings, f"{artefact}_flag")


@dataclass
class Scan:
    """What the detectors found in a set of images.

    ``table``: one row per image, ``<artefact>_share`` and the boolean flag
    ``<artefact>``; ``masks``: artefact -> image index -> mask, kept for the
    flagged images only (what removal needs); ``lesions``: the rough lesion
    masks of those images.
    """

    table: pd.DataFrame
    masks: dict[str, dict[int, np.ndarray]]
    lesions: dict[int, np.ndarray]

    def flagged(self, artefact: str) -> np.ndarray:
        return np.flatnonzero(self.table[artefact].to_numpy(bool))


def scan(images: np.ndarray, paths: Sequence[str] | None = None, settings: Settings = DEFAULT) -> Scan:
    """Run every detector on every image (about 35 ms per 224 px image)."""
    rows, kept, lesions = [], {a: {} for a in DETECTED}, {}
    for i, image in enumerate(images):
        masks = find_masks(image, settings)
        row = {}
        for artefact in DETECTED:
            row[f"{artefact}_share"] = share(masks[artefact], artefact)
            row[artefact] = row[f"{artefact}_share"] >= flag_threshold(artefact, settings)
            if row[artefact]:
                kept[artefact][i] = masks[artefact]
                lesions[i] = masks["lesion"]
        rows.append(row)
    table = pd.DataFrame(rows, columns=[c for a in DETECTED for c in (f"{a}_share", a)])
    if paths is not None:
        table.insert(0, "path", list(paths))
    return Scan(table, kept, lesions)


def detect(images: np.ndarray, paths: Sequence[str] | None = None, settings: Settings = DEFAULT) -> pd.DataFrame:
    """One row per image: the share each artefact covers and whether it is flagged."""
    return scan(images, paths, settings).table


# ---------------------------------------------------------------- removal

def fill(image: np.ndarray, mask: np.ndarray, method: str = "smooth", sigma: float = 3.0) -> np.ndarray:
    """Replace the masked pixels with what surrounds them.

    ``smooth``: normalised Gaussian fill (the Gaussian-weighted mean of the
    unmasked pixels nearby; milliseconds per image). ``biharmonic``:
    ``skimage.restoration.inpaint_biharmonic`` (smoother, about 100x slower).
    """
    image = np.asarray(image, dtype=np.uint8)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return image.copy()
    if method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        out = inpaint_biharmonic(image.astype(np.float64) / 255.0, mask, channel_axis=-1)
        return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
    if method != "smooth":
        raise ValueError(f"unknown fill method {method!r}")
    s = sigma * _scale(image)
    valid = (~mask).astype(np.float32)
    weight = ndimage.gaussian_filter(valid, s)
    out = image.astype(np.float32).copy()
    for c in range(3):
        num = ndimage.gaussian_filter(image[..., c].astype(np.float32) * valid, s)
        out[..., c] = np.where(mask, num / np.maximum(weight, 1e-6), out[..., c])
    # a hole wider than the Gaussian gets no weight: take the nearest filled value
    holes = mask & (weight < 1e-3)
    if holes.any():
        _, (iy, ix) = ndimage.distance_transform_edt(holes, return_indices=True)
        out[holes] = out[iy[holes], ix[holes]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def median_skin_colour(image: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Median RGB of the brighter half of the pixels not excluded: the skin, not
    the lesion or the vignette."""
    g = grey(image)
    keep = np.ones(g.shape, bool) if exclude is None else ~exclude
    keep &= g >= np.median(g[keep]) if keep.any() else keep
    pixels = np.asarray(image)[keep] if keep.any() else np.asarray(image).reshape(-1, 3)
    return np.median(pixels, axis=0).astype(np.uint8)


def mask_vignette(image: np.ndarray, mask: np.ndarray | None = None, settings: Settings = DEFAULT) -> np.ndarray:
    """Paint the dark corners with the image's median skin colour (the soft rim included)."""
    mask = vignette_mask(image, settings) if mask is None else mask
    if not mask.any():
        return np.asarray(image, dtype=np.uint8).copy()
    rim = _grow(mask, 3 * _scale(image))
    out = np.asarray(image, dtype=np.uint8).copy()
    out[rim] = median_skin_colour(image, exclude=rim)
    return out


def remove(image: np.ndarray, artefact: str, mask: np.ndarray | None = None, settings: Settings = DEFAULT,
           method: str = "smooth") -> np.ndarray:
    """The image with one artefact removed: a vignette painted over with the skin
    colour, anything else filled from its surroundings."""
    mask = MASKS[artefact](image, settings) if mask is None else mask
    if artefact == "vignette":
        return mask_vignette(image, mask, settings)
    if artefact == "ink":
        mask = _grow(mask, 2 * _scale(image))  # the detector keeps the saturated core of a stroke only
    return fill(image, mask, method=method)


def control_mask(mask: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """The same mask turned by 180 degrees, off the artefact and off the lesion:
    filling it changes as many pixels, but (mostly) not the artefact's. If a
    model's prediction moves as much when this is filled, the change comes from
    the filling, not from removing the artefact."""
    return np.rot90(mask, 2) & ~mask & ~lesion


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images with the filter the data loader uses (PIL bilinear,
    antialiased), so a cleaned image reaches the model the way a loaded one does."""
    if images.shape[1] == size:
        return images.copy()
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR,
                                                           reducing_gap=3.0)) for im in images])


# ---------------------------------------------------------------- analysis

def agreement(detected: pd.DataFrame, tags: pd.DataFrame) -> pd.DataFrame:
    """Detector vs tags by eye, per artefact: counts, agreement and Cohen's kappa.

    Both tables carry ``path`` and one boolean column per artefact.
    """
    merged = tags.merge(detected, on="path", suffixes=("_eye", "_detector"))
    rows = []
    for artefact in DETECTED:
        eye = merged[f"{artefact}_eye"].astype(bool).to_numpy()
        det = merged[f"{artefact}_detector"].astype(bool).to_numpy()
        tp, fp = int((eye & det).sum()), int((~eye & det).sum())
        fn, tn = int((eye & ~det).sum()), int((~eye & ~det).sum())
        n = tp + fp + fn + tn
        observed = (tp + tn) / n if n else np.nan
        expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2 if n else np.nan
        kappa = (observed - expected) / (1 - expected) if n and expected < 1 else np.nan
        rows.append({"artefact": artefact, "n": n, "by_eye": tp + fn, "detected": tp + fp, "both": tp,
                     "detector_only": fp, "eye_only": fn, "agreement": observed, "kappa": kappa})
    return pd.DataFrame(rows).set_index("artefact")


def _auc_with_ci(y: np.ndarray, p: np.ndarray, seed: int, n_resamples: int):
    """(AUC, (lo, hi)); (None, (None, None)) when the group holds one class only."""
    if len(np.unique(y)) < 2:
        return None, (None, None)
    return evaluation.binary_metrics(y, p, 0.5)["auc"], evaluation.bootstrap_auc_ci(
        y, p, n_resamples=n_resamples, seed=seed)


@dataclass
class Removal:
    """One model's predictions before and after each artefact is removed.

    ``p_all``: every scanned image, resized from the scan's resolution to the
    model's input the same way the cleaned images are, so ``after - before``
    is the removal alone and not a difference in resizing. Per artefact:
    ``index`` of the flagged images, ``after`` (artefact removed) and
    ``control`` (the same amount of filling elsewhere; None for vignettes).
    """

    p_all: np.ndarray
    index: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    control: dict[str, np.ndarray | None]


def removal_predictions(predict: Callable[[np.ndarray], np.ndarray], image_size: int, images: np.ndarray,
                        found: Scan, settings: Settings = DEFAULT, method: str = "smooth") -> Removal:
    """Remove each artefact from the images flagged with it and predict again.

    ``predict`` maps uint8 images at ``image_size`` to P(malignant); ``images``
    are the scanned images (at the scan's resolution).
    """
    p_all = predict(resize(images, image_size))
    index, after, control = {}, {}, {}
    for artefact in DETECTED:
        idx = found.flagged(artefact)
        index[artefact] = idx
        if len(idx) == 0:
            after[artefact], control[artefact] = np.array([]), None
            continue
        masks = [found.masks[artefact][i] for i in idx]
        cleaned = np.stack([remove(images[i], artefact, m, settings, method) for i, m in zip(idx, masks)])
        after[artefact] = predict(resize(cleaned, image_size))
        if artefact == "vignette":
            control[artefact] = None  # painting corners elsewhere has no meaning
        else:
            moved = np.stack([fill(images[i], control_mask(m, found.lesions[i]), method)
                              for i, m in zip(idx, masks)])
            control[artefact] = predict(resize(moved, image_size))
    return Removal(p_all, index, after, control)


def effects(model: str, flags: pd.DataFrame, y: np.ndarray, p_test: np.ndarray, removal: Removal,
            threshold: float, *, seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """One row per artefact for one model.

    * ``auc_with`` / ``auc_without``: test AUC of the model's own predictions
      (``p_test``) on the images with and without the artefact, 95% bootstrap CI;
    * ``mean_dp``, ``mean_abs_dp``: change of P(malignant) when the artefact is
      removed (after - before), over the flagged images; ``control_mean_abs_dp``:
      the same for filling as many pixels elsewhere;
    * ``flips``: decisions at the validation-chosen threshold that change;
    * ``auc_all_before`` / ``auc_all_after``: AUC over all scanned images, with
      the flagged ones as they are and with the artefact removed from them.
    """
    y = np.asarray(y)
    rows = []
    for artefact in DETECTED:
        has = flags[artefact].to_numpy(bool)
        idx = removal.index[artefact]
        before, after = removal.p_all[idx], removal.after[artefact]
        auc_with, ci_with = _auc_with_ci(y[has], p_test[has], seed, n_resamples)
        auc_without, ci_without = _auc_with_ci(y[~has], p_test[~has], seed, n_resamples)
        changed = (before >= threshold) != (after >= threshold)
        p_cleaned = removal.p_all.copy()
        p_cleaned[idx] = after
        control = removal.control[artefact]
        rows.append({
            "artefact": artefact, "model": model, "n_with": int(has.sum()),
            "n_with_benign": int((y[has] == 0).sum()), "n_with_malignant": int((y[has] == 1).sum()),
            "n_without": int((~has).sum()),
            "auc_with": auc_with, "auc_with_ci95": list(ci_with),
            "auc_without": auc_without, "auc_without_ci95": list(ci_without),
            "mean_dp": float((after - before).mean()) if len(idx) else None,
            "mean_abs_dp": float(np.abs(after - before).mean()) if len(idx) else None,
            "mean_dp_malignant": float((after - before)[y[idx] == 1].mean()) if (y[idx] == 1).any() else None,
            "mean_dp_benign": float((after - before)[y[idx] == 0].mean()) if (y[idx] == 0).any() else None,
            "control_mean_abs_dp": (float(np.abs(control - before).mean())
                                    if control is not None and len(idx) else None),
            "flips": int(changed.sum()),
            "flips_to_benign": int((changed & (after < threshold)).sum()),
            "flips_to_malignant": int((changed & (after >= threshold)).sum()),
            "auc_all_before": evaluation.binary_metrics(y, removal.p_all, threshold)["auc"],
            "auc_all_after": evaluation.binary_metrics(y, p_cleaned, threshold)["auc"],
        })
    return pd.DataFrame(rows)


def rates_by_class(flags: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """Share of benign and of malignant images flagged with each artefact: an
    artefact more common in one class is a shortcut a model can learn."""
    y = np.asarray(y)
    return pd.DataFrame({artefact: {"benign": float(flags.loc[y == 0, artefact].mean()),
                                    "malignant": float(flags.loc[y == 1, artefact].mean()),
                                    "all": float(flags[artefact].mean())}
                         for artefact in DETECTED}).T


# ---------------------------------------------------------------- figures

COLOURS = {"hair": (0, 255, 0), "vignette": (255, 255, 0), "ink": (0, 255, 255), "ruler": (255, 0, 255)}


def overlay(image: np.ndarray, masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """The image with each artefact's mask painted in its colour (``COLOURS``)."""
    out = np.asarray(image, dtype=np.uint8).copy()
    for artefact, mask in masks.items():
        out[mask] = COLOURS.get(artefact, (255, 0, 0))
    return out


def _example_rows(found: Scan, paths: Sequence[str], per_artefact: int,
                  confirmed: Mapping[str, set[str]] | None) -> list[tuple[str, int]]:
    """Which flagged images to show: those confirmed by eye first, then the ones
    the artefact covers most."""
    rows = []
    for a in DETECTED:
        shares = found.table[a + "_share"].to_numpy()
        flagged = [i for i in shares.argsort()[::-1] if found.table.at[i, a]]
        seen = (confirmed or {}).get(a, set())
        flagged.sort(key=lambda i: paths[i] not in seen)  # stable: keeps the share order within each group
        rows += [(a, i) for i in flagged[:per_artefact]]
    return rows


def plot_examples(images: np.ndarray, paths: Sequence[str], found: Scan, per_artefact: int = 2,
                  settings: Settings = DEFAULT, method: str = "smooth",
                  confirmed: Mapping[str, set[str]] | None = None):
    """For each artefact, flagged images (those in ``confirmed[artefact]``, e.g.
    also tagged by eye, first; then those it covers most): the original, what
    the detector found, and the image with the artefact removed."""
    import matplotlib.pyplot as plt

    rows = _example_rows(found, paths, per_artefact, confirmed)
    fig, axes = plt.subplots(max(1, len(rows)), 3, figsize=(7.5, 2.6 * max(1, len(rows))), squeeze=False)
    for (artefact, i), row in zip(rows, axes):
        mask = found.masks[artefact][i]
        panels = (images[i], overlay(images[i], {artefact: mask}),
                  remove(images[i], artefact, mask, settings, method))
        titles = (paths[i].rsplit("/", 2)[-2] + "/" + paths[i].rsplit("/", 1)[-1],
                  f"{artefact} found ({found.table.at[i, artefact + '_share']:.1%})",
                  "removed" if artefact != "vignette" else "corners masked")
        for ax, im, title in zip(row, panels, titles):
            ax.imshow(im)
            ax.set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def plot_effects(table: pd.DataFrame):
    """Three panels per artefact and model. Left: test AUC on images with
    (filled) and without (open) the artefact, 95% CI. Middle: mean |change| of
    P(malignant) when it is removed, beside the control (the same amount of
    filling elsewhere, black tick). Right: the signed mean change per true class
    (below zero: the model saw less malignancy once the artefact was gone)."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(table["model"]))
    artefacts_ = list(dict.fromkeys(table["artefact"]))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.3))
    width = 0.8 / (2 * len(models))
    for m, model in enumerate(models):
        part = table[table["model"] == model].set_index("artefact").reindex(artefacts_).reset_index()
        base = np.arange(len(part))
        for k, (col, ci, label, marker) in enumerate((("auc_with", "auc_with_ci95", "with", "o"),
                                                      ("auc_without", "auc_without_ci95", "without", "s"))):
            xs = base + (2 * m + k - len(models) + 0.5) * width
            face = "white" if k else f"C{m}"
            for x, value, (lo, hi) in zip(xs, part[col], part[ci]):
                if value is None or pd.isna(value):
                    continue
                ax1.errorbar(x, value, yerr=[[value - lo], [hi - value]], fmt=marker, color=f"C{m}", mfc=face,
                             capsize=2)
            ax1.plot([], [], marker, color=f"C{m}", mfc=face, label=f"{model}: {label}")
        xs = base + (m - (len(models) - 1) / 2) * 2 * width
        ax2.bar(xs, part["mean_abs_dp"].astype(float).fillna(0), 2 * width * 0.9, color=f"C{m}", alpha=0.8,
                label=model)
        ctrl = part["control_mean_abs_dp"].astype(float)
        ax2.plot(xs[ctrl.notna()], ctrl[ctrl.notna()], "k_", markersize=14, mew=2)
        for cls, hatch, off in (("malignant", "", -0.5), ("benign", "//", 0.5)):
            xs = base + (2 * m + off - len(models) + 0.5) * width
            ax3.bar(xs, part[f"mean_dp_{cls}"].astype(float).fillna(0), width, color=f"C{m}", hatch=hatch,
                    alpha=0.8, label=f"{model}: true {cls}", edgecolor="black", linewidth=0.4)
    ax2.plot([], [], "k_", markersize=14, mew=2, label="control: filling as many pixels elsewhere")
    n_with = table.groupby("artefact", sort=False)["n_with"].first()
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(range(len(artefacts_)), [f"{a}\n(n={n_with[a]})" for a in artefacts_])
        ax.legend(fontsize=7)
    ax1.set_ylabel("test ROC AUC")
    ax1.set_title("AUC with / without the artefact", fontsize=10)
    ax2.set_ylabel("mean |change| of P(malignant)")
    ax2.set_title("Artefact removed: how much predictions move", fontsize=10)
    ax3.axhline(0, color="grey", lw=0.8)
    ax3.set_ylabel("mean change of P(malignant)")
    ax3.set_title("Artefact removed: in which direction", fontsize=10)
    return fig


# ---------------------------------------------------------------- reading the numbers

def _ci_text(ci) -> str:
    return f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci and ci[0] is not None else ""


def interpret(table: pd.DataFrame, rates: pd.DataFrame, small_change: float = 0.02) -> list[str]:
    """Plain sentences from the effects table (``effects``) and the class rates
    (``rates_by_class``), so a notebook's text follows its numbers on every run.

    A removal counts as mattering when the mean |change| of P(malignant) is
    above ``small_change`` and above twice the control's.
    """
    lines = []
    for artefact in dict.fromkeys(table["artefact"]):
        r = rates.loc[artefact]
        if r["all"] == 0:
            lines.append(f"{artefact}: not found on any scanned test image.")
            continue
        ratio = (r["malignant"] + 1e-9) / (r["benign"] + 1e-9)
        skew = (" - far more often on malignant images, a shortcut a model can learn" if ratio >= 2 else
                " - far more often on benign images, a shortcut a model can learn" if ratio <= 0.5 else
                " - about as often in both classes")
        lines.append(f"{artefact}: flagged on {r['malignant']:.0%} of malignant and {r['benign']:.0%} of benign "
                     f"test images{skew}.")
        for row in table[table["artefact"] == artefact].itertuples():
            lines.append("  " + _auc_sentence(row) + " " + _removal_sentence(row, small_change))
    return lines


def _auc_sentence(row) -> str:
    if row.auc_with is None or pd.isna(row.auc_with):
        cls = "malignant" if row.n_with_benign == 0 else "benign"
        return (f"{row.model}: AUC with {row.artefact} is undefined (all {row.n_with} flagged images are {cls}); "
                f"without it {row.auc_without:.3f}.")
    lo_w, hi_w = row.auc_with_ci95
    lo_o, hi_o = row.auc_without_ci95
    overlap = lo_w is not None and lo_o is not None and lo_w <= hi_o and lo_o <= hi_w
    verdict = ("the intervals overlap, so no evidence the model ranks these images differently" if overlap else
               "better with it" if row.auc_with > row.auc_without else "worse with it")
    fewer = min(row.n_with_benign, row.n_with_malignant)
    if fewer < 10:
        cls = "benign" if row.n_with_benign <= row.n_with_malignant else "malignant"
        verdict += f" (but only {fewer} {cls} image{'s carry' if fewer != 1 else ' carries'} it: too few to judge)"
    return (f"{row.model}: AUC {row.auc_with:.3f}{_ci_text(row.auc_with_ci95)} with {row.artefact} "
            f"(n={row.n_with}: {row.n_with_malignant} malignant) vs {row.auc_without:.3f}"
            f"{_ci_text(row.auc_without_ci95)} without (n={row.n_without}): {verdict}.")


def _removal_sentence(row, small_change: float) -> str:
    if row.mean_abs_dp is None or pd.isna(row.mean_abs_dp):
        return "Nothing to remove."
    control = row.control_mean_abs_dp
    has_control = control is not None and not pd.isna(control)
    text = (f"Removing it changed P(malignant) by {row.mean_dp:+.3f} on average (mean |change| "
            f"{row.mean_abs_dp:.3f}" + (f"; filling as many pixels elsewhere: {control:.3f}" if has_control else "")
            + f") and flipped {row.flips} of {row.n_with} decisions "
            f"({row.flips_to_benign} to benign, {row.flips_to_malignant} to malignant); "
            f"AUC over all images {row.auc_all_before:.3f} -> {row.auc_all_after:.3f}.")
    matters = row.mean_abs_dp > small_change and (not has_control or row.mean_abs_dp > 2 * control)
    if not matters:
        return text + " The model barely relies on it."
    malignant_dp = row.mean_dp_malignant if row.mean_dp_malignant is not None else 0.0
    benign_dp = row.mean_dp_benign if row.mean_dp_benign is not None else 0.0
    if malignant_dp < -small_change or benign_dp < -small_change:
        return text + f" Without it the model sees less malignancy: it used {row.artefact} as evidence for malignant."
    if malignant_dp > small_change or benign_dp > small_change:
        return text + f" Without it the model sees more malignancy: it used {row.artefact} as evidence for benign."
    return text + " The changes go both ways: the model reacts to it, but not in one direction."


def bottom_line(table: pd.DataFrame, small_change: float = 0.02) -> list[str]:
    """One sentence per model: which artefact moves its predictions most, and
    whether any moves them beyond ``small_change`` and twice the control."""
    lines = []
    for model, part in table.groupby("model", sort=False):
        part = part[part["n_with"] > 0]
        if part.empty:
            lines.append(f"{model}: no artefact found in the scanned images.")
            continue
        top = part.loc[part["mean_abs_dp"].astype(float).idxmax()]
        control = part["control_mean_abs_dp"].astype(float).fillna(0)
        strong = part[(part["mean_abs_dp"] > small_change) & (part["mean_abs_dp"] > 2 * control)]
        flips, n = int(part["flips"].sum()), int(part["n_with"].sum())
        lines.append(
            f"{model}: removing {top['artefact']} moves its predictions most (mean |change| "
            f"{top['mean_abs_dp']:.3f} over {top['n_with']} images); "
            + (f"{', '.join(strong['artefact'])} move{'s' if len(strong) == 1 else ''} them beyond {small_change} "
               "and twice the control" if len(strong) else "no artefact moves them beyond "
               f"{small_change} and twice the control")
            + f"; {flips} decisions flipped in {n} removals.")
    return lines
