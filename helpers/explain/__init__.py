"""Explanations: what a model looks at, and whether it leans on artefacts.

==================  ============================================================
``lime``        LIME on the exact test image whose prediction is reported;
                choosing the images to explain by rule
``gradcam``     Grad-CAM heat maps (plain CNNs and transfer models)
``focus``       how much of an explanation falls on the lesion; every test error
``artefacts``   detectors for hair, rulers, ink, vignettes and letterbox bars, and
                their removal
``shortcuts``   detector agreement, AUC with/without an artefact, what removal does
``counterfactual``  real rulers and ink (and black bars) pasted onto images that
                lack them; the sticker bank the artefact augmentation uses
==================  ============================================================

Figures of these live in ``figures.explain``.
"""
from .focus import lesion_at, lesion_focus, list_errors
from .gradcam import grad_cam, last_conv_layer
from .lime import Explained, choose_images, explain_chosen, explain_lime, same_pixels_as_file

__all__ = ["Explained", "choose_images", "explain_chosen", "explain_lime", "grad_cam", "last_conv_layer",
           "lesion_at", "lesion_focus", "list_errors", "same_pixels_as_file"]
