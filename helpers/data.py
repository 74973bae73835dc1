"""Find, check and load dermoscopic images in any of the three supported layouts.

``read_dataset`` turns a data folder into one table (one row per usable image,
columns ``TABLE_COLUMNS``) plus a table of everything it had to skip and why.
It understands:

* ``folders``  -- one folder per class (``benign/``, ``malignant/``, any case),
  optionally under ``train/`` and ``test/`` (e.g. the Kaggle isic-mvb set);
* ``ham10000`` -- ``HAM10000_metadata.csv`` plus images in ``images/`` or
  ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``;
* ``isic-cli`` -- what ``isic image download`` writes: ``metadata.csv`` keyed by
  ``isic_id`` with ``<isic_id>.jpg`` beside it.

If the folder itself has none of these but its sub-folders do (``data/`` holding
``isic-archive/`` and ``ham10000/``), every data set found one level down is
read and the tables are concatenated; ``layout`` is then e.g. ``"folders+ham10000"``.

Every image is decoded once at read time (cheaply, at reduced JPEG scale) so a
broken file is reported here instead of crashing training later.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from helpers.config import DEFAULT_DATA_DIR, HOW_TO_GET_DATA, DataNotFoundError

CLASS_NAMES = ("benign", "malignant")
MALIGNANT_DX = {"mel", "bcc", "akiec"}
DX_NAMES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}
TABLE_COLUMNS = [
    "path", "image_id", "label", "given_split", "lesion_id", "dx", "dx_type",
    "age", "sex", "site", "source", "dataset",
]
SKIPPED_COLUMNS = ["path", "reason", "detail"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
# Folder names accepted as a given split. A given validation folder is pooled
# with train: the project carves its own validation set by duplicate groups.
SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "train", "valid": "train", "validation": "train"}
HAM_CSV = "HAM10000_metadata.csv"
HAM_IMAGE_DIRS = ("images", "HAM10000_images_part_1", "HAM10000_images_part_2", ".")
ISIC_CSV = "metadata.csv"
# Two threads: the machines have two cores and PIL releases the GIL while decoding.
N_THREADS = 2

# Skip reasons (the ``reason`` column); ``detail`` carries the specifics.
UNREADABLE = "unreadable image"
NOT_IMAGE = "not an image file"
UNKNOWN_CLASS = "unknown class folder"
OUTSIDE_CLASS = "image outside a class folder"
NO_METADATA = "image without metadata row"
NO_IMAGE = "metadata row without image"
DUPLICATE_ROW = "duplicate metadata row"
NO_LABEL = "no benign/malignant label"


class DataFormatError(ValueError):
    """A metadata file exists but cannot be used (e.g. a required column is missing)."""


@dataclass
class ReadResult:
    """What ``read_dataset`` found.

    ``table`` has one row per usable image (``TABLE_COLUMNS``); ``skipped`` one
    row per file or metadata row that was left out (``path``, ``reason``,
    ``detail``); ``notes`` lists folder-level findings such as empty class
    folders, which have no file to put in ``skipped``.
    """

    table: pd.DataFrame
    skipped: pd.DataFrame
    layout: str
    root: Path
    notes: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Counts for the data report: found = read + skipped image files."""
        skipped_files = self.skipped[~self.skipped["reason"].isin([NO_IMAGE, DUPLICATE_ROW, NO_LABEL])]
        return {
            "layout": self.layout,
            "root": str(self.root),
            "found": int(len(self.table) + len(skipped_files)),
            "read": int(len(self.table)),
            "skipped": int(len(self.skipped)),
            "skipped_by_reason": {str(k): int(v) for k, v in self.skipped["reason"].value_counts().items()},
            "per_class": {name: int((self.table["label"] == i).sum()) for i, name in enumerate(CLASS_NAMES)},
            "per_given_split": {str(k): int(v) for k, v in self.table["given_split"].value_counts().sort_index().items()},
            **{key: list(value) for key, value in self.notes.items()},
        }


# ---------------------------------------------------------------------------
# Image decoding
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def _large_images_allowed() -> Iterator[None]:
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
    with _large_images_allowed():
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
    with _large_images_allowed(), ThreadPoolExecutor(N_THREADS) as pool:
        for i, (arr, error) in enumerate(pool.map(lambda p: _try_load(p, image_size), paths)):
            if error is None:
                out[i] = arr
                ok[i] = True
            else:
                skipped.append((paths[i], error))
    return (out if ok.all() else out[ok]), skipped


def _check_images(paths: Sequence[Path]) -> list[str | None]:
    """Decode every image at a tiny size; return an error text or None per path."""
    with _large_images_allowed(), ThreadPoolExecutor(N_THREADS) as pool:
        return [error for _, error in pool.map(lambda p: _try_load(p, 8), paths)]


# ---------------------------------------------------------------------------
# Helpers shared by the readers
# ---------------------------------------------------------------------------

class _Collector:
    """Accumulates table rows and skipped entries while a reader walks a data set."""

    def __init__(self, root: Path, layout: str):
        self.root, self.layout = root, layout
        self.rows: list[dict] = []
        self.skipped: list[dict] = []
        self.notes: dict[str, list[str]] = {}

    def skip(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.skipped.append({"path": str(path), "reason": reason, "detail": detail})

    def note(self, key: str, value: str) -> None:
        self.notes.setdefault(key, []).append(value)

    def verify_and_finish(self) -> ReadResult:
        """Decode every candidate image, move failures to ``skipped``, build the tables."""
        errors = _check_images([Path(r["path"]) for r in self.rows])
        good = []
        for row, error in zip(self.rows, errors):
            if error is None:
                good.append(row)
            else:
                self.skip(row["path"], UNREADABLE, error)
        table = _make_table(good)
        skipped = pd.DataFrame(self.skipped, columns=SKIPPED_COLUMNS).astype("str")
        return ReadResult(table=table, skipped=skipped, layout=self.layout, root=self.root, notes=self.notes)


def _make_table(rows: list[dict]) -> pd.DataFrame:
    """Build the image table with fixed columns and dtypes, sorted by path."""
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table = table.astype({"label": "int64", "age": "float64"})
    for col in TABLE_COLUMNS:
        if col not in ("label", "age"):
            table[col] = table[col].astype("str")
    return table.sort_values("path", ignore_index=True)


def _row(path: Path, **values) -> dict:
    row = dict.fromkeys(TABLE_COLUMNS, np.nan)
    row.update(path=str(path), **values)
    return row


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _read_csv(path: Path, required: Iterable[str]) -> pd.DataFrame:
    """Read a metadata CSV as strings; raise naming the file and any missing column."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataFormatError(f"Cannot parse {path}: {error}") from error
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path} lacks required column(s) {', '.join(repr(c) for c in missing)}; "
            f"its columns are: {', '.join(df.columns)}"
        )
    return df


def _optional(df: pd.DataFrame, row_index: int, *columns: str):
    """First non-null value among ``columns`` (that exist) in one row, else NaN."""
    for col in columns:
        if col in df.columns:
            value = df.at[row_index, col]
            if isinstance(value, str) and value.strip():
                return value.strip()
    return np.nan


def _to_age(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


# ---------------------------------------------------------------------------
# Layout: one folder per class
# ---------------------------------------------------------------------------

def _folder_classes(root: Path) -> list[tuple[str, Path]] | None:
    """``(given_split, folder)`` pairs whose sub-folders are class folders, or None.

    Returns None when ``root`` does not look like a folder-per-class layout:
    no split folder (train/test/...) and no class folder (benign/malignant).
    """
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    splits = [(SPLIT_FOLDERS[p.name.lower()], p) for p in subdirs if p.name.lower() in SPLIT_FOLDERS]
    has_class_dir = any(p.name.lower() in CLASS_NAMES for p in subdirs)
    if splits and any(q.is_dir() for _, p in splits for q in p.iterdir()):
        return splits + ([("train", root)] if has_class_dir else [])
    if has_class_dir:
        return [("train", root)]
    return None


def _read_folders(root: Path, containers: list[tuple[str, Path]]) -> ReadResult:
    c = _Collector(root, "folders")
    split_dirs = {p for _, p in containers if p != root}
    for given_split, container in containers:
        for loose in sorted(p for p in container.iterdir() if p.is_file()):
            # Documentation at the top (README, licence) is expected; an image is not.
            if _is_image_name(loose):
                c.skip(loose, OUTSIDE_CLASS, f"directly in {container}")
        for folder in sorted(p for p in container.iterdir() if p.is_dir()):
            if folder in split_dirs:
                continue
            files = _files_under(folder)
            name = folder.name.lower()
            if name not in CLASS_NAMES:
                c.note("unknown_class_folders", str(folder))
                for f in files:
                    c.skip(f, UNKNOWN_CLASS, f"folder {folder.name!r} is not one of {CLASS_NAMES}")
                continue
            images = [f for f in files if _is_image_name(f)]
            if not images:
                c.note("empty_class_folders", str(folder))
            for f in files:
                if not _is_image_name(f):
                    c.skip(f, NOT_IMAGE, f"suffix {f.suffix!r}")
                    continue
                c.rows.append(_row(
                    f, image_id=f.relative_to(root).with_suffix("").as_posix(),
                    label=CLASS_NAMES.index(name), given_split=given_split,
                    source=root.name, dataset=root.name,
                ))
    for _, container in containers:
        present = {p.name.lower() for p in container.iterdir() if p.is_dir()}
        for name in CLASS_NAMES:
            if name not in present:
                c.note("missing_class_folders", str(container / name))
    return c.verify_and_finish()


# ---------------------------------------------------------------------------
# Layout: HAM10000
# ---------------------------------------------------------------------------

def _index_images(folders: Iterable[Path]) -> dict[str, Path]:
    """Map file stem -> path for the image files directly inside ``folders``."""
    index: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_file() and _is_image_name(p):
                    index.setdefault(p.stem, p)
    return index


def _match_rows_to_images(c: _Collector, ids: pd.Series, index: dict[str, Path],
                          csv_path: Path) -> dict[str, tuple[int, Path]]:
    """Record rows without images, repeated rows and images without rows; return
    id -> (index of its first row, image path), in the order of the CSV."""
    matched: dict[str, tuple[int, Path]] = {}
    for i, image_id in ids.items():
        if image_id in matched:
            c.skip(image_id, DUPLICATE_ROW, f"{image_id} appears more than once in {csv_path}")
        elif image_id in index:
            matched[image_id] = (i, index[image_id])
        else:
            c.skip(image_id, NO_IMAGE, f"{image_id} is in {csv_path} but no image file has that name")
    for stem, path in index.items():
        if stem not in matched:
            c.skip(path, NO_METADATA, f"no row for {stem} in {csv_path}")
    return matched


def _read_ham10000(root: Path) -> ReadResult:
    c = _Collector(root, "ham10000")
    csv_path = root / HAM_CSV
    df = _read_csv(csv_path, ["image_id", "dx"])
    df["image_id"] = df["image_id"].str.strip()
    index = _index_images(root / d for d in HAM_IMAGE_DIRS)
    for image_id, (i, path) in _match_rows_to_images(c, df["image_id"], index, csv_path).items():
        dx = str(df.at[i, "dx"]).strip().lower()
        if dx not in DX_NAMES:
            c.skip(path, NO_LABEL, f"unknown dx {dx!r} (expected one of {sorted(DX_NAMES)})")
            continue
        c.rows.append(_row(
            path, image_id=image_id, label=int(dx in MALIGNANT_DX), given_split="train",
            lesion_id=_optional(df, i, "lesion_id"), dx=dx, dx_type=_optional(df, i, "dx_type"),
            age=_to_age(_optional(df, i, "age")), sex=_optional(df, i, "sex"),
            site=_optional(df, i, "localization"), source="HAM10000", dataset=root.name,
        ))
    return c.verify_and_finish()


# ---------------------------------------------------------------------------
# Layout: isic-cli export
# ---------------------------------------------------------------------------

# Older archive diagnosis names and newer hierarchical terms -> HAM10000 codes,
# so that stratification and reports use one vocabulary. Checked in order.
_DX_PATTERNS = [
    (r"melanoma", "mel"),
    (r"basal cell carcinoma", "bcc"),
    (r"actinic keratosis|solar or actinic|intraepithelial carcinoma|squamous cell carcinoma in situ|bowen", "akiec"),
    (r"dermatofibroma", "df"),
    (r"vascular|angioma|angiokeratoma|pyogenic granuloma|hemangioma", "vasc"),
    (r"seborrheic keratosis|pigmented benign keratosis|solar lentigo|lichen planus like|lentigo simplex|benign keratosis", "bkl"),
    (r"nevus", "nv"),
]
_LABEL_WORDS = {"benign": 0, "malignant": 1}


def _isic_label(df: pd.DataFrame, i: int) -> int | None:
    """Benign/malignant from ``diagnosis_1`` (new archive) or ``benign_malignant`` (old)."""
    value = _optional(df, i, "diagnosis_1", "benign_malignant")
    if isinstance(value, str):
        return _LABEL_WORDS.get(value.lower())
    return None


def _isic_dx(df: pd.DataFrame, i: int) -> str | float:
    """Map the most specific diagnosis text to a HAM10000 code when one fits, else NaN."""
    for col in ("diagnosis_5", "diagnosis_4", "diagnosis_3", "diagnosis_2", "diagnosis"):
        value = _optional(df, i, col)
        if isinstance(value, str):
            text = value.lower()
            for pattern, code in _DX_PATTERNS:
                if re.search(pattern, text):
                    return code
    return np.nan


def _read_isic_cli(root: Path) -> ReadResult:
    c = _Collector(root, "isic-cli")
    csv_path = root / ISIC_CSV
    df = _read_csv(csv_path, ["isic_id"])
    if not {"diagnosis_1", "benign_malignant"} & set(df.columns):
        raise DataFormatError(
            f"{csv_path} lacks a label column: expected 'diagnosis_1' (current ISIC Archive) "
            f"or 'benign_malignant' (older exports); its columns are: {', '.join(df.columns)}"
        )
    df["isic_id"] = df["isic_id"].str.strip()
    index = _index_images([root, root / "images"])
    for isic_id, (i, path) in _match_rows_to_images(c, df["isic_id"], index, csv_path).items():
        label = _isic_label(df, i)
        if label is None:
            found = _optional(df, i, "diagnosis_1", "benign_malignant")
            c.skip(path, NO_LABEL, f"diagnosis_1/benign_malignant is {found!r}")
            continue
        # Attribution names the contributing clinic: the closest thing to "source".
        source = _optional(df, i, "attribution")
        if not isinstance(source, str):
            source = "ISIC Archive"
        c.rows.append(_row(
            path, image_id=isic_id, label=label, given_split="train",
            lesion_id=_optional(df, i, "lesion_id"), dx=_isic_dx(df, i),
            dx_type=_optional(df, i, "diagnosis_confirm_type", "dx_type"),
            age=_to_age(_optional(df, i, "age_approx", "age")), sex=_optional(df, i, "sex"),
            site=_optional(df, i, "anatom_site_general", "anatom_site_general_challenge"),
            source=source, dataset=root.name,
        ))
    return c.verify_and_finish()


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def _detect(root: Path):
    """Return a zero-argument reader for ``root``'s layout, or None."""
    if (root / HAM_CSV).is_file():
        return lambda: _read_ham10000(root)
    if (root / ISIC_CSV).is_file():
        return lambda: _read_isic_cli(root)
    containers = _folder_classes(root)
    if containers is not None:
        return lambda: _read_folders(root, containers)
    return None


def _combine(results: list[ReadResult], root: Path) -> ReadResult:
    table = pd.concat([r.table for r in results], ignore_index=True).sort_values("path", ignore_index=True)
    skipped = pd.concat([r.skipped for r in results], ignore_index=True)
    notes: dict[str, list[str]] = {}
    for r in results:
        for key, values in r.notes.items():
            notes.setdefault(key, []).extend(values)
    layout = "+".join(dict.fromkeys(r.layout for r in results))
    return ReadResult(table=table, skipped=skipped, layout=layout, root=root, notes=notes)


def read_dataset(data_dir: str | Path) -> ReadResult:
    """Detect the layout of ``data_dir``, read its metadata and check every image.

    Raises ``DataNotFoundError`` when the folder is missing or holds nothing
    usable (the message says which layouts were expected) and
    ``DataFormatError`` (a ``ValueError``) when a metadata CSV lacks a column.
    """
    root = Path(data_dir).expanduser().resolve()
    how = HOW_TO_GET_DATA.format(default=DEFAULT_DATA_DIR)
    if not root.is_dir():
        raise DataNotFoundError(f"Data directory {root} does not exist.\n{how}")
    reader = _detect(root)
    if reader is not None:
        result = reader()
    else:
        readers = [r for sub in sorted(p for p in root.iterdir() if p.is_dir()) if (r := _detect(sub))]
        if not readers:
            found = ", ".join(sorted(p.name for p in root.iterdir())[:20]) or "nothing"
            raise DataNotFoundError(f"No known data layout in {root} (found: {found}).\n{how}")
        result = _combine([r() for r in readers], root)
    if result.table.empty:
        reasons = result.summary()["skipped_by_reason"]
        raise DataNotFoundError(
            f"No usable images in {root} (layout {result.layout!r}; skipped: {reasons or 'none found'}; "
            f"notes: {result.notes or 'none'}).\n{how}"
        )
    return result
