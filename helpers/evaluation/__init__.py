"""Evaluation: metrics and their uncertainty. Pure numpy / scikit-learn, no TensorFlow.

==================  ==============================================================
``binary``          threshold chosen on validation, metrics at it, bootstrap AUC
                    intervals, paired differences, calibration (Brier, ECE, temperature)
``multiclass``      balanced accuracy with its interval, per-class metrics, paired difference
``resampling``      the bootstrap every interval shares
``isic_csv``        predictions in the ISIC challenge CSV format
``reader_studies``  published dermatologist operating points (other images: orientation only)
==================  ==============================================================

A new metric goes into ``binary`` or ``multiclass``, with a test against a
plain-loop reference.
"""
from .binary import (apply_temperature, binary_metrics, bootstrap_auc_ci, calibration_metrics, choose_threshold,
                     evaluate_binary, fit_temperature, paired_auc_difference, specificity_at_sensitivity)
from .isic_csv import read_isic_predictions, write_isic_ground_truth, write_isic_predictions
from .multiclass import balanced_accuracy, multiclass_metrics, paired_bootstrap_difference, per_class_recall

__all__ = ["apply_temperature", "balanced_accuracy", "binary_metrics", "bootstrap_auc_ci", "calibration_metrics",
           "choose_threshold", "evaluate_binary", "fit_temperature", "multiclass_metrics",
           "paired_auc_difference", "paired_bootstrap_difference", "per_class_recall", "read_isic_predictions",
           "specificity_at_sensitivity", "write_isic_ground_truth", "write_isic_predictions"]
