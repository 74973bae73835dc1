"""Models: network definitions, and the one home for saved models.

================  ===============================================================
``baselines``     the MLP and the small CNN of notebook 2
``heads``         the classification head every transfer model shares
``transfer``      VGG16 and EfficientNet-Lite0 under a head (binary or 7 classes); the split
                  of Lite0 into a frozen bottom and a top, to fine-tune on cached maps
``fusion``        image + metadata fusion, and the seven-class models on cached maps
``layers``        custom layers that live inside saved models (preprocessing)
``losses``        the focal loss, which the seven-class heads' saved files name
``ensemble``      several binary models (e.g. seeds of one recipe) as one: their mean logit
``efficientnet_lite``, ``torch_legacy``   Lite0 in Keras with offline ImageNet weights
``saved``         save, find (best on validation), load, and ``Predictor``
================  ===============================================================

Every model takes raw RGB pixels 0-255 and carries its own preprocessing, so
a saved file needs nothing re-typed. A new architecture goes into
``baselines`` (from scratch) or ``transfer`` (on a pretrained base).
"""
from .baselines import build_mlp, build_small_cnn
from .heads import build_head
from .saved import best_on_validation, load_best, load_model, load_predictor, save_model
from .transfer import (TransferModel, build_lite0_transfer, build_vgg16_transfer, calibrate_batch_norm,
                       count_trainable, lite0_unfreezer, unfreeze_vgg16_last_block)

__all__ = ["TransferModel", "best_on_validation", "build_head", "build_lite0_transfer", "build_mlp",
           "build_small_cnn", "build_vgg16_transfer", "calibrate_batch_norm", "count_trainable", "lite0_unfreezer",
           "load_best", "load_model", "load_predictor", "save_model", "unfreeze_vgg16_last_block"]
