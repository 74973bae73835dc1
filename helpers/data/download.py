"""Download a balanced benign/malignant set of dermoscopic images from the ISIC Archive.

The download itself is done by the official ``isic-cli`` (installed with the
project), run as a subprocess, once per class::

    isic image download --search 'diagnosis_1:"Benign" AND image_type:dermoscopic' --limit N/2 DIR

Each run writes ``metadata.csv``, ``attribution.txt``, ``licenses/`` and
``<isic_id>.jpg`` into its own folder; the two are then merged into one
isic-cli layout folder (default ``data/isic-archive/``) that
``helpers.data.read_dataset`` reads. Run from the command line as
``python -m helpers download --out data/isic-archive --limit 1000`` (``helpers.apps.download``).
"""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ..atomic import atomic_path, write_json, write_text
from ..config import DATA_ENV_VAR, DEFAULT_DATA_DIR

API_URL = "https://api.isic-archive.com/api/v2/"
DEFAULT_OUT = DEFAULT_DATA_DIR / "isic-archive"
DEFAULT_LIMIT = 1000
# isic-cli 12.x rejects the retired "diagnosis:" field; diagnosis_1 is the top
# level of the current hierarchical taxonomy (Benign / Malignant / Indeterminate).
QUERIES = {
    "benign": 'diagnosis_1:"Benign" AND image_type:dermoscopic',
    "malignant": 'diagnosis_1:"Malignant" AND image_type:dermoscopic',
}
PARTS_DIR = ".isic-download-parts"


class DownloadError(RuntimeError):
    """The download could not be done; the message says why and what to do instead."""


def check_connectivity(url: str = API_URL, timeout: float = 5.0) -> None:
    """Raise DownloadError unless the ISIC Archive API answers within ``timeout`` seconds."""
    import requests  # installed with isic-cli; imported here so the module loads without it

    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as error:
        raise DownloadError(
            f"no internet: cannot reach the ISIC Archive at {url} ({type(error).__name__}); "
            f"copy a data set into {DEFAULT_DATA_DIR} or set {DATA_ENV_VAR}"
        ) from error
    if response.status_code >= 500:
        raise DownloadError(
            f"the ISIC Archive at {url} answered HTTP {response.status_code}; try again later, "
            f"or copy a data set into {DEFAULT_DATA_DIR} or set {DATA_ENV_VAR}"
        )


def isic_command() -> list[str]:
    """How to start isic-cli: the ``isic`` script beside this Python, else ``python -m``.

    ``--no-version-check`` because 12.4 is the last isic-cli for Python 3.11:
    its start-up check would otherwise ask for an upgrade that cannot install
    here (and needs PyPI, a second host, to be reachable).
    """
    script = Path(sys.executable).with_name("isic.exe" if os.name == "nt" else "isic")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "isic_cli.cli"]
    return base + ["--no-version-check"]


def _run_subprocess(args: Sequence[str]) -> int:
    """Run isic-cli with its progress output on the terminal; stdin closed so it never prompts."""
    return subprocess.run(list(args), stdin=subprocess.DEVNULL, check=False).returncode


def _merge_parts(parts: dict[str, Path], out_dir: Path) -> pd.DataFrame:
    """Move the images of every part into ``out_dir`` and write one metadata.csv etc.

    Rows already in ``out_dir/metadata.csv`` (an earlier download) are kept;
    an isic_id seen twice is kept once.
    """
    frames = []
    existing = out_dir / "metadata.csv"
    if existing.is_file():
        frames.append(pd.read_csv(existing, dtype=str, keep_default_na=False))
    attributions: list[str] = []
    if (out_dir / "attribution.txt").is_file():
        attributions += (out_dir / "attribution.txt").read_text(encoding="utf8").split("\n\n")
    for label, part in parts.items():
        csv_path = part / "metadata.csv"
        if not csv_path.is_file():
            raise DownloadError(f"isic-cli wrote no metadata.csv for the {label} images in {part}")
        frames.append(pd.read_csv(csv_path, dtype=str, keep_default_na=False))
        for image in part.iterdir():
            if image.is_file() and image.name not in ("metadata.csv", "attribution.txt"):
                os.replace(image, out_dir / image.name)
        if (part / "attribution.txt").is_file():
            attributions += (part / "attribution.txt").read_text(encoding="utf8").split("\n\n")
        if (part / "licenses").is_dir():
            (out_dir / "licenses").mkdir(exist_ok=True)
            for licence in (part / "licenses").iterdir():
                shutil.copy2(licence, out_dir / "licenses" / licence.name)
    merged = pd.concat(frames, ignore_index=True).fillna("")
    merged = merged.drop_duplicates(subset="isic_id", keep="first")
    first = [c for c in ("isic_id", "attribution", "copyright_license") if c in merged]
    merged = merged[first + sorted(c for c in merged.columns if c not in first)]
    with atomic_path(existing) as tmp:
        merged.to_csv(tmp, index=False)
    unique = [a for a in dict.fromkeys(a.strip() for a in attributions) if a]
    write_text(out_dir / "attribution.txt", "\n\n".join(unique) + "\n")
    return merged


def download_isic(out_dir: str | Path = DEFAULT_OUT, limit: int = DEFAULT_LIMIT, seed: int | None = None,
                  *, run: Callable[[Sequence[str]], int] = _run_subprocess,
                  check: Callable[[], None] = check_connectivity) -> dict:
    """Download ``limit`` images, half benign and half malignant, into ``out_dir``.

    ``seed`` is recorded in ``download.json`` only: the ISIC search returns
    images in a fixed order, so the same call fetches the same images (while
    the archive does not change). ``run`` and ``check`` exist for tests.
    Raises DownloadError with a readable message on any failure.
    """
    if limit < 2:
        raise DownloadError(f"--limit must be at least 2 (one image per class), got {limit}")
    check()
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    per_class = {"benign": limit // 2, "malignant": limit - limit // 2}
    parts = {label: out_dir / PARTS_DIR / label for label in QUERIES}
    commands = []
    for label, query in QUERIES.items():
        parts[label].mkdir(parents=True, exist_ok=True)
        command = isic_command() + ["image", "download", "--search", query,
                                    "--limit", str(per_class[label]), str(parts[label])]
        commands.append(command)
        code = run(command)
        if code != 0:
            raise DownloadError(
                f"isic-cli failed (exit code {code}) downloading {label} images: {' '.join(command)}\n"
                f"Partial files are in {parts[label]}."
            )
    merged = _merge_parts(parts, out_dir)
    shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)
    manifest = {
        "source": API_URL,
        "downloaded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "limit": limit,
        "seed": seed,
        "queries": QUERIES,
        "per_class_requested": per_class,
        "n_metadata_rows": int(len(merged)),
        "commands": commands,
    }
    write_json(out_dir / "download.json", manifest)
    return {"out_dir": str(out_dir), "n_images": int(len(merged)), "per_class_requested": per_class}
