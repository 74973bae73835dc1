"""helpers.splits: grouped stratified splits, the split file and the data report (no images needed)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.data import labels, layouts, splits


def synthetic_table(n_groups: int = 300, seed: int = 0, given_test: bool = True, with_dx: bool = False) -> pd.DataFrame:
    """Rows in groups of 1-3 (like duplicates / lesions), 40% malignant, 20% given test."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        label = int(rng.random() < 0.4)
        dx = rng.choice(["mel", "bcc", "akiec"], p=[0.6, 0.3, 0.1]) if label else rng.choice(["nv", "bkl", "df"], p=[0.8, 0.18, 0.02])
        for k in range(int(rng.integers(1, 4))):
            split = "test" if given_test and rng.random() < 0.2 else "train"
            rows.append({"path": f"/data/{g}_{k}.jpg", "image_id": f"{g}_{k}", "label": label,
                         "given_split": split, "lesion_id": np.nan, "dx": dx if with_dx else np.nan,
                         "dx_type": np.nan, "age": np.nan, "sex": np.nan, "site": np.nan,
                         "source": "clinic A" if g % 2 else "clinic B", "dataset": "synthetic",
                         "sha256": f"{g:064x}", "phash": f"{g:064x}", "group": f"g{g:05d}"})
    table = pd.DataFrame(rows)
    return table.astype({c: "str" for c in table.columns if c not in ("label", "age")} | {"age": "float64"})


def _malignant_share(t: pd.DataFrame) -> pd.Series:
    return t.groupby("split")["label"].mean()


def test_given_test_split_drops_leaking_duplicates():
    table = synthetic_table()
    out, report = splits.make_split(table, seed=1)
    splits.assert_groups_do_not_straddle(out)
    train_groups = set(table.loc[table["given_split"] == "train", "group"])
    leaking = table[(table["given_split"] == "test") & table["group"].isin(train_groups)]
    assert len(leaking) > 10
    assert report["dropped_test_duplicates"] == sorted(leaking["path"])
    assert report["n_dropped_test_duplicates"] == len(leaking)
    assert not out["path"].isin(leaking["path"]).any(), "dropped rows are not moved to train"
    assert set(out.loc[out["split"] == "test", "given_split"]) == {"test"}
    assert set(out.loc[out["split"] != "test", "given_split"]) == {"train"}
    pool = out[out["split"] != "test"]
    assert 0.15 < (pool["split"] == "val").mean() < 0.25
    share = _malignant_share(pool)  # the given test set is as given; val is stratified against train
    assert abs(share["train"] - share["val"]) < 0.08
    assert report["counts"]["test"]["malignant"] == int(((out["split"] == "test") & (out["label"] == 1)).sum())


def test_without_given_test_split_carves_both_by_group():
    table = synthetic_table(given_test=False, with_dx=True)
    out, report = splits.make_split(table, seed=3)
    splits.assert_groups_do_not_straddle(out)
    fractions = out["split"].value_counts(normalize=True)
    assert 0.15 < fractions["test"] < 0.25 and 0.15 < fractions["val"] < 0.25
    assert report["n_dropped_test_duplicates"] == 0 and len(out) == len(table)
    assert report["stratified_by"] == "dx"
    assert (_malignant_share(out) - table["label"].mean()).abs().max() < 0.08
    mel_share = out.groupby("split")["dx"].apply(lambda d: (d == "mel").mean())
    assert mel_share.max() - mel_share.min() < 0.08


def test_same_seed_same_split_other_seed_other_split():
    table = synthetic_table()
    a, _ = splits.make_split(table, seed=7)
    b, _ = splits.make_split(table, seed=7)
    c, _ = splits.make_split(table, seed=8)
    assert a["split"].equals(b["split"])
    assert not a["split"].equals(c["split"])


def test_split_needs_groups():
    with pytest.raises(ValueError, match="assign_groups"):
        splits.make_split(synthetic_table().drop(columns="group"), seed=0)


def test_quick_subset_is_stratified_and_repeatable():
    table = synthetic_table(seed=5)
    sub = splits.quick_subset(table, 10, seed=0)
    sizes = sub.groupby(["given_split", "label"]).size()
    available = table.groupby(["given_split", "label"]).size()
    assert (sizes == np.minimum(available, 10)).all()
    assert sub.index.equals(splits.quick_subset(table, 10, seed=0).index)
    assert not sub.index.equals(splits.quick_subset(table, 10, seed=1).index)
    assert sub.index.is_monotonic_increasing


def test_save_and_load_round_trip(tmp_path):
    out, _ = splits.make_split(synthetic_table(), seed=0)
    path = splits.save_split(out, tmp_path / "models" / "split.csv")
    back = splits.load_split(path)
    assert list(back.columns[: len(layouts.TABLE_COLUMNS)]) == layouts.TABLE_COLUMNS
    pd.testing.assert_frame_equal(back, out.reset_index(drop=True)[back.columns])
    assert back["label"].dtype == "int64" and back["age"].dtype == "float64"
    assert [p.name for p in path.parent.iterdir()] == ["split.csv"], "no temporary file left behind"


def test_load_split_missing_file_says_which_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run notebooks/1_Data_Exploration\.ipynb first"):
        splits.load_split(tmp_path / "split.csv")


def test_data_report_is_json_and_complete(tmp_path):
    table = synthetic_table()
    out, split_report = splits.make_split(table, seed=0)
    skipped = pd.DataFrame({"path": ["/data/bad.jpg", "/data/odd.txt"],
                            "reason": [layouts.UNREADABLE, layouts.NOT_IMAGE], "detail": ["truncated", ".txt"]})
    read = layouts.ReadResult(table=table[layouts.TABLE_COLUMNS], skipped=skipped, layout="folders",
                           root=tmp_path, notes={"empty_class_folders": ["/data/test/benign"]})
    pairs = pd.DataFrame({"path_a": ["/data/0_0.jpg", "/data/1_0.jpg"], "path_b": ["/data/0_1.jpg", "/data/1_1.jpg"],
                          "kind": ["exact", "near"], "distance": [0, 120]})
    report = splits.data_report(read, out, split_report, pairs)
    json.dumps(report, allow_nan=False)
    assert report["data"]["found"] == len(table) + 2 and report["data"]["skipped"] == 2
    assert report["skipped"] == {layouts.NOT_IMAGE: ["/data/odd.txt"], layouts.UNREADABLE: ["/data/bad.jpg"]}
    assert report["notes"]["empty_class_folders"] == ["/data/test/benign"]
    assert report["duplicates"]["n_exact_pairs"] == 1 and report["duplicates"]["n_near_pairs"] == 1
    assert report["dropped_test_duplicates"]["count"] == split_report["n_dropped_test_duplicates"]
    assert sum(sum(c.values()) for c in report["split"]["counts"].values()) == len(out)
    assert set(report["source_per_class"]) == {"clinic A", "clinic B"}
    assert set(report["source_per_class"]["clinic A"]) == set(labels.CLASS_NAMES)
    path = splits.save_data_report(report, tmp_path / "report.json")
    assert json.loads(path.read_text()) == report


def test_tiny_table_still_splits():
    table = synthetic_table(n_groups=8, seed=2)  # 4 malignant training rows < 5 folds: sklearn warns
    out, report = splits.make_split(table, seed=0)
    splits.assert_groups_do_not_straddle(out)
    assert set(out["split"]) <= set(splits.SPLITS) and report["counts"]


def test_two_data_sets_sharing_lesions_are_split_together():
    """isic-mvb-like (given train/test) and HAM10000-like (no given split) with shared groups:
    a test image's relatives from the other archive go to test with it, a lesion in one
    archive's training split never reaches the other's test split, and both have a test split."""
    archive = synthetic_table(200, seed=3).assign(dataset="archive")
    ham = synthetic_table(300, seed=4, given_test=False, with_dx=True).assign(dataset="ham")
    ham["group"] = "h" + ham["group"]
    shared = ham["group"].drop_duplicates().iloc[:60]  # 60 HAM lesions also photographed in the archive
    archive_groups = archive["group"].drop_duplicates().iloc[:60].to_list()
    ham.loc[ham["group"].isin(shared), "group"] = ham["group"].map(dict(zip(shared, archive_groups)))
    table = pd.concat([archive, ham], ignore_index=True)
    out, report = splits.make_split(table, seed=0)
    splits.assert_groups_do_not_straddle(out)
    train_groups = set(out.loc[(out["dataset"] == "archive") & (out["split"] != "test"), "group"])
    ham_test = out[(out["dataset"] == "ham") & (out["split"] == "test")]
    assert not set(ham_test["group"]) & train_groups
    archive_test = out[(out["dataset"] == "archive") & (out["split"] == "test")]
    assert set(archive_test["given_split"]) == {"test"}  # the archive's own test split, nothing else
    pulled = ham_test["group"].isin(set(archive_test["group"]))
    assert pulled.any()  # relatives of archive test images went to test with them
    share = (out["dataset"] == "ham") & (out["split"] == "test")
    assert 0.15 < share.sum() / (out["dataset"] == "ham").sum() < 0.35
    assert set(report["counts_by_dataset"]) == {"archive", "ham"}
    for dataset in ("archive", "ham"):
        assert (out.loc[out["dataset"] == dataset, "split"] == "val").any()
    again, _ = splits.make_split(table, seed=0)
    assert again["split"].equals(out["split"])
