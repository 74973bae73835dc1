"""Data: everything between a folder of images and the arrays a model trains on.

==================  ==============================================================
``labels``          class names, the seven HAM10000 diagnoses, which are malignant
``images``          decoding any image file to uint8 RGB at a square size
``layouts``         reading a data set folder (folder per class, HAM10000, isic-cli)
``duplicates``      exact and near-duplicate photos, grouped so a split never leaks
``splits``          grouped, stratified train/validation/test splits; the data report
``arrays``          the saved split read back with its images as arrays
``stream``          the same images as a ``tf.data`` stream from their files, for
                    more images than memory holds (not imported here: TensorFlow)
``metadata``        patient age, sex and body site encoded for a model
``download``        fetching a data set from the ISIC Archive with ``isic-cli``
``collection``      fetching a whole archive collection (HAM10000) the same way
``checksums``       SHA-256 of a data folder's images (``sha256sum`` format) and their check
==================  ==============================================================

A new data layout goes into ``layouts`` (a reader plus a line in ``_detect``).
"""
from .arrays import SplitArrays, arrays_from_split, load_split_arrays, load_split_table, save_split
from .images import IMAGE_SUFFIXES, image_statistics, load_image, load_images
from .labels import CLASS_NAMES, DX_CLASSES, DX_NAMES, MALIGNANT_DX, dx_labels, full_name
from .layouts import DataFormatError, ReadResult, read_dataset

__all__ = ["CLASS_NAMES", "DX_CLASSES", "DX_NAMES", "DataFormatError", "IMAGE_SUFFIXES", "MALIGNANT_DX",
           "ReadResult", "SplitArrays", "arrays_from_split", "dx_labels", "full_name", "image_statistics",
           "load_image", "load_images", "load_split_arrays", "load_split_table", "read_dataset", "save_split"]
