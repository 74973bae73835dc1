"""Find, check and read dermoscopic data sets in any of the supported layouts.

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

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..config import DEFAULT_DATA_DIR, HAM_DIR_NAME, HOW_TO_GET_DATA, DataNotFoundError
from .images import IMAGE_SUFFIXES, check_images
from .labels import CLASS_NAMES, DX_NAMES, MALIGNANT_DX


TABLE_COLUMNS = [
    "path", "image_id", "label", "given_split", "lesion_id", "dx", "dx_type",
    "age", "sex", "site", "source", "dataset",
]
SKIPPED_COLUMNS = ["path", "reason", "detail"]


# Folder names accepted as a given split. A given validation folder is pooled
# with train: the project carves its own validation set by duplicate groups.
SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "train", "valid": "train", "validation": "train"}
HAM_CSV = "HAM10000_metadata.csv"
HAM_IMAGE_DIRS = ("images", "HAM10000_images_part_1", "HAM10000_images_part_2", ".")
ISIC_CSV = "metadata.csv"

# Skip reasons (the ``reason`` column); ``detail`` carries the specifics.
UNREADABLE = "unreadable image"
NOT_IMAGE = "not an image file"
UNKNOWN_CLASS = "unknown class folder"
OUTSIDE_CLASS = "image outside a class folder"
NO_METADATA = "image without metadata row"
NO_IMAGE = "metadata row without image"
DUPLICATE_ROW = "duplicate metadata row"
NO_LABEL = "no benign/malignant label"
CONFLICTING_ROWS = "conflicting metadata rows"
BROKEN_LINK = "broken link"


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

    def files_under(self, folder: Path) -> list[Path]:
        """The files under ``folder``; a link that points nowhere is skipped and listed."""
        files = []
        for p in sorted(folder.rglob("*")):
            if p.is_symlink() and not p.exists():
                self.skip(p, BROKEN_LINK, f"points to {os.readlink(p)}, which does not exist")
            elif p.is_file():
                files.append(p)
        return files

    def note(self, key: str, value: str) -> None:
        self.notes.setdefault(key, []).append(value)

    def verify_and_finish(self) -> ReadResult:
        """Decode every candidate image, move failures to ``skipped``, build the tables."""
        errors = check_images([Path(r["path"]) for r in self.rows])
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


def _class_of(folder_name: str) -> tuple[int, str | float] | None:
    """(label, dx) of a class folder: ``benign``/``malignant``, or one of the seven
    HAM10000 diagnoses (``mel``, ``nv``, ...: malignant = mel, bcc, akiec); else None."""
    name = folder_name.lower()
    if name in CLASS_NAMES:
        return CLASS_NAMES.index(name), np.nan
    if name in DX_NAMES:
        return int(name in MALIGNANT_DX), name
    return None


def _folder_classes(root: Path) -> list[tuple[str, Path]] | None:
    """``(given_split, folder)`` pairs whose sub-folders are class folders, or None.

    Returns None when ``root`` does not look like a folder-per-class layout:
    no split folder (train/test/...) and no class folder (benign/malignant or
    a HAM10000 diagnosis).
    """
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    splits = [(SPLIT_FOLDERS[p.name.lower()], p) for p in subdirs if p.name.lower() in SPLIT_FOLDERS]
    has_class_dir = any(_class_of(p.name) is not None for p in subdirs)
    if splits and any(q.is_dir() for _, p in splits for q in p.iterdir()):
        return splits + ([("train", root)] if has_class_dir else [])
    if has_class_dir:
        return [("train", root)]
    return None


def _read_folders(root: Path, containers: list[tuple[str, Path]]) -> ReadResult:
    c = _Collector(root, "folders")
    split_dirs = {p for _, p in containers if p != root}
    if root not in {container for _, container in containers}:
        for loose in sorted(p for p in root.iterdir() if p.is_file() and _is_image_name(p)):
            c.skip(loose, OUTSIDE_CLASS, f"directly in {root}, beside the split folders: move it into a class folder")
    for given_split, container in containers:
        for loose in sorted(p for p in container.iterdir() if p.is_file()):
            # Documentation at the top (README, licence) is expected; an image is not.
            if _is_image_name(loose):
                c.skip(loose, OUTSIDE_CLASS, f"directly in {container}")
        for folder in sorted(p for p in container.iterdir() if p.is_dir()):
            if folder in split_dirs:
                continue
            files = c.files_under(folder)
            found = _class_of(folder.name)
            if found is None:
                c.note("unknown_class_folders", str(folder))
                for f in files:
                    c.skip(f, UNKNOWN_CLASS, f"folder {folder.name!r} is not one of {CLASS_NAMES} "
                                             f"or the HAM10000 diagnoses {sorted(DX_NAMES)}")
                continue
            label, dx = found
            images = [f for f in files if _is_image_name(f)]
            if not images:
                c.note("empty_class_folders", str(folder))
            for f in files:
                if not _is_image_name(f):
                    c.skip(f, NOT_IMAGE, f"suffix {f.suffix!r}")
                    continue
                c.rows.append(_row(
                    f, image_id=f.relative_to(root).with_suffix("").as_posix(),
                    label=label, dx=dx, given_split=given_split,
                    source=root.name, dataset=root.name,
                ))
    for _, container in containers:
        present = {p.name.lower() for p in container.iterdir() if p.is_dir()}
        if present & set(DX_NAMES):
            continue  # diagnosis folders: any subset of the seven is a valid data set
        for name in CLASS_NAMES:
            if name not in present:
                c.note("missing_class_folders", str(container / name))
    return c.verify_and_finish()


# ---------------------------------------------------------------------------
# Layout: HAM10000
# ---------------------------------------------------------------------------


def _index_images(c: _Collector, folders: Iterable[Path]) -> dict[str, Path]:
    """Map file stem -> path for the image files directly inside ``folders``
    (a link that points nowhere is skipped and listed)."""
    index: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_symlink() and not p.exists() and _is_image_name(p):
                    c.skip(p, BROKEN_LINK, f"points to {os.readlink(p)}, which does not exist")
                elif p.is_file() and _is_image_name(p):
                    index.setdefault(p.stem, p)
    return index


def _match_rows_to_images(c: _Collector, ids: pd.Series, index: dict[str, Path], csv_path: Path,
                          labels: pd.Series | None = None) -> dict[str, tuple[int, Path]]:
    """Record rows without images, repeated rows and images without rows; return
    id -> (index of its first row, image path), in the order of the CSV.

    A repeated row with another ``labels`` value (e.g. another dx) is a conflict
    nobody can settle here: the image is left out and both values are named.
    """
    matched: dict[str, tuple[int, Path]] = {}
    conflicts: dict[str, set[str]] = {}
    for i, image_id in ids.items():
        if image_id in matched:
            first = matched[image_id][0]
            if labels is not None and str(labels[i]).strip().lower() != str(labels[first]).strip().lower():
                conflicts.setdefault(image_id, {str(labels[first]).strip()}).add(str(labels[i]).strip())
            else:
                c.skip(image_id, DUPLICATE_ROW, f"{image_id} appears more than once in {csv_path}")
        elif image_id in index:
            matched[image_id] = (i, index[image_id])
        else:
            c.skip(image_id, NO_IMAGE, f"{image_id} is in {csv_path} but no image file has that name")
    for stem, path in index.items():
        if stem not in matched:
            c.skip(path, NO_METADATA, f"no row for {stem} in {csv_path}")
    for image_id, values in conflicts.items():
        c.skip(matched.pop(image_id)[1], CONFLICTING_ROWS,
               f"{image_id} has rows with {labels.name} {' and '.join(sorted(values))} in {csv_path}: "
               "left out until the metadata says which is right")
    return matched


def _read_ham10000(root: Path) -> ReadResult:
    c = _Collector(root, "ham10000")
    csv_path = root / HAM_CSV
    df = _read_csv(csv_path, ["image_id", "dx"])
    df["image_id"] = df["image_id"].str.strip()
    index = _index_images(c, (root / d for d in HAM_IMAGE_DIRS))
    for image_id, (i, path) in _match_rows_to_images(c, df["image_id"], index, csv_path, df["dx"]).items():
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
    index = _index_images(c, [root, root / "images"])
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
        # A folder of data sets: each sub-folder with a known layout, except hidden ones (a
        # download's part folder) and the HAM10000 folder, which notebook 1 reads as its own
        # data set (config.resolve_ham_dir) and which must not also enter the binary one.
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        left_out = [p for p in subs if p.name.casefold() == HAM_DIR_NAME]
        readers = [r for sub in subs if sub not in left_out and (r := _detect(sub))]
        if not readers:
            found = ", ".join(sorted(p.name for p in root.iterdir())[:20]) or "nothing"
            also = (f" ({HAM_DIR_NAME}/ is the seven-class data set, not read as part of {root.name}/: "
                    f"name it directly to use it here)") if left_out else ""
            raise DataNotFoundError(f"No known data layout in {root} (found: {found}){also}.\n{how}")
        result = _combine([r() for r in readers], root)
        for sub in left_out:
            result.notes.setdefault("left_out", []).append(
                f"{sub.name}/: the HAM10000 data set of notebooks 1 and 5, read there on its own")
    if result.table.empty:
        reasons = result.summary()["skipped_by_reason"]
        raise DataNotFoundError(
            f"No usable images in {root} (layout {result.layout!r}; skipped: {reasons or 'none found'}; "
            f"notes: {result.notes or 'none'}).\n{how}"
        )
    return result
