"""Shared helpers of the dermoscopic skin-lesion notebook series.

Every notebook opens with ``nb = helpers.notebook.setup(...)`` and imports the
subpackages it needs; no logic is copied between notebooks. Where things live
(see also helpers/README.md):

==============  ===============================================================
``config``      paths, where the data is, the quick setting, output folders
``notebook``    the one-call notebook setup
``results``     results.json: the one machine-readable record of a run
``atomic``      writing files so an interrupted run never leaves half a file
``seeding``     one seed for Python, NumPy and TensorFlow
``startup``     TensorFlow imported without its C++ start-up lines
``data``        reading data sets, duplicates, splits, images as arrays
``models``      network definitions; saving, finding and loading models
``training``    augmentation, fitting, recipes
``evaluation``  metrics and their confidence intervals (no TensorFlow)
``explain``     LIME, Grad-CAM, artefact detectors and shortcut tests
``figures``     every plot (returned, saved by the notebook)
``report``      model and chapter records; tables, README blocks, the deck
``apps``        the command line: reproduce, predict, evaluate, export, download
==============  ===============================================================
"""
__version__ = "0.2.0"
