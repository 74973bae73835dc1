"""Published dermatologist operating points, shown on ROC plots for orientation only."""
from __future__ import annotations

from typing import Any


# Published reader-study operating points (dermoscopy, melanoma vs benign lesions).
DERMATOLOGIST_NOTE = (
    "Published dermatologist operating points from reader studies on their own image sets "
    "(melanoma vs. benign lesions). They are shown for orientation only: different images, "
    "different task definition and case mix, so they are not a head-to-head comparison."
)


DERMATOLOGIST_POINTS: list[dict[str, Any]] = [
    {
        "label": "Haenssle et al. 2018 (58 dermatologists)",
        "sensitivity": 0.866,
        "specificity": 0.713,
        "source": "Haenssle HA et al. Man against machine: diagnostic performance of a deep "
                  "learning convolutional neural network for dermoscopic melanoma recognition in "
                  "comparison to 58 dermatologists. Ann Oncol 2018;29(8):1836-1842 (level I).",
    },
    {
        "label": "Brinker et al. 2019 (157 dermatologists)",
        "sensitivity": 0.741,
        "specificity": 0.600,
        "source": "Brinker TJ et al. Deep learning outperformed 136 of 157 dermatologists in a "
                  "head-to-head dermoscopic melanoma image classification task. "
                  "Eur J Cancer 2019;113:47-54.",
    },
    {
        "label": "Marchetti et al. 2018 (8 dermatologists)",
        "sensitivity": 0.82,
        "specificity": 0.59,
        "source": "Marchetti MA et al. Results of the 2016 ISIC ISBI challenge: comparison of the "
                  "accuracy of computer algorithms to dermatologists for the diagnosis of melanoma "
                  "from dermoscopic images. J Am Acad Dermatol 2018;78(2):270-277.",
    },
]
