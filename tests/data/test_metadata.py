"""helpers.data.metadata and the HAM10000 side of the data layer: the metadata
encoder, diagnosis labels, the per-diagnosis subset and the grouped split."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from image_factory import save, textured

from helpers import config
from helpers.config import DataNotFoundError
from helpers.data import arrays, duplicates, labels, layouts, metadata, splits


def _meta_table(rows):
    return pd.DataFrame(rows, columns=["age", "sex", "site"]).astype({"age": "float64"})


TRAIN = _meta_table(
    [(40.0, "male", "back")] * 6 + [(60.0, "female", "face")] * 6 + [(np.nan, "unknown", "unknown")] * 2
    + [(50.0, "female", "acral")] * 2)  # acral: rarer than min_count


def test_encoder_is_fitted_on_train_and_names_its_columns():
    enc = metadata.MetadataEncoder(min_count=5).fit(TRAIN)
    ages = TRAIN["age"].dropna()
    assert enc.age_mean == pytest.approx(ages.mean()) and enc.age_sd == pytest.approx(ages.std(ddof=0))
    assert enc.sexes == ["female", "male"] and enc.sites == ["back", "face"]  # acral (2) is too rare
    assert enc.feature_names == ["age_z", "age_missing", "sex=female", "sex=male", "sex=unknown",
                                 "site=back", "site=face", "site=unknown"]
    X = enc.transform(TRAIN)
    assert X.shape == (len(TRAIN), enc.n_features) and X.dtype == np.float32
    assert abs(X[~np.isnan(TRAIN["age"].to_numpy()), 0].mean()) < 1e-6  # standardised on train


def test_missing_unknown_rare_and_unseen_values_are_explicit():
    enc = metadata.MetadataEncoder(min_count=5).fit(TRAIN)
    new = _meta_table([(np.nan, None, None), (35.0, "nan", "acral"), (70.0, " Male ", "palms and soles"),
                       (45.0, "other", "BACK")])
    X = pd.DataFrame(enc.transform(new), columns=enc.feature_names)
    assert X["age_missing"].tolist() == [1, 0, 0, 0] and X.loc[0, "age_z"] == 0.0
    assert X["sex=unknown"].tolist() == [1, 1, 0, 1]  # missing, "nan" text, unseen category
    assert X.loc[2, "sex=male"] == 1  # case and spaces do not matter
    assert X["site=unknown"].tolist() == [1, 1, 1, 0]  # missing, rare in train, unseen
    assert X.loc[3, "site=back"] == 1
    one_hot = X.drop(columns=["age_z", "age_missing"])
    assert (one_hot.filter(like="sex=").sum(axis=1) == 1).all()
    assert (one_hot.filter(like="site=").sum(axis=1) == 1).all()
    assert np.isfinite(X.to_numpy()).all()


def test_encoder_round_trips_through_json():
    enc = metadata.MetadataEncoder().fit(TRAIN)
    again = metadata.MetadataEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    np.testing.assert_array_equal(again.transform(TRAIN), enc.transform(TRAIN))
    with pytest.raises(RuntimeError, match="before fit"):
        metadata.MetadataEncoder().transform(TRAIN)


def test_metadata_summary_counts_missing_values():
    assert metadata.metadata_summary(TRAIN) == {"n": 16, "age_missing": 2, "sex_unknown": 2, "site_unknown": 2}


def _ham_table(n_per_dx):
    rows = []
    for dx, n in n_per_dx.items():
        for i in range(n):
            rows.append({"path": f"/x/{dx}{i}.jpg", "dx": dx, "given_split": "train",
                         "label": int(dx in labels.MALIGNANT_DX)})
    return pd.DataFrame(rows)


def test_dx_subset_caps_each_diagnosis_and_is_repeatable():
    table = _ham_table({"nv": 50, "mel": 12, "df": 3, "bkl": 30})
    sub = splits.quick_subset(table, 10, seed=0, by="dx")
    assert sub["dx"].value_counts().to_dict() == {"nv": 10, "mel": 10, "bkl": 10, "df": 3}
    assert sub.index.is_monotonic_increasing
    assert sub.index.equals(splits.quick_subset(table, 10, seed=0, by="dx").index)
    assert not sub.index.equals(splits.quick_subset(table, 10, seed=1, by="dx").index)


def test_labels_follow_the_fixed_class_order():
    assert labels.DX_CLASSES == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert labels.dx_labels(pd.DataFrame({"dx": ["vasc", "AKIEC", "nv"]})).tolist() == [6, 0, 5]
    with pytest.raises(ValueError, match="outside"):
        labels.dx_labels(pd.DataFrame({"dx": ["scc"]}))


def test_ham_split_keeps_lesions_together_and_saves_relative_paths(tmp_path):
    root = tmp_path / "ham"
    rows, k = [], 0
    for dx, n_lesions in {"nv": 14, "mel": 6, "bkl": 6, "bcc": 5, "akiec": 5, "df": 5, "vasc": 5}.items():
        for lesion in range(n_lesions):
            for shot in range(1 + lesion % 2):  # some lesions photographed twice
                image_id = f"ISIC_{k:07d}"
                save(textured(k, 32), root / "images" / f"{image_id}.jpg")
                rows.append({"lesion_id": f"HAM_{dx}{lesion}", "image_id": image_id, "dx": dx,
                             "dx_type": "histo", "age": 50 if k % 7 else "", "sex": "male", "localization": "back"})
                k += 1
    pd.DataFrame(rows).to_csv(root / layouts.HAM_CSV, index=False)
    table = layouts.read_dataset(root).table
    split, report = splits.make_split(duplicates.assign_groups(table), seed=0, test_fraction=0.2)
    splits.assert_groups_do_not_straddle(split)
    assert split.groupby("lesion_id")["split"].nunique().max() == 1
    assert set(split["split"]) == {"train", "val", "test"} and report["stratified_by"] == "dx"
    counts = splits.split_counts(split, by="dx")
    assert sum(sum(c.values()) for c in counts.values()) == len(rows)
    assert list(counts["train"]) == list(labels.DX_CLASSES)
    path = arrays.save_split(split, root, tmp_path / "split_ham10000.csv")
    saved = splits.load_split(path)
    assert saved["path"].str.startswith("images/").all() and len(saved) == len(rows)


def test_find_ham_dir_falls_back_to_beside_the_binary_data(tmp_path, monkeypatch):
    for var in ("SKIN_HAM10000_DIR", "SKIN_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", tmp_path / "no-data-here")
    (tmp_path / "ham10000").mkdir()
    (tmp_path / "isic-mvb").mkdir()
    assert config.resolve_ham_dir(tmp_path / "ham10000") == (tmp_path / "ham10000").resolve()
    assert config.resolve_ham_dir(None, tmp_path / "isic-mvb") == (tmp_path / "ham10000").resolve()
    with pytest.raises(DataNotFoundError):
        config.resolve_ham_dir(tmp_path / "missing", tmp_path / "isic-mvb")  # an explicit folder is never second-guessed
