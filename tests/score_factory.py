"""Synthetic labels and scores for the evaluation tests."""
from __future__ import annotations

import numpy as np


def synthetic_scores(n, seed, separation=1.5, prevalence=0.3):
    """0/1 labels and probabilities whose logit is shifted by ``separation`` for positives."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + separation * (y - 0.5))))
    return y, p
