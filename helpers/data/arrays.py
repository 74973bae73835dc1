"""The split notebook 1 saved, read back with its images as arrays.

``save_split`` writes the split with paths relative to the data folder (the
committed file means the same on every machine); ``load_split_arrays`` reads
it back and decodes every split's images at one size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..config import OutputDirs, output_dirs, resolve_data_dir
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


def save_split(split: pd.DataFrame, data_root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Save the split with paths relative to the data folder (portable), atomically."""
    rel = split.assign(path=[os.path.relpath(p, data_root) for p in split["path"]])
    return splits.save_split(rel, path)


def load_split_table(data_dir: str | None = None, out: OutputDirs | None = None) -> pd.DataFrame:
    """The split saved by notebook 1, with paths under this machine's data folder."""
    out = out or output_dirs()
    root = resolve_data_dir(data_dir)
    table = splits.load_split(out.split)
    table["path"] = [str(root / p) for p in table["path"]]
    missing = [p for p in table["path"] if not Path(p).exists()]
    if len(missing) == len(table):
        raise FileNotFoundError(
            f"None of the {len(table)} images in {out.split} exist under {root}: the split was made from "
            "another data folder. Run notebooks/1_Data_Exploration.ipynb with this data_dir first.")
    return table


def load_split_arrays(image_size: int, data_dir: str | None = None,
                      out: OutputDirs | None = None) -> SplitArrays:
    """Load the split saved by notebook 1 and its images at ``image_size``.

    Images that fail to load now (e.g. deleted since notebook 1) are reported and
    left out of every split, never silently.
    """
    return arrays_from_split(load_split_table(data_dir, out or output_dirs()), image_size)


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
