"""How much of an explanation falls on the lesion, and which test images a model gets wrong."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from ..data.images import load_image
from . import artefacts
from .lime import Explained


def lesion_at(path: str, image_size: int) -> np.ndarray:
    """Rough lesion mask of one image at ``image_size`` (every sizeable dark
    region), found at 224 px where the detector settings hold and shrunk with
    nearest-neighbour sampling."""
    mask = artefacts.lesion_mask(load_image(path, artefacts.REFERENCE_SIZE), all_parts=True)
    small = Image.fromarray(mask.astype(np.uint8) * 255).resize((image_size, image_size), Image.Resampling.NEAREST)
    return np.asarray(small) > 127


def lesion_focus(e: Explained, cam: np.ndarray, lesion: np.ndarray, threshold: float,
                 num_features: int = 5) -> dict[str, float]:
    """How much of an explanation falls on the lesion, against the lesion's area.

    ``cam``: Grad-CAM of the predicted class (at ``threshold``).
    ``gradcam_on_lesion``: share of the Grad-CAM mass on the lesion;
    ``gradcam_peak_on_lesion``: whether the map's hottest pixel is on the lesion;
    ``lime_on_lesion``: share of the area of LIME's ``num_features`` strongest
    superpixels (predicted class) on the lesion. A map that ignored the lesion
    would score about ``lesion_area``.
    """
    top = e.mask(int(e.p_malignant >= threshold), num_features)
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    return {"lesion_area": float(lesion.mean()),
            "gradcam_on_lesion": float((cam * lesion).sum() / max(cam.sum(), 1e-8)),
            "gradcam_peak_on_lesion": bool(lesion[peak]) if cam.max() > 0 else False,
            "lime_on_lesion": float((top & lesion).sum() / max(top.sum(), 1))}


def list_errors(table: pd.DataFrame, p: np.ndarray, threshold: float) -> pd.DataFrame:
    """Every wrong test prediction at ``threshold``: missed malignant (most
    confident first), then benign called malignant. ``row`` indexes the images."""
    df = table.reset_index(drop=True).assign(p=p, pred=(np.asarray(p) >= threshold).astype(int))
    wrong = df[df["pred"] != df["label"]].rename_axis("row").reset_index()
    wrong["kind"] = np.where(wrong["label"] == 1, "missed malignant", "false alarm")
    wrong["margin"] = (wrong["p"] - threshold).abs()
    return wrong.sort_values(["label", "margin"], ascending=[False, False], ignore_index=True)
