"""helpers.duplicates: exact and near-duplicate groups on synthetic copies, plus one real-data check."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.fft
from PIL import Image, ImageOps

from helpers.data import duplicates as dup, layouts
from image_factory import folder_dataset, save, textured

REAL_MVB = [Path(__file__).resolve().parents[2] / "shared" / "data" / "isic-mvb", Path("/work/shared/data/isic-mvb")]


@pytest.fixture
def copies(tmp_path) -> pd.DataFrame:
    """One textured original, five kinds of copy of it, and two unrelated images."""
    original = textured(7, 80)
    d = tmp_path / "benign"
    paths = {
        "original": save(original, d / "original.jpg", quality=95),
        "byte_copy": d / "byte_copy.jpg",
        "requality": save(original, d / "requality.jpg", quality=60),
        "resized": save(original.resize((71, 71), Image.Resampling.BILINEAR), d / "resized.jpg"),  # as 224 -> 200
        "hflip": save(ImageOps.mirror(original), d / "hflip.jpg"),
        "vflip": save(ImageOps.flip(original), d / "vflip.png"),
        "rot90": save(original.rotate(90), d / "rot90.jpg"),
        "other": save(textured(8, 80), d / "other.jpg"),
        "other2": save(textured(9, 64), d / "other2.jpg"),
    }
    shutil.copyfile(paths["original"], paths["byte_copy"])
    return pd.DataFrame({"path": [str(p) for p in paths.values()], "lesion_id": np.nan},
                        index=list(paths)).astype({"lesion_id": "str"})


def test_copies_are_grouped_and_others_are_not(copies):
    g = dup.assign_groups(copies)
    group = g["group"]
    copy_names = ["byte_copy", "requality", "resized", "hflip", "vflip", "rot90"]
    assert (group[copy_names] == group["original"]).all()
    assert group["other"] != group["original"] and group["other2"] != group["original"]
    assert group["other"] != group["other2"]
    assert g.loc["byte_copy", "sha256"] == g.loc["original", "sha256"]
    assert g.loc["requality", "sha256"] != g.loc["original", "sha256"]
    assert g["phash"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert list(g.columns[-3:]) == ["sha256", "phash", "group"]


def test_distances_leave_a_wide_margin(copies):
    h = dup.compute_hashes(copies["path"])
    n = len(copies)
    i, j = np.triu_indices(n, 1)
    d = pd.Series(dup.fine_distances(h, i, j), index=pd.MultiIndex.from_arrays([copies.index[i], copies.index[j]]))
    copy_d = d.loc["original"].drop(["other", "other2"])
    assert copy_d.max() <= dup.PHASH_THRESHOLD // 2, copy_d.to_dict()
    unrelated = [d.loc["original", "other"], d.loc["original", "other2"], d.loc["other", "other2"]]
    assert min(unrelated) > dup.PHASH_THRESHOLD + 100, unrelated  # random pairs sit near 512 of 1024


def test_duplicate_pairs_kinds(copies):
    pairs = dup.duplicate_pairs(copies)
    assert list(pairs.columns) == ["path_a", "path_b", "kind", "distance"]
    exact = pairs[pairs["kind"] == "exact"]
    assert len(exact) == 1 and exact["distance"].tolist() == [0]
    assert {Path(exact["path_a"].iloc[0]).stem, Path(exact["path_b"].iloc[0]).stem} == {"original", "byte_copy"}
    near = pairs[pairs["kind"] == "near"]
    assert len(near) == 20  # 7 related images -> 21 pairs, one of them exact
    assert not near["path_a"].str.contains("other").any() and not near["path_b"].str.contains("other").any()


def test_lesion_id_joins_different_images(tmp_path):
    paths = folder_dataset(tmp_path, {(None, "benign"): 4}, size=48)
    table = pd.DataFrame({"path": [str(p) for p in paths],
                          "lesion_id": pd.array(["L1", "L1", np.nan, np.nan], dtype="str")})
    group = dup.assign_groups(table)["group"].tolist()
    assert group[0] == group[1]
    assert len({group[1], group[2], group[3]}) == 3, "missing lesion_id must not join rows"
    assert group == sorted(group) and group[0] == "g00000"  # numbered in table order


def test_undecodable_file_still_gets_exact_duplicates(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    shutil.copyfile(bad, tmp_path / "bad_copy.jpg")
    good = save(textured(3, 48), tmp_path / "good.jpg")
    table = pd.DataFrame({"path": [str(bad), str(tmp_path / "bad_copy.jpg"), str(good)]})
    g = dup.assign_groups(table)
    assert g["phash"].tolist()[:2] == ["", ""]
    assert g["group"].iloc[0] == g["group"].iloc[1] != g["group"].iloc[2]


def test_dihedral_bits_match_hashing_the_transformed_image():
    rng = np.random.default_rng(0)
    thumb = rng.uniform(0, 255, (32, 32))
    def block(x):
        return scipy.fft.dct(scipy.fft.dct(x, axis=0), axis=1)[:16, :16]
    variants = dup.dihedral_bits(block(thumb)[None])[0]
    for transformed in (thumb[:, ::-1], thumb[::-1], thumb.T, np.rot90(thumb), np.rot90(thumb, 2), np.rot90(thumb, 3)):
        plain = dup.dihedral_bits(block(np.ascontiguousarray(transformed))[None])[0, 0]
        assert any((plain == v).all() for v in variants)


def test_pair_search_is_vectorised():
    # 3,000 random hashes: the coarse search must stay a few matrix products, not Python loops.
    rng = np.random.default_rng(1)
    n = 3000
    h = dup.Hashes([str(k) for k in range(n)],
                   rng.integers(0, 256, (n, 8, 32), dtype=np.uint8),
                   rng.integers(0, 256, (n, 8, 128), dtype=np.uint8), np.ones(n, dtype=bool))
    h.fine[5] = h.fine[17]
    h.coarse[5] = h.coarse[17]
    start = time.perf_counter()
    pairs = dup.near_pairs(h)
    assert time.perf_counter() - start < 5
    assert pairs[["i", "j", "distance"]].values.tolist() == [[5, 17, 0]]


@pytest.mark.real_data
def test_isic_mvb_leaks_are_found():
    """On the real isic-mvb set: >= 21 test images share a group with train, and the exact pair."""
    root = next((p for p in REAL_MVB if p.is_dir()), None)
    if root is None:
        pytest.skip("isic-mvb not present")
    table = layouts.read_dataset(root).table
    g = dup.assign_groups(table)
    train_groups = set(g.loc[g["given_split"] == "train", "group"])
    leaking = g[(g["given_split"] == "test") & g["group"].isin(train_groups)]
    assert len(leaking) >= 21
    exact = g[g["sha256"].duplicated(keep=False)]
    assert len(exact) == 2 and set(exact["given_split"]) == {"train"}
    assert exact["group"].nunique() == 1
    sizes = g.groupby("group").size()
    assert sizes.max() <= 15, "a huge group would mean unrelated lesions were merged"
    assert g.groupby("group")["label"].nunique().max() == 1


def test_similar_features_join_groups_and_each_rule_is_counted(tmp_path):
    """Learned-feature pairs link what no hash does; the report counts what each rule added."""
    paths = [save(textured(k, 48), tmp_path / f"{k}.png") for k in range(6)]
    (tmp_path / "copy.png").write_bytes(paths[0].read_bytes())  # a byte-identical copy of image 0
    table = pd.DataFrame({"path": [str(p) for p in paths] + [str(tmp_path / "copy.png")],
                          "lesion_id": ["L1", "L1", None, None, None, None, None]})
    features = np.eye(7)
    features[4] = features[3] + 0.01  # 3 and 4: different photos, nearly the same description
    similar = dup.similar_pairs(features, cosine=0.99)
    assert similar[["i", "j"]].values.tolist() == [[3, 4]]
    grouped, report = dup.group_images(table, similar=similar)
    groups = grouped["group"].tolist()
    assert groups[0] == groups[1] == groups[6] and groups[3] == groups[4]
    assert len(set(groups)) == 4  # {0, 1, 6}, {3, 4}, {2}, {5}
    steps = {s["rule"]: s for s in report["rules"]}
    assert steps["same file (SHA-256)"]["groups_added"] == 1 and steps["same lesion_id"]["images_added"] == 1
    assert steps["similar features"]["groups_added"] == 1
    assert dup.assign_groups(table)["group"].nunique() == 5  # without the features: 3 and 4 apart


def test_a_second_photo_stands_out_from_its_neighbourhood():
    """Below the cosine threshold, a pair is linked when it is much closer than either
    image's k-th neighbour; a pair as close as the crowd around it is not."""
    rng = np.random.default_rng(0)
    crowd = rng.normal(size=(30, 16)) * 0.3 + 5.0  # many similar, unrelated lesions (cosine ~0.99)
    lone = rng.normal(size=(2, 16))
    lone[1] = lone[0] + rng.normal(size=16) * 0.5  # two shots of one lesion: cosine ~0.9, far from the crowd
    pairs = dup.similar_pairs(np.vstack([crowd, lone]), cosine=0.9999, margin=0.09, floor=0.75, k=5, min_images=0)
    assert dup.similar_pairs(np.vstack([crowd, lone]), cosine=0.9999, k=5).empty  # too few images for a crowd
    linked = set(map(tuple, pairs[["i", "j"]].to_numpy()))
    assert (30, 31) in linked and 0.75 <= pairs.set_index(["i", "j"]).loc[(30, 31), "cosine"] < 0.9999
    assert not any(i < 30 and j < 30 for i, j in linked)  # the crowd: similar, but not standing out


def test_the_feature_rule_agrees_with_the_pairs_judged_by_eye():
    """The rule, read on the scores recorded with tests/fixtures/similar_pairs_by_eye.csv."""
    judged = pd.read_csv(Path(__file__).parents[1] / "fixtures" / "similar_pairs_by_eye.csv")
    assert len(judged) >= 70 and set(judged["verdict"]) == {"same lesion", "different lesions"}
    linked = (judged["cosine"] >= dup.FEATURE_COSINE) | (
        (judged["margin"] >= dup.FEATURE_MARGIN) & (judged["cosine"] >= dup.FEATURE_FLOOR))
    same = judged["verdict"] == "same lesion"
    precision = (linked & same).sum() / linked.sum()
    assert precision >= 0.9, precision
    assert (linked & same).sum() / same.sum() >= 0.8  # most of the judged same-lesion pairs are caught
