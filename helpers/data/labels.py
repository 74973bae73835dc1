"""The labels of this project, in one place: the two binary classes and the
seven HAM10000 diagnoses, with which diagnoses count as malignant.

Binary labels are integers: 0 = benign, 1 = malignant. Seven-class labels
are integers in the (alphabetical) order of ``DX_CLASSES``, recorded with
every model.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CLASS_NAMES = ("benign", "malignant")


DX_NAMES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}


#: HAM10000 diagnoses counted as malignant in the literature (akiec: actinic
#: keratosis / intraepithelial carcinoma, counted as (pre)malignant).
MALIGNANT_DX = ("mel", "bcc", "akiec")
#: The seven diagnoses, in the fixed (alphabetical) column order of every model.
DX_CLASSES: tuple[str, ...] = tuple(sorted(DX_NAMES))


def full_name(label: str) -> str:
    """``"mel"`` -> ``"melanoma"``; any other label is returned unchanged."""
    return DX_NAMES.get(label, label)


def dx_labels(table: pd.DataFrame) -> np.ndarray:
    """Integer class of every row's ``dx``, in ``DX_CLASSES`` order; raises on an unknown dx."""
    dx = table["dx"].astype("str").str.strip().str.lower()
    unknown = sorted(set(dx) - set(DX_CLASSES))
    if unknown:
        raise ValueError(f"diagnoses outside {DX_CLASSES}: {unknown}")
    return dx.map({c: i for i, c in enumerate(DX_CLASSES)}).to_numpy(dtype="int64")
