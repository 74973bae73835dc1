import numpy as np
import pandas as pd
from PIL import Image

from helpers.data import arrays


def test_arrays_from_split_lists_every_unloadable_image(tmp_path, capsys):
    rows = []
    for i, split in enumerate(["train"] * 3 + ["val"] * 2 + ["test"] * 2):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((20, 20, 3), i * 30, dtype=np.uint8)).save(path)
        rows.append({"path": str(path), "split": split, "label": i % 2, "dx": "nv"})
    for name, split in (("bad1.jpg", "train"), ("bad2.jpg", "test")):
        (tmp_path / name).write_bytes(b"not an image")
        rows.append({"path": str(tmp_path / name), "split": split, "label": 1, "dx": "mel"})
    split = arrays.arrays_from_split(pd.DataFrame(rows), 16,
                                     labels=lambda part: (part["dx"] == "mel").to_numpy(dtype=int))
    assert {k: len(v) for k, v in split.x.items()} == {"train": 3, "val": 2, "test": 2}
    assert split.x["train"].shape[1:] == (16, 16, 3) and split.y["test"].tolist() == [0, 0]
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in split.skipped) == ["bad1.jpg", "bad2.jpg"]
    printed = capsys.readouterr().out
    assert "2 image(s) could not be loaded" in printed and "bad1.jpg" in printed and "bad2.jpg" in printed


