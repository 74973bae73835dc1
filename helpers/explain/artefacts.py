"""Artefacts in dermoscopic images: find them and remove them.

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
* ``letterbox``: black bars along whole sides of the image (a non-square photo
  padded to a square): rows or columns from an edge inward that are black
  almost all the way across. A vignette is dark in the corners only, so the
  vignette mask leaves these bands out.

Removal: hair, ink and rulers are filled from the surrounding skin (a
normalised Gaussian fill, or ``skimage.restoration.inpaint_biharmonic``); dark
vignette corners and letterbox bars are painted with the image's median skin
colour.
``shortcuts`` measures what that does to a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import skeletonize
from skimage.restoration import inpaint_biharmonic


DETECTED = ("hair", "vignette", "ink", "ruler", "letterbox")


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
    letterbox_dark: float = 0.15   # a bar's row (column) is darker than this at its 95th percentile
    letterbox_flag: float = 0.02   # share of the pixels in bars (0.02: a 4.5 px bar along one side)


DEFAULT = Settings()


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
    return np.isin(labels, list(corner_labels)) & ~letterbox_mask(image, settings)


def letterbox_mask(image: np.ndarray, settings: Settings = DEFAULT) -> np.ndarray:
    """Black bars along whole sides: the rows (columns) from each edge inward
    whose 95th-percentile grey level is below ``letterbox_dark``, i.e. black
    almost all the way across. A round vignette's rows are bright in the middle,
    so they do not count; nor do a few dark edge rows (under 1% of the side)."""
    g = grey(image)
    mask = np.zeros(g.shape, bool)
    h, w = g.shape
    for axis, side in ((1, h), (0, w)):
        dark = np.percentile(g, 95, axis=axis) < settings.letterbox_dark
        # contiguous dark run from each end of the row (column) profile
        first = side if dark.all() else int(np.argmin(dark))
        last = side if dark.all() else int(np.argmin(dark[::-1]))
        for run, at_start in ((first, True), (last, False)):
            if run < max(2, 0.01 * side):
                continue
            band = slice(0, run) if at_start else slice(side - run, side)
            if axis == 1:
                mask[band, :] = True
            else:
                mask[:, band] = True
    return mask


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
    letterbox = letterbox_mask(image, settings)
    vignette = vignette_mask(image, settings)
    background = vignette | letterbox  # dark borders: neither lesion, hair nor ink
    lines = thin_dark_lines(image, settings, background)
    ruler = ruler_core(lines, settings)
    lesion = lesion_mask(image, settings, background)
    violet = _violet(image, settings)
    ink = ink_mask(image, settings, background, lesion, violet)
    # violet strokes are marker ink, even where the ink detector ignores them (near the lesion)
    hair = lines & ~ruler & ~_grow(violet, 2)
    hair = _drop_lesion_texture(hair, lesion, settings)
    return {"hair": _widen(hair), "vignette": vignette, "ink": ink, "ruler": _widen(ruler),
            "letterbox": letterbox, "lesion": lesion}


MASKS: dict[str, Callable[[np.ndarray, Settings], np.ndarray]] = {
    "hair": hair_mask, "vignette": vignette_mask, "ink": ink_mask, "ruler": ruler_mask,
    "letterbox": letterbox_mask}


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
    """Paint the dark corners (or letterbox bars: pass their mask) with the
    image's median skin colour, the soft rim included."""
    mask = vignette_mask(image, settings) if mask is None else mask
    if not mask.any():
        return np.asarray(image, dtype=np.uint8).copy()
    rim = _grow(mask, 3 * _scale(image))
    out = np.asarray(image, dtype=np.uint8).copy()
    out[rim] = median_skin_colour(image, exclude=rim)
    return out


def remove(image: np.ndarray, artefact: str, mask: np.ndarray | None = None, settings: Settings = DEFAULT,
           method: str = "smooth") -> np.ndarray:
    """The image with one artefact removed: a vignette or letterbox bars painted
    over with the skin colour, anything else filled from its surroundings."""
    mask = MASKS[artefact](image, settings) if mask is None else mask
    if artefact in ("vignette", "letterbox"):
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
