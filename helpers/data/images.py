"""Decoding images: any file PIL reads becomes uint8 RGB at a square size.

Every caller (data sets, the split loader, ``predict``, the web page) decodes
through ``load_image`` / ``load_images``, so an image reaches a model exactly
the way it reached it in training. Also here: the per-image colour statistics
notebook 1 plots.
"""
from __future__ import annotations

import contextlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


# Two threads: the machines have two cores and PIL releases the GIL while decoding.
N_THREADS = 2


@contextlib.contextmanager
def large_images_allowed() -> Iterator[None]:
    """Let PIL open very large (trusted, local) images without a bomb warning.

    ``warnings.catch_warnings`` changes process-wide state, so it is entered
    only here, in the calling thread, around any thread pool -- never inside
    worker threads, where nested entries would race.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    * 16/32-bit integer and float greyscale are scaled from their full range
      (65535 for 16-bit) to 0..255, not clipped;
    * transparency (RGBA, LA, palette with transparency) is composited on
      black, which matches the dark vignette of dermoscopy images;
    * CMYK, palette, 1-bit, L, YCbCr, ... go through PIL's own conversion.
    """
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            scale = 65535.0
        else:  # 32-bit int or float: guess the range from the values (0-1, 8-bit or 16-bit)
            peak = arr.max(initial=0)
            scale = 65535.0 if peak > 255 else 1.0 if im.mode == "F" and peak <= 1 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / scale)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, im).convert("RGB")
    if im.mode != "RGB":
        return im.convert("RGB")
    return im


def _load(path: str | Path, image_size: int) -> np.ndarray:
    """Decode one image to uint8 (image_size, image_size, 3); raises on failure.

    JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still
    covers ``image_size``, which is both fast and lets huge images through.
    The EXIF orientation is applied, then the largest centred square is
    cropped and resized with an antialiased bilinear filter.
    """
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft(None, (image_size, image_size))
        im = ImageOps.exif_transpose(im)  # loads the pixels
        im = _to_rgb(im)
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR,
                       box=(left, top, left + side, top + side), reducing_gap=3.0)
        return np.asarray(im, dtype=np.uint8)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def _try_load(path: str | Path, image_size: int) -> tuple[np.ndarray | None, str | None]:
    try:
        return _load(path, image_size), None
    except Exception as error:  # noqa: BLE001 -- any decoding failure means "skip this file"
        return None, _describe(error)


def load_image(path: str | Path, image_size: int) -> np.ndarray:
    """Load one image as uint8 RGB (image_size, image_size, 3).

    Greyscale, RGBA (composited on black), CMYK, palette and 16-bit images are
    converted; EXIF orientation is applied; the centred square is resized.
    Raises ``OSError``/``ValueError`` (from PIL) for unreadable files.
    """
    with large_images_allowed():
        return _load(path, image_size)


def load_images(paths: Sequence[str | Path], image_size: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Load many images with two threads.

    Returns ``(images, skipped)``: a uint8 array (N, H, W, 3) of the images
    that loaded, in the order of ``paths``, and ``(path, reason)`` for each one
    that did not. The caller decides what to do with the skipped ones.
    """
    paths = [str(p) for p in paths]
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    skipped: list[tuple[str, str]] = []
    with large_images_allowed(), ThreadPoolExecutor(N_THREADS) as pool:
        for i, (arr, error) in enumerate(pool.map(lambda p: _try_load(p, image_size), paths)):
            if error is None:
                out[i] = arr
                ok[i] = True
            else:
                skipped.append((paths[i], error))
    return (out if ok.all() else out[ok]), skipped


def check_images(paths: Sequence[Path]) -> list[str | None]:
    """Decode every image at a tiny size; return an error text or None per path."""
    with large_images_allowed(), ThreadPoolExecutor(N_THREADS) as pool:
        return [error for _, error in pool.map(lambda p: _try_load(p, 8), paths)]


def image_statistics(paths: Sequence[str]) -> pd.DataFrame:
    """Original size, mode and colour statistics (on a 64x64 thumbnail) of each image."""
    rows = []
    for path in paths:
        with Image.open(path) as im:
            (width, height), mode = im.size, im.mode
        pix = load_image(path, 64).reshape(-1, 3).astype("float32")
        rows.append({"path": path, "width": width, "height": height, "mode": mode,
                     "mean_r": pix[:, 0].mean(), "mean_g": pix[:, 1].mean(), "mean_b": pix[:, 2].mean(),
                     "brightness": pix.mean(), "contrast": pix.mean(axis=1).std()})
    return pd.DataFrame(rows)
