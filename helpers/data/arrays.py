"""The split notebook 1 saved, read back with its images as arrays.

``save_split`` writes the split with paths relative to the data folder (the
committed file means the same on every machine); ``load_split_arrays`` reads
it back and decodes every split's images at one size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ..config import OutputDirs, output_dirs, resolve_data_dir, resolve_ham_dir
from . import splits
from .images import load_images
from .labels import CLASS_NAMES


@dataclass
class SplitArrays:
    """Images (uint8, N x S x S x 3) and labels of each split, with their table rows
    and the images that could not be loaded."""

    image_size: int
    tables: dict[str, pd.DataFrame]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    skipped: list[tuple[str, str]]

    def counts(self) -> pd.DataFrame:
        rows = {s: {c: int((self.y[s] == i).sum()) for i, c in enumerate(CLASS_NAMES)}
                for s in self.x}
        return pd.DataFrame(rows).T.assign(total=lambda d: d.sum(axis=1))


# The ``root`` column of a split names the folder each path is relative to: the
# binary data set (``data_dir``) or HAM10000 (``ham_dir``), each found on this
# machine the way config finds it, so the committed file means the same everywhere.
DATA_ROOT, HAM_ROOT = "data_dir", "ham_dir"


def save_split(split: pd.DataFrame, roots: str | os.PathLike | Mapping[str, str | os.PathLike],
               path: str | os.PathLike) -> Path:
    """Save the split with each path relative to its data folder (portable), atomically.

    ``roots``: one folder for every row, or ``{root: folder}`` for the values of
    the split's ``root`` column (``DATA_ROOT``, ``HAM_ROOT``).
    """
    if not isinstance(roots, Mapping):
        split, roots = split.assign(root=split["root"] if "root" in split else DATA_ROOT), {DATA_ROOT: roots}
    rel = split.assign(path=[os.path.relpath(p, roots[r]) for p, r in zip(split["path"], split["root"])])
    return splits.save_split(rel, path)


def load_split_table(data_dir: str | None = None, out: OutputDirs | None = None, *, ham_dir: str | None = None,
                     roots: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The split saved by notebook 1, with paths under this machine's data folders.

    ``roots``: only the rows of these data folders (e.g. ``(HAM_ROOT,)``).
    """
    out = out or output_dirs()
    table = splits.load_split(out.split)
    if "root" not in table:  # a split of one data set, saved before several were split together
        table["root"] = DATA_ROOT
    if roots is not None:
        table = table[table["root"].isin(roots)].reset_index(drop=True)
    folders = {DATA_ROOT: lambda: resolve_data_dir(data_dir), HAM_ROOT: lambda: resolve_ham_dir(ham_dir, data_dir)}
    found = {r: folders[r]() for r in table["root"].unique()}
    table["path"] = [str(found[r] / p) for p, r in zip(table["path"], table["root"])]
    for r, folder in found.items():
        part = table[table["root"] == r]
        if len(part) and not any(Path(p).exists() for p in part["path"]):
            raise FileNotFoundError(
                f"None of the {len(part)} images of {out.split} under {folder} exist: the split was made from "
                "another data folder. Run notebooks/1_Data_Exploration.ipynb with these data folders first.")
    return table


def load_split_arrays(image_size: int, data_dir: str | None = None, out: OutputDirs | None = None, *,
                      ham_dir: str | None = None, roots: tuple[str, ...] | None = (DATA_ROOT,),
                      labels: Callable[[pd.DataFrame], np.ndarray] | None = None) -> SplitArrays:
    """Load the split saved by notebook 1 and its images at ``image_size`` (by default
    the binary data set's rows only; ``roots=None``: every data set).

    Images that fail to load now (e.g. deleted since notebook 1) are reported and
    left out of every split, never silently.
    """
    table = load_split_table(data_dir, out or output_dirs(), ham_dir=ham_dir, roots=roots)
    return arrays_from_split(table, image_size, labels)


def arrays_from_split(table: pd.DataFrame, image_size: int,
                      labels: Callable[[pd.DataFrame], np.ndarray] | None = None) -> SplitArrays:
    """Images and labels of each split of ``table`` (``labels(part)``, default its
    ``label`` column). Images that fail to load are listed and left out, never silently."""
    tables, xs, ys, skipped = {}, {}, {}, []
    for name in ("train", "val", "test"):
        part = table[table["split"] == name].reset_index(drop=True)
        x, bad = load_images(part["path"].tolist(), image_size)
        if bad:
            bad_paths = {p for p, _ in bad}
            part = part[~part["path"].isin(bad_paths)].reset_index(drop=True)
            skipped.extend(bad)
        y = labels(part) if labels else part["label"].to_numpy(dtype="int64")
        tables[name], xs[name], ys[name] = part, x, y
    if skipped:
        print(f"{len(skipped)} image(s) could not be loaded and were left out:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")
    return SplitArrays(image_size, tables, xs, ys, skipped)


def split_roots(out: OutputDirs | None = None) -> set[str]:
    """The data folders the saved split draws on (``DATA_ROOT``, and ``HAM_ROOT`` when
    notebook 1 found HAM10000)."""
    table = splits.load_split((out or output_dirs()).split)
    return set(table["root"]) if "root" in table else {DATA_ROOT}


def load_other_data_sets(image_size: int, data_dir: str | None = None, out: OutputDirs | None = None, *,
                         ham_dir: str | None = None) -> dict[str, SplitArrays]:
    """The split's other data sets with benign/malignant labels (HAM10000: malignant =
    mel, bcc, akiec), by data-set name; {} when notebook 1 split the binary data set alone."""
    out = out or output_dirs()
    if HAM_ROOT not in split_roots(out):
        return {}
    ham = load_split_arrays(image_size, data_dir, out, ham_dir=ham_dir, roots=(HAM_ROOT,))
    return {str(ham.tables["test"]["dataset"].iloc[0]): ham}
