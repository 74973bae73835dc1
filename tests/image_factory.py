"""Small synthetic images and data-set folders for the data-layer tests.

Images are textured (1/f "pink" colour noise, from a seed) so that
perceptual hashes of different seeds differ clearly while copies of one seed
(re-encoded, resized, flipped, rotated) stay close. Sizes stay at 32-96 px so
the whole suite runs in seconds.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def textured(seed: int, size: int = 64) -> Image.Image:
    """A distinctive RGB image with a natural-image (1/f) spectrum, from a seed.

    Natural photos, dermoscopy included, have amplitude ~ 1/frequency; with
    that spectrum the perceptual hash behaves as on real images (JPEG
    re-encoding moves few bits), whereas flat or white-noise images do not.
    """
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        spectrum[0, 0] = 0
        channels.append(np.fft.irfft2(spectrum, s=(size, size)))
    arr = np.stack(channels, axis=-1)
    arr = (arr - arr.mean()) / arr.std() * 40 + 128
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    """Save ``image`` to ``path`` (creating folders); format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg") and "quality" not in kwargs:
        kwargs["quality"] = 95
    image.save(path, **kwargs)
    return path


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def truncated_jpeg(path: Path, seed: int = 999) -> Path:
    """A JPEG cut off half way (a broken download)."""
    data = jpeg_bytes(textured(seed, 64))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def folder_dataset(root: Path, counts: dict[tuple[str | None, str], int], size: int = 40,
                   first_seed: int = 0) -> list[Path]:
    """Write ``counts[(split or None, class folder)]`` images in folder-per-class layout."""
    seed, paths = first_seed, []
    for (split, cls), n in counts.items():
        folder = root / split / cls if split else root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            paths.append(save(textured(seed, size), folder / f"{k}.jpg"))
            seed += 1
    return paths


def ham_dataset(root: Path, dx: list[str], image_dir: str = "images", size: int = 40) -> pd.DataFrame:
    """HAM10000 layout: one image per row, lesion ids HAM_0000000..; returns the metadata."""
    rows = []
    for k, code in enumerate(dx):
        image_id = f"ISIC_{k:07d}"
        save(textured(1000 + k, size), root / image_dir / f"{image_id}.jpg")
        rows.append({"lesion_id": f"HAM_{k:07d}", "image_id": image_id, "dx": code, "dx_type": "histo",
                     "age": 50.0 if k % 3 else "", "sex": "male" if k % 2 else "female",
                     "localization": "back"})
    meta = pd.DataFrame(rows)
    meta.to_csv(root / "HAM10000_metadata.csv", index=False)
    return meta


def isic_cli_dataset(root: Path, labels: list[str], column: str = "diagnosis_1", size: int = 40) -> pd.DataFrame:
    """An export as ``isic image download`` writes it: metadata.csv + <isic_id>.jpg + attribution.txt."""
    rows = []
    for k, label in enumerate(labels):
        isic_id = f"ISIC_{9000000 + k}"
        save(textured(2000 + k, size), root / f"{isic_id}.jpg")
        row = {"isic_id": isic_id, "attribution": f"Clinic {k % 2}", "copyright_license": "CC-BY",
               "age_approx": "45", "anatom_site_general": "posterior torso", "sex": "female",
               column: label, "image_type": "dermoscopic"}
        if column == "diagnosis_1" and label == "Malignant":
            row["diagnosis_2"] = "Malignant melanocytic proliferations (Melanoma)"
            row["diagnosis_3"] = "Melanoma Invasive"
        if column == "diagnosis_1" and label == "Benign":
            row["diagnosis_2"] = "Benign melanocytic proliferations"
            row["diagnosis_3"] = "Nevus"
        rows.append(row)
    meta = pd.DataFrame(rows)
    meta.to_csv(root / "metadata.csv", index=False)
    (root / "attribution.txt").write_text("Clinic 0\n\nClinic 1")
    return meta
