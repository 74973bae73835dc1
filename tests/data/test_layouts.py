"""helpers.data: layouts, bad input and image decoding, on tiny synthetic files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.data import images, labels, layouts
from helpers.config import DataNotFoundError
from image_factory import (folder_dataset, ham_dataset, isic_cli_dataset, save, textured,
                            truncated_jpeg)

# ---------------------------------------------------------------------------
# Layout: folder per class
# ---------------------------------------------------------------------------

def test_folders_with_given_split(tmp_path):
    folder_dataset(tmp_path, {("train", "Benign"): 3, ("train", "MALIGNANT"): 2,
                              ("test", "benign"): 1, ("test", "malignant"): 2})
    result = layouts.read_dataset(tmp_path)
    t = result.table
    assert result.layout == "folders"
    assert list(t.columns) == layouts.TABLE_COLUMNS
    assert len(t) == 8 and result.skipped.empty
    assert t.groupby(["given_split", "label"]).size().to_dict() == {
        ("test", 0): 1, ("test", 1): 2, ("train", 0): 3, ("train", 1): 2}
    assert t["image_id"].is_unique  # file names repeat across folders; ids must not
    assert all(Path(p).is_absolute() for p in t["path"])
    assert set(t["source"]) == {tmp_path.name} and set(t["dataset"]) == {tmp_path.name}
    assert t["label"].dtype == "int64" and t["age"].isna().all()
    s = result.summary()
    assert (s["found"], s["read"], s["skipped"]) == (8, 8, 0)
    assert s["per_class"] == {"benign": 4, "malignant": 4}


def test_folders_without_split_are_train(tmp_path):
    folder_dataset(tmp_path, {(None, "benign"): 2, (None, "malignant"): 2})
    (tmp_path / "README.md").write_text("documentation at the top is fine")
    t = layouts.read_dataset(tmp_path).table
    assert set(t["given_split"]) == {"train"} and len(t) == 4


def test_unknown_empty_and_stray_files_are_reported(tmp_path):
    folder_dataset(tmp_path, {("train", "benign"): 2, ("train", "malignant"): 2, ("train", "nevus"): 2})
    (tmp_path / "test" / "benign").mkdir(parents=True)           # empty class folder
    save(textured(50, 32), tmp_path / "test" / "malignant" / "a.jpg")
    (tmp_path / "train" / "benign" / "notes.txt").write_text("not an image")
    save(textured(51, 32), tmp_path / "train" / "loose.jpg")     # image outside any class folder
    result = layouts.read_dataset(tmp_path)
    reasons = result.skipped.groupby("reason").size().to_dict()
    assert reasons == {layouts.UNKNOWN_CLASS: 2, layouts.NOT_IMAGE: 1, layouts.OUTSIDE_CLASS: 1}
    s = result.summary()
    assert s["empty_class_folders"] == [str(tmp_path / "test" / "benign")]
    assert s["unknown_class_folders"] == [str(tmp_path / "train" / "nevus")]
    assert s["read"] == 5 and s["found"] == 9
    assert s["skipped_by_reason"][layouts.UNKNOWN_CLASS] == 2


def test_diagnosis_folders_are_classes_too(tmp_path):
    """A folder per HAM10000 diagnosis (as an outside test set might come): dx from the
    folder, benign/malignant from the dx (malignant = mel, bcc, akiec)."""
    folder_dataset(tmp_path, {(None, "mel"): 2, (None, "NV"): 3, (None, "bcc"): 1, (None, "akiec"): 1})
    result = layouts.read_dataset(tmp_path)
    t = result.table
    assert result.skipped.empty and len(t) == 7
    assert t.groupby("dx")["label"].first().to_dict() == {"akiec": 1, "bcc": 1, "mel": 1, "nv": 0}
    assert "missing_class_folders" not in result.summary()  # any subset of the seven is a data set


def test_images_beside_the_split_folders_and_broken_links_are_listed(tmp_path):
    folder_dataset(tmp_path, {("train", "benign"): 2, ("train", "malignant"): 2, ("test", "benign"): 1,
                              ("test", "malignant"): 1})
    save(textured(60, 32), tmp_path / "stray.jpg")  # at the data root, beside train/ and test/
    (tmp_path / "train" / "benign" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = layouts.read_dataset(tmp_path)
    skipped = result.skipped.set_index("reason")["path"].to_dict()
    assert skipped == {layouts.OUTSIDE_CLASS: str(tmp_path / "stray.jpg"),
                       layouts.BROKEN_LINK: str(tmp_path / "train" / "benign" / "gone.jpg")}
    assert "beside the split folders" in result.skipped.set_index("reason").loc[layouts.OUTSIDE_CLASS, "detail"]
    assert len(result.table) == 6


def test_ham10000_rows_that_disagree_on_dx_are_left_out_and_named(tmp_path):
    meta = ham_dataset(tmp_path, ["nv", "mel", "bkl"])
    extra = meta.iloc[[0, 1]].assign(dx=["mel", "mel"])  # image 0: nv and mel; image 1: mel twice
    pd.concat([meta, extra]).to_csv(tmp_path / layouts.HAM_CSV, index=False)
    (tmp_path / "images" / "ISIC_0000009.jpg").symlink_to(tmp_path / "missing.jpg")
    result = layouts.read_dataset(tmp_path)
    assert result.table["image_id"].tolist() == ["ISIC_0000001", "ISIC_0000002"]
    reasons = result.skipped.set_index("reason")
    assert "ISIC_0000000 has rows with dx mel and nv" in reasons.loc[layouts.CONFLICTING_ROWS, "detail"]
    assert reasons.loc[layouts.DUPLICATE_ROW, "path"] == "ISIC_0000001"
    assert reasons.loc[layouts.BROKEN_LINK, "path"].endswith("ISIC_0000009.jpg")


def test_broken_files_are_skipped_with_reason(tmp_path):
    folder_dataset(tmp_path, {(None, "benign"): 2, (None, "malignant"): 2})
    truncated_jpeg(tmp_path / "benign" / "truncated.jpg")
    (tmp_path / "malignant" / "text.jpg").write_text("this is not a JPEG")
    (tmp_path / "malignant" / "empty.png").write_bytes(b"")
    result = layouts.read_dataset(tmp_path)
    assert len(result.table) == 4
    bad = result.skipped.set_index("path")
    assert set(bad["reason"]) == {layouts.UNREADABLE}
    assert {Path(p).name for p in bad.index} == {"truncated.jpg", "text.jpg", "empty.png"}
    assert bad["detail"].str.len().gt(0).all()  # says what went wrong


def test_odd_but_valid_images_are_read(tmp_path):
    folder = tmp_path / "benign"
    save(textured(1, 40).convert("L"), folder / "grey.png")
    save(textured(2, 40).convert("RGBA"), folder / "rgba.png")
    save(textured(3, 40).convert("CMYK"), folder / "cmyk.jpg")
    save(textured(4, 2), folder / "tiny.png")
    Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)).save(folder / "sixteen.png")
    folder_dataset(tmp_path, {(None, "malignant"): 1})
    result = layouts.read_dataset(tmp_path)
    assert result.skipped.empty and len(result.table) == 6


# ---------------------------------------------------------------------------
# Layout: HAM10000
# ---------------------------------------------------------------------------

def test_ham10000_layout(tmp_path):
    meta = ham_dataset(tmp_path, ["nv", "mel", "bcc", "akiec", "bkl", "df", "vasc"])
    result = layouts.read_dataset(tmp_path)
    t = result.table.set_index("image_id")
    assert result.layout == "ham10000" and len(t) == 7
    expected = {row.image_id: int(row.dx in labels.MALIGNANT_DX) for row in meta.itertuples()}
    assert t["label"].to_dict() == expected
    assert t.loc["ISIC_0000001", "lesion_id"] == "HAM_0000001"
    assert t.loc["ISIC_0000001", "site"] == "back" and t.loc["ISIC_0000001", "dx_type"] == "histo"
    assert np.isnan(t.loc["ISIC_0000000", "age"]) and t.loc["ISIC_0000001", "age"] == 50.0
    assert set(t["source"]) == {"HAM10000"} and set(t["given_split"]) == {"train"}


def test_ham10000_parts_folders_and_mismatches(tmp_path):
    ham_dataset(tmp_path, ["nv", "mel", "nv"], image_dir="HAM10000_images_part_1")
    (tmp_path / "HAM10000_images_part_2").mkdir()
    (tmp_path / "HAM10000_images_part_1" / "ISIC_0000002.jpg").rename(
        tmp_path / "HAM10000_images_part_2" / "ISIC_0000002.jpg")
    meta = pd.read_csv(tmp_path / "HAM10000_metadata.csv")
    extra = pd.DataFrame([{"lesion_id": "HAM_9", "image_id": "ISIC_0000009", "dx": "nv"},
                          {"lesion_id": "HAM_8", "image_id": "ISIC_0000001", "dx": "mel"},
                          {"lesion_id": "HAM_7", "image_id": "ISIC_0000007", "dx": "xyz"}])
    pd.concat([meta, extra]).to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    save(textured(7, 32), tmp_path / "images" / "ISIC_0000007.jpg")  # row with unknown dx
    save(textured(8, 32), tmp_path / "images" / "ISIC_0000008.jpg")  # image without a row
    result = layouts.read_dataset(tmp_path)
    assert sorted(result.table["image_id"]) == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"]
    skipped = dict(zip(result.skipped["reason"], result.skipped["path"]))
    assert skipped[layouts.NO_IMAGE] == "ISIC_0000009"
    assert skipped[layouts.DUPLICATE_ROW] == "ISIC_0000001"
    assert skipped[layouts.NO_METADATA].endswith("ISIC_0000008.jpg")
    assert skipped[layouts.NO_LABEL].endswith("ISIC_0000007.jpg")


def test_missing_column_names_file_and_column(tmp_path):
    ham_dataset(tmp_path, ["nv", "mel"])
    pd.read_csv(tmp_path / "HAM10000_metadata.csv").drop(columns="dx").to_csv(
        tmp_path / "HAM10000_metadata.csv", index=False)
    with pytest.raises(layouts.DataFormatError, match=r"HAM10000_metadata\.csv.*'dx'"):
        layouts.read_dataset(tmp_path)
    assert issubclass(layouts.DataFormatError, ValueError)


# ---------------------------------------------------------------------------
# Layout: isic-cli export
# ---------------------------------------------------------------------------

def test_isic_cli_layout_new_archive(tmp_path):
    isic_cli_dataset(tmp_path, ["Benign", "Malignant", "Indeterminate", "Benign"])
    result = layouts.read_dataset(tmp_path)
    t = result.table.set_index("image_id")
    assert result.layout == "isic-cli" and len(t) == 3
    assert t["label"].to_dict() == {"ISIC_9000000": 0, "ISIC_9000001": 1, "ISIC_9000003": 0}
    assert t.loc["ISIC_9000001", "dx"] == "mel" and t.loc["ISIC_9000000", "dx"] == "nv"
    assert t.loc["ISIC_9000001", "source"] == "Clinic 1"
    assert t.loc["ISIC_9000001", "site"] == "posterior torso" and t.loc["ISIC_9000001", "age"] == 45.0
    assert result.skipped["reason"].tolist() == [layouts.NO_LABEL]


def test_isic_cli_layout_old_archive(tmp_path):
    isic_cli_dataset(tmp_path, ["benign", "malignant"], column="benign_malignant")
    assert layouts.read_dataset(tmp_path).table["label"].tolist() == [0, 1]


def test_isic_cli_without_label_column(tmp_path):
    isic_cli_dataset(tmp_path, ["benign"], column="something_else")
    with pytest.raises(layouts.DataFormatError, match=r"metadata\.csv.*diagnosis_1.*benign_malignant"):
        layouts.read_dataset(tmp_path)


# ---------------------------------------------------------------------------
# Finding the data
# ---------------------------------------------------------------------------

def test_wrong_path_says_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match="(?s)does not exist.*one folder per class"):
        layouts.read_dataset(tmp_path / "nope")


def test_folder_without_known_layout(tmp_path):
    save(textured(1, 32), tmp_path / "pics" / "a.jpg")
    with pytest.raises(DataNotFoundError, match="(?s)No known data layout.*benign/"):
        layouts.read_dataset(tmp_path)


def test_only_unknown_classes_is_not_usable(tmp_path):
    folder_dataset(tmp_path, {("train", "nevus"): 1, ("train", "melanoma"): 1})
    with pytest.raises(DataNotFoundError, match="No usable images"):
        layouts.read_dataset(tmp_path)


def test_data_sets_one_level_down_are_combined(tmp_path):
    folder_dataset(tmp_path / "kaggle", {(None, "benign"): 1, (None, "malignant"): 1})
    isic_cli_dataset(tmp_path / "isic-archive", ["Benign", "Malignant"])
    result = layouts.read_dataset(tmp_path)
    assert result.layout == "isic-cli+folders"  # sub-folders in name order
    assert result.table.groupby("dataset").size().to_dict() == {"isic-archive": 2, "kaggle": 2}


def test_the_ham10000_folder_and_part_folders_stay_out_of_a_combined_data_set(tmp_path):
    """data/ holds the fetched binary set and data/ham10000 (notebook 1 reads it as its own data
    set); reading data/ as the binary set must not take HAM10000 in twice, nor a half download."""
    isic_cli_dataset(tmp_path / "isic-archive", ["Benign", "Malignant"])
    ham_dataset(tmp_path / "ham10000", ["nv", "mel"])
    isic_cli_dataset(tmp_path / ".ham10000.part", ["Benign"])
    result = layouts.read_dataset(tmp_path)
    assert set(result.table["dataset"]) == {"isic-archive"} and len(result.table) == 2
    assert result.notes["left_out"] == ["ham10000/: the HAM10000 data set of notebooks 1 and 5, read there on its own"]
    assert len(layouts.read_dataset(tmp_path / "ham10000").table) == 2  # named directly, it is read
    only_ham = tmp_path / "only"
    ham_dataset(only_ham / "ham10000", ["nv"])
    with pytest.raises(DataNotFoundError, match="ham10000/ is the seven-class data set"):
        layouts.read_dataset(only_ham)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------

def _halves(top, bottom, size=64) -> Image.Image:
    arr = np.zeros((size, size, 3), dtype=np.uint8)
    arr[: size // 2], arr[size // 2:] = top, bottom
    return Image.fromarray(arr)


def test_load_image_shape_and_colour_conversions(tmp_path):
    grey = images.load_image(save(Image.new("L", (40, 40), 100), tmp_path / "g.png"), 16)
    assert grey.shape == (16, 16, 3) and grey.dtype == np.uint8 and (grey == 100).all()

    rgba = Image.new("RGBA", (40, 40), (200, 100, 50, 255))
    rgba.paste((10, 250, 10, 0), (0, 0, 40, 20))  # top half fully transparent
    arr = images.load_image(save(rgba, tmp_path / "a.png"), 40)
    assert (arr[:18] == 0).all(), "transparent pixels are composited on black"
    assert (arr[22:] == (200, 100, 50)).all()

    cmyk = images.load_image(save(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), tmp_path / "c.jpg"), 8)
    assert cmyk[..., 0].min() > 200 and cmyk[..., 1:].max() < 60, "CMYK red stays red"

    pal = Image.new("RGB", (40, 40), (0, 0, 255)).convert("P")
    assert (np.abs(images.load_image(save(pal, tmp_path / "p.png"), 8).astype(int) - (0, 0, 255)) < 8).all()

    tiny = images.load_image(save(Image.new("RGB", (2, 2), (9, 99, 199)), tmp_path / "t.png"), 32)
    assert tiny.shape == (32, 32, 3) and (tiny == (9, 99, 199)).all()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.zeros((32, 32), dtype=np.uint16)
    arr[:, :16], arr[:, 16:] = 65535, 1000
    Image.fromarray(arr).save(tmp_path / "16.png")
    with Image.open(tmp_path / "16.png") as im:
        assert im.mode.startswith("I")
    out = images.load_image(tmp_path / "16.png", 32)
    assert out[:, :14].min() == 255
    assert out[:, 18:].max() == round(1000 / 257), "1000/65535 of full scale, not clipped to 255"


def test_exif_orientation_is_applied(tmp_path):
    red, blue = (255, 0, 0), (0, 0, 255)
    image = _halves(red, blue)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(image, tmp_path / "rotated.jpg", exif=exif)
    arr = images.load_image(path, 64).astype(int)
    assert (np.abs(arr[32, 56] - red) < 40).all() and (np.abs(arr[32, 8] - blue) < 40).all()
    plain = images.load_image(save(image, tmp_path / "plain.jpg"), 64).astype(int)
    assert (np.abs(plain[8, 32] - red) < 40).all()


def test_non_square_is_centre_cropped(tmp_path):
    arr = np.zeros((30, 90, 3), dtype=np.uint8)
    arr[:, :30], arr[:, 30:60], arr[:, 60:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    out = images.load_image(save(Image.fromarray(arr), tmp_path / "wide.png"), 10)
    assert (out[:, 1:-1] == (0, 255, 0)).all()  # the filter may blend one edge pixel


def test_huge_jpeg_loads(tmp_path):
    path = save(Image.new("RGB", (8000, 8000), (120, 80, 60)), tmp_path / "huge.jpg", quality=50)
    out = images.load_image(path, 64)
    assert out.shape == (64, 64, 3) and abs(int(out[..., 0].mean()) - 120) < 5


def test_decompression_bomb_warning_is_not_an_error(tmp_path, monkeypatch):
    # Over MAX_IMAGE_PIXELS (but under twice that) PIL warns; pytest turns warnings into errors.
    path = save(textured(3, 60), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50 * 50)
    assert images.load_image(path, 16).shape == (16, 16, 3)
    loaded, skipped = images.load_images([path], 16)
    assert loaded.shape == (1, 16, 16, 3) and skipped == []


def test_load_images_keeps_order_and_reports_failures(tmp_path):
    good = [save(Image.new("RGB", (30, 30), (k * 40, 0, 0)), tmp_path / f"{k}.png") for k in range(4)]
    bad = truncated_jpeg(tmp_path / "bad.jpg")
    missing = tmp_path / "missing.jpg"
    loaded, skipped = images.load_images([good[0], bad, good[1], missing, good[2], good[3]], 8)
    assert loaded.shape == (4, 8, 8, 3) and loaded.dtype == np.uint8
    assert loaded[:, 0, 0, 0].tolist() == [0, 40, 80, 120]
    assert [p for p, _ in skipped] == [str(bad), str(missing)]
    assert all(reason for _, reason in skipped)
    empty, none_skipped = images.load_images([], 8)
    assert empty.shape == (0, 8, 8, 3) and none_skipped == []
