"""SHA-256 checksums of a data folder's images, in ``sha256sum`` format, so a
download can be checked later (``python -m helpers download --verify``, or
``sha256sum -c checksums.sha256``)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..atomic import write_text
from .images import IMAGE_SUFFIXES

CHECKSUMS = "checksums.sha256"


def _image_files(out_dir: Path) -> list[Path]:
    """The data set's images: the image files directly in ``out_dir``, by name."""
    return sorted(p for p in out_dir.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), as ``sha256sum`` prints it."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_checksums(out_dir: str | Path) -> int:
    """Write ``checksums.sha256`` (``sha256sum`` format: hash, two spaces, name; sorted by name)
    for every image in ``out_dir``, so ``sha256sum -c`` or ``--verify`` can check them later.
    Returns the number of images."""
    out_dir = Path(out_dir)
    images = _image_files(out_dir)
    write_text(out_dir / CHECKSUMS, "".join(f"{file_sha256(p)}  {p.name}\n" for p in images))
    return len(images)


def read_checksums(path: Path) -> dict[str, str]:
    """name -> SHA-256 from a ``sha256sum`` file; a malformed line is a ValueError naming file and line."""
    sums = {}
    for number, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
        digest, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name  # "  name" (text) or " *name" (binary)
        if not sep or len(digest) != 64 or not name:
            raise ValueError(f"{path}, line {number}, is not '<sha256>  <file name>': {line!r}")
        sums[name] = digest.lower()
    return sums


def verify_checksums(out_dir: str | Path) -> dict:
    """Hash every file ``checksums.sha256`` names again; returns the names missing and changed.

    Raises FileNotFoundError when the folder has no checksums.sha256.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    path = out_dir / CHECKSUMS
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: --verify checks a folder written by `python -m helpers download` "
            "(downloads made before it wrote checksums have none; download again to get one)")
    sums = read_checksums(path)
    missing = [name for name in sums if not (out_dir / name).is_file()]
    changed = [name for name, digest in sums.items()
               if name not in missing and file_sha256(out_dir / name) != digest]
    return {"out_dir": str(out_dir), "checksums": str(path), "n_files": len(sums),
            "missing": missing, "changed": changed}
