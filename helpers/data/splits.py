"""Leak-free train/validation/test splits, the saved split file and the data report.

Splits are made by duplicate group (``helpers.duplicates.assign_groups``): all
images of one lesion or one photo land in the same split, so a model is never
tested on a copy of a training image.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ..atomic import atomic_path, jsonable, write_json
from .labels import CLASS_NAMES, DX_CLASSES
from .layouts import TABLE_COLUMNS, ReadResult

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = TABLE_COLUMNS + ["sha256", "phash", "group", "split"]
_DTYPES = {"label": "int64", "age": "float64"}


# ---------------------------------------------------------------------------
# Subsets and splits
# ---------------------------------------------------------------------------

def quick_subset(table: pd.DataFrame, n: int, seed: int,
                 by: str | list[str] = ("given_split", "label")) -> pd.DataFrame:
    """At most ``n`` random rows of each group of ``by`` (default: each given
    split and class; ``by="dx"``: each diagnosis), for a quick run.

    Rows keep their original order and index, so the subset is a plain slice
    of ``table``; the same seed gives the same subset; a group smaller than
    ``n`` keeps all its rows, so every class is still present.
    """
    by = list(by) if not isinstance(by, str) else by
    picked = (
        table.groupby(by, group_keys=False)
        .sample(frac=1.0, random_state=seed)
        .groupby(by, group_keys=False)
        .head(n)
    )
    return table.loc[table.index.isin(picked.index)]


def _strata(table: pd.DataFrame, n_splits: int) -> np.ndarray:
    """Stratify by dx where every dx is common enough, else by label; by data set too
    when the table holds several.

    A dx with fewer rows than ``n_splits`` cannot be spread over the folds, so
    it is folded into its binary label ("benign"/"malignant").
    """
    label_names = table["label"].map(dict(enumerate(CLASS_NAMES))).astype("str")
    if "dx" not in table or table["dx"].isna().all():
        strata = label_names
    else:
        strata = table["dx"].fillna(label_names).astype("str")
        rare = strata.map(strata.value_counts()) < n_splits
        strata = strata.mask(rare, label_names)
    if "dataset" in table and table["dataset"].nunique() > 1:
        strata = table["dataset"].astype("str") + "/" + strata
        rare = strata.map(strata.value_counts()) < n_splits
        strata = strata.mask(rare, table["dataset"].astype("str") + "/" + label_names)
    return strata.to_numpy()


def _carve(table: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """Boolean mask of roughly ``fraction`` of the rows, whole groups, stratified.

    Uses the first fold of a shuffled StratifiedGroupKFold with
    ``round(1 / fraction)`` folds, so fractions are effectively 1/k.
    """
    n_splits = max(2, int(round(1.0 / fraction)))
    n_groups = table["group"].nunique()
    if n_groups < n_splits:
        raise ValueError(f"Only {n_groups} groups: too few to carve a {fraction:.0%} split.")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class rarer than n_splits (tiny quick runs) cannot be spread evenly; that is expected.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        _, held_out = next(cv.split(np.zeros(len(table)), _strata(table, n_splits), table["group"]))
    mask = np.zeros(len(table), dtype=bool)
    mask[held_out] = True
    return pd.Series(mask, index=table.index)


def split_counts(table: pd.DataFrame, by: str = "label") -> dict[str, dict[str, int]]:
    """{split: {class: n}}, zeros included: by ``"label"`` (benign/malignant)
    or by ``"dx"`` (the seven diagnoses, in ``DX_CLASSES`` order)."""
    if by == "label":
        values, classes = table["label"].map(dict(enumerate(CLASS_NAMES))), CLASS_NAMES
    else:
        values, classes = table[by], DX_CLASSES
    return {split: {c: int(((table["split"] == split) & (values == c)).sum()) for c in classes}
            for split in SPLITS}


def assert_groups_do_not_straddle(table: pd.DataFrame) -> None:
    """Raise AssertionError if any group has members in two splits."""
    per_group = table.groupby("group")["split"].nunique()
    bad = per_group[per_group > 1]
    assert bad.empty, f"{len(bad)} duplicate groups straddle splits, e.g. {bad.index[:5].tolist()}"


def make_split(table: pd.DataFrame, seed: int, val_fraction: float = 0.2,
               test_fraction: float = 0.2) -> tuple[pd.DataFrame, dict]:
    """Assign every row to train/val/test by duplicate group; return (table, report).

    * With a given test split (``given_split == "test"``): test is the given
      test set minus every image whose group also has a member in the given
      train set. Those rows are removed from the output (not moved to train)
      and listed in ``report["dropped_test_duplicates"]``. Validation is
      ``val_fraction`` of the given train set, carved by group and stratified.
    * Without one: ``test_fraction`` of all rows is carved as test, then
      ``val_fraction`` of all rows (taken from the rest) as validation.

    Stratification is by dx when available (rare dx folded into the label),
    else by label. ``table`` must have a ``group`` column.
    """
    if "group" not in table:
        raise ValueError("make_split needs a 'group' column: run helpers.duplicates.assign_groups first.")
    if table["group"].isna().any():
        raise ValueError("make_split: some rows have no group.")
    if "dataset" in table and table["dataset"].nunique() > 1:
        return _make_multisource_split(table, seed, val_fraction, test_fraction)
    out = table.copy()
    report: dict = {"seed": int(seed), "val_fraction": val_fraction, "test_fraction": test_fraction}
    given_test = out["given_split"].eq("test")
    dropped = out.iloc[0:0]
    if given_test.any():
        train_groups = set(out.loc[~given_test, "group"])
        leaking = given_test & out["group"].isin(train_groups)
        dropped = out.loc[leaking]
        out = out.loc[~leaking].copy()
        is_test = out["given_split"].eq("test")
        pool = out.loc[~is_test]
        is_val = _carve(pool, val_fraction, seed)
        out["split"] = "test"
        out.loc[pool.index, "split"] = np.where(is_val, "val", "train")
        report["strategy"] = "given test split minus duplicates of train; val carved from given train by group"
    else:
        is_test = _carve(out, test_fraction, seed)
        rest = out.loc[~is_test]
        is_val = _carve(rest, val_fraction / (1.0 - test_fraction), seed + 1)
        out["split"] = "train"
        out.loc[is_test, "split"] = "test"
        out.loc[rest.index[is_val.to_numpy()], "split"] = "val"
        report["strategy"] = "grouped stratified split (no given test split)"
    return _finish(out, dropped, report)


def _make_multisource_split(table: pd.DataFrame, seed: int, val_fraction: float,
                            test_fraction: float) -> tuple[pd.DataFrame, dict]:
    """``make_split`` for several data sets whose images share groups (the same lesion,
    the same photo in two archives).

    * A data set's given test split stays its test split, minus images whose
      group has a member in that data set's given training split (dropped and
      listed, as for one data set). The other members of a test image's group,
      from data sets without a given split, go to test with it.
    * From groups made only of images of data sets without a given test split,
      ``test_fraction`` is carved as their test split.
    * Validation is ``val_fraction`` of the rest, carved by group and stratified
      by data set and diagnosis (or label).
    """
    out = table.copy()
    report: dict = {"seed": int(seed), "val_fraction": val_fraction, "test_fraction": test_fraction}
    given_test = out["given_split"].eq("test")
    with_test = set(out.loc[given_test, "dataset"])
    given_train = ~given_test & out["dataset"].isin(with_test)
    train_groups = set(out.loc[given_train, "group"])
    leaking = given_test & out["group"].isin(train_groups)
    dropped = out.loc[leaking]
    out = out.loc[~leaking].copy()
    is_test = out["group"].isin(set(out.loc[out["given_split"].eq("test"), "group"]))
    only_free = out.groupby("group")["dataset"].agg(lambda d: not set(d) & with_test)
    candidates = out.loc[~is_test & out["group"].map(only_free)]
    if len(candidates):
        carved = _carve(candidates, test_fraction, seed)
        is_test |= out.index.isin(candidates.index[carved.to_numpy()])
    pool = out.loc[~is_test]
    is_val = _carve(pool, val_fraction, seed + 1)
    out["split"] = "test"
    out.loc[pool.index, "split"] = np.where(is_val, "val", "train")
    report["strategy"] = ("several data sets grouped together: each given test split minus duplicates of its "
                          "train split, with its group relatives; test carved from groups of data sets without "
                          "a given test split; val carved from the rest by group")
    out, report = _finish(out, dropped, report)
    report["counts_by_dataset"] = {d: split_counts(part) for d, part in out.groupby("dataset")}
    return out, report


def _finish(out: pd.DataFrame, dropped: pd.DataFrame, report: dict) -> tuple[pd.DataFrame, dict]:
    out["split"] = out["split"].astype("str")
    assert_groups_do_not_straddle(out)
    groups_per_split = out.groupby("split")["group"].nunique()
    report.update({
        "n_images": int(len(out)),
        "counts": split_counts(out),
        "groups": {s: int(groups_per_split.get(s, 0)) for s in SPLITS},
        "dropped_test_duplicates": sorted(dropped["path"].astype(str).tolist()),
        "n_dropped_test_duplicates": int(len(dropped)),
        "stratified_by": "dx" if "dx" in out and out["dx"].notna().any() else "label",
    })
    return out, report


# ---------------------------------------------------------------------------
# Saving and loading the split
# ---------------------------------------------------------------------------

def save_split(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the split table as CSV, atomically (known columns first)."""
    missing = [c for c in ("path", "label", "group", "split") if c not in table]
    if missing:
        raise ValueError(f"save_split: table lacks column(s) {missing}")
    first = [c for c in SPLIT_COLUMNS if c in table]
    columns = first + [c for c in table.columns if c not in first]
    path = Path(path)
    with atomic_path(path) as tmp:
        table[columns].to_csv(tmp, index=False)
    return path


def load_split(path: str | Path) -> pd.DataFrame:
    """Read a split written by ``save_split`` with the table's dtypes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No split file at {path}: run notebooks/1_Data_Exploration.ipynb first "
            "(it reads the data, groups duplicates and writes the split)."
        )
    table = pd.read_csv(path, dtype="str", keep_default_na=False, na_values=[""])
    missing = [c for c in ("path", "label", "group", "split") if c not in table]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; re-run notebooks/1_Data_Exploration.ipynb.")
    return table.astype({k: v for k, v in _DTYPES.items() if k in table})


# ---------------------------------------------------------------------------
# Data report
# ---------------------------------------------------------------------------

def data_report(read_result: ReadResult | list[ReadResult], split_table: pd.DataFrame, split_report: dict,
                pairs: pd.DataFrame, grouping: dict | None = None) -> dict:
    """Everything a reader needs to trust the data, as a JSON-able dict.

    Several data sets read separately (``read_result`` a list) are reported as
    one, with paths relative to their common folder and the split counted per
    data set too; ``grouping``: what each grouping rule added (``duplicates.group_images``).
    """
    if isinstance(read_result, list):
        read_result = ReadResult(
            table=pd.concat([r.table for r in read_result], ignore_index=True),
            skipped=pd.concat([r.skipped for r in read_result], ignore_index=True),
            layout="+".join(r.layout for r in read_result),
            root=Path(os.path.commonpath([r.root for r in read_result])),
            notes={k: v for r in read_result for k, v in r.notes.items()})
    summary = read_result.summary()
    skipped = read_result.skipped
    table = split_table
    sizes = table.groupby("group").size()
    multi = sizes[sizes > 1]
    label_names = table["label"].map(dict(enumerate(CLASS_NAMES)))
    mixed = table.groupby("group")["label"].nunique()
    source_per_class = pd.crosstab(table["source"], label_names)
    report = {
        "data": {k: summary[k] for k in ("layout", "root", "found", "read", "skipped", "skipped_by_reason")},
        "notes": {k: v for k, v in summary.items() if k not in ("layout", "root", "found", "read", "skipped",
                                                                "skipped_by_reason", "per_class", "per_given_split")},
        "skipped": {reason: sorted(skipped.loc[skipped["reason"] == reason, "path"].tolist())
                    for reason in sorted(skipped["reason"].unique())},
        "duplicates": {
            "n_groups": int(table["group"].nunique()),
            "n_groups_with_several_images": int(len(multi)),
            "group_sizes": {int(k): int(v) for k, v in multi.value_counts().sort_index().items()},
            "n_exact_pairs": int((pairs["kind"] == "exact").sum()),
            "n_near_pairs": int((pairs["kind"] == "near").sum()),
            "n_groups_with_both_labels": int((mixed > 1).sum()),
            "pairs": pairs.to_dict(orient="records"),
        },
        "split": {
            "strategy": split_report.get("strategy"),
            "seed": split_report.get("seed"),
            "stratified_by": split_report.get("stratified_by"),
            "counts": split_counts(table),
            "groups": split_report.get("groups"),
            **({"counts_by_dataset": split_report["counts_by_dataset"]} if "counts_by_dataset" in split_report
               else {}),
        },
        **({"grouping": grouping} if grouping else {}),
        "dropped_test_duplicates": {
            "count": int(split_report.get("n_dropped_test_duplicates", 0)),
            "paths": list(split_report.get("dropped_test_duplicates", [])),
        },
        "source_per_class": {src: {name: int(row.get(name, 0)) for name in CLASS_NAMES}
                             for src, row in source_per_class.iterrows()},
    }
    return _relative_paths(jsonable(report), str(read_result.root))


def _relative_paths(value, root: str):
    """Paths under the data folder written relative to it: the report is committed
    and must mean the same on every machine."""
    if isinstance(value, dict):
        return {k: _relative_paths(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v, root) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root.rstrip("/") + "/")):
        return value[len(root.rstrip("/")) + 1:] or "."
    return value


def save_data_report(report: dict, path: str | Path) -> Path:
    """Write the data report as JSON, atomically."""
    return write_json(path, jsonable(report))
