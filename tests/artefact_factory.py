"""Drawn dermoscopy-like images with artefacts where we know them: skin with a
lesion, plus hair lines, dark corners, violet ink, a ruler or letterbox bars
(for the artefact detector, counterfactual and augmentation tests)."""
from __future__ import annotations

import numpy as np

SIZE = 224
SKIN = np.array([215, 160, 150], dtype=np.float64)
LESION = np.array([120, 70, 50], dtype=np.float64)


def skin_with_lesion(seed: int = 0) -> np.ndarray:
    """Pink skin with mild noise and a brown elliptic lesion in the centre."""
    rng = np.random.default_rng(seed)
    img = SKIN + rng.normal(0, 4, (SIZE, SIZE, 3))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    lesion = ((yy - 112) / 38) ** 2 + ((xx - 112) / 50) ** 2 <= 1
    img[lesion] = LESION + rng.normal(0, 4, (lesion.sum(), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_line(img: np.ndarray, p0, p1, colour, width: int = 2) -> np.ndarray:
    """Draw a straight line (in place) and return its mask."""
    mask = np.zeros(img.shape[:2], bool)
    n = int(np.hypot(p1[0] - p0[0], p1[1] - p0[1]) * 2) + 1
    for t in np.linspace(0, 1, n):
        y, x = p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1])
        mask[int(y):int(y) + width, int(x):int(x) + width] = True
    img[mask] = colour
    return mask


def with_hair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    img = skin_with_lesion(seed)
    mask = np.zeros((SIZE, SIZE), bool)
    for p0, p1 in (((5, 10), (200, 60)), ((20, 210), (215, 150)), ((100, 0), (140, 223)), ((0, 120), (60, 223))):
        mask |= draw_line(img, p0, p1, (40, 30, 25))
    return img, mask


def with_vignette(seed: int = 0) -> np.ndarray:
    img = skin_with_lesion(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    outside = np.hypot(yy - 111.5, xx - 111.5) > 118
    img[outside] = (12, 10, 10)
    return img


def with_ink(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    img = skin_with_lesion(seed)
    mask = draw_line(img, (20, 20), (60, 40), (120, 60, 170), width=4)
    mask |= draw_line(img, (170, 180), (210, 200), (110, 50, 160), width=4)
    return img, mask


def with_ruler(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A scale bar below the lesion: a dark bar with a tick every 6 px."""
    img = skin_with_lesion(seed)
    mask = draw_line(img, (195, 40), (195, 160), (35, 35, 35), width=2)
    for x in range(40, 161, 6):
        mask |= draw_line(img, (187, x), (195, x), (35, 35, 35), width=1)
    return img, mask


def with_letterbox(seed: int = 0, bar: int = 20) -> np.ndarray:
    """A wide photo padded to a square: black bars on the left and right."""
    img = skin_with_lesion(seed)
    img[:, :bar] = img[:, SIZE - bar:] = (3, 3, 3)
    return img
