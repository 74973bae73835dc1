"""Patient metadata (age, sex, body site) as model input, with every missing,
unknown, rare or unseen value mapped to an explicit column.

The encoder is fitted on the training split only, and recorded with the model
that uses it, so the same encoding can be rebuilt for new images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd


UNKNOWN = "unknown"


# Text that means "not recorded" in the metadata (read_dataset stores NaN as "nan").
_MISSING_TEXT = {"", "nan", "none", "null", "na", "n/a", UNKNOWN}


def normalise_category(values: pd.Series) -> pd.Series:
    """Lower-case, stripped text; every spelling of "not recorded" becomes ``UNKNOWN``."""
    text = values.astype("object").where(values.notna(), "").astype("str").str.strip().str.lower()
    return text.where(~text.isin(_MISSING_TEXT), UNKNOWN)


@dataclass
class MetadataEncoder:
    """Age, sex and body site as a fixed-width float32 vector, fitted on train only.

    * age: standardised with the training mean and SD; a missing age is set to
      the mean (0) and flagged in ``age_missing``, so "unknown" is never read as
      "average-aged";
    * sex and site: one-hot over the categories seen at least ``min_count``
      times in training, plus an ``unknown`` column that takes missing values,
      the literal "unknown", rarer categories and categories never seen in
      training (an external site may name a body part differently).
    """

    min_count: int = 5
    age_mean: float = float("nan")
    age_sd: float = float("nan")
    sexes: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)

    def fit(self, table: pd.DataFrame) -> "MetadataEncoder":
        age = pd.to_numeric(table["age"], errors="coerce")
        self.age_mean = float(age.mean()) if age.notna().any() else 0.0
        sd = float(age.std(ddof=0)) if age.notna().sum() > 1 else 0.0
        self.age_sd = sd if sd > 0 else 1.0
        self.sexes = self._frequent(table["sex"])
        self.sites = self._frequent(table["site"])
        return self

    def _frequent(self, values: pd.Series) -> list[str]:
        counts = normalise_category(values).value_counts()
        return sorted(c for c, n in counts.items() if n >= self.min_count and c != UNKNOWN)

    @property
    def feature_names(self) -> list[str]:
        return (["age_z", "age_missing"] + [f"sex={s}" for s in self.sexes] + [f"sex={UNKNOWN}"]
                + [f"site={s}" for s in self.sites] + [f"site={UNKNOWN}"])

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _one_hot(self, values: pd.Series, known: list[str]) -> np.ndarray:
        cat = normalise_category(values)
        cat = cat.where(cat.isin(known), UNKNOWN).to_numpy()
        columns = known + [UNKNOWN]
        return (cat[:, None] == np.array(columns, dtype=object)[None, :]).astype("float32")

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """(n, n_features) float32; every row has exactly one sex and one site column set."""
        if math.isnan(self.age_mean):
            raise RuntimeError("MetadataEncoder.transform before fit")
        age = pd.to_numeric(table["age"], errors="coerce").to_numpy(dtype="float64")
        missing = np.isnan(age)
        age_z = np.where(missing, 0.0, (age - self.age_mean) / self.age_sd)
        return np.column_stack([age_z, missing.astype("float64"),
                                self._one_hot(table["sex"], self.sexes),
                                self._one_hot(table["site"], self.sites)]).astype("float32")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (recorded with the fusion model, so it can be rebuilt)."""
        return {"min_count": self.min_count, "age_mean": self.age_mean, "age_sd": self.age_sd,
                "sexes": list(self.sexes), "sites": list(self.sites), "feature_names": self.feature_names}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MetadataEncoder":
        return cls(min_count=int(d["min_count"]), age_mean=float(d["age_mean"]), age_sd=float(d["age_sd"]),
                   sexes=list(d["sexes"]), sites=list(d["sites"]))


def metadata_summary(table: pd.DataFrame) -> dict[str, int]:
    """How much of the metadata is missing or unknown (for the data record)."""
    age = pd.to_numeric(table["age"], errors="coerce")
    return {"n": int(len(table)), "age_missing": int(age.isna().sum()),
            "sex_unknown": int((normalise_category(table["sex"]) == UNKNOWN).sum()),
            "site_unknown": int((normalise_category(table["site"]) == UNKNOWN).sum())}
