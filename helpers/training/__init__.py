"""Training: how the models learn, and how they are run on images.

================  ================================================================
``devices``       where training runs: the CPU, or every GPU (MirroredStrategy, mixed
                  precision), set once by each notebook's setup
``augment``       random flips, rotations, crops and colour changes, fresh each epoch;
                  artefacts (rulers, ink, black bars) pasted onto both classes
``fitting``       ``fit`` and ``fit_transfer`` (early stopping on validation AUC),
                  ``FitResult``, prediction (``predict_proba``, ``predict_array``)
``imbalance``     class weights and the focal loss
``multiclass``    the seven-class fit (early stopping on validation balanced accuracy)
                  and the metadata-only scikit-learn baselines
``recipes``       the recorded recipes (baselines of notebook 2, Lite0 of notebook 3)
                  and notebook 6's seed study
================  ================================================================

A new way to train goes into ``fitting`` (or a recipe into ``recipes``, recorded
with its model so it can be repeated exactly).
"""
from .augment import ArtefactAugmentation, Augmentation, augmented_examples
from .fitting import FitResult, augmented_pool, fit, fit_transfer, predict_array, predict_proba, stopping_reading
from .imbalance import LOSS_CANDIDATES, LossChoice, class_weights
from .recipes import BaselineRecipe, Lite0Recipe, recorded_recipe, seed_study, train_baseline, train_lite0

__all__ = ["ArtefactAugmentation", "Augmentation", "BaselineRecipe", "FitResult", "LOSS_CANDIDATES", "Lite0Recipe", "LossChoice",
           "augmented_examples", "augmented_pool", "class_weights", "fit", "fit_transfer", "predict_array",
           "predict_proba", "recorded_recipe", "seed_study", "stopping_reading", "train_baseline", "train_lite0"]
