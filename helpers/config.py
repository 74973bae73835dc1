"""Paths, data location and run settings shared by every notebook and the CLI.

The data directory is resolved in one place so that a notebook parameter, the
``SKIN_DATA_DIR`` environment variable and the repository's ``data/`` folder
are tried in the same order everywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
IMAGES_DIR = REPO_ROOT / "images"
MODELS_DIR = REPO_ROOT / "saved_models"
RESULTS_PATH = MODELS_DIR / "results.json"
SPLIT_PATH = MODELS_DIR / "split.csv"
DATA_REPORT_PATH = MODELS_DIR / "data_report.json"
DEFAULT_DATA_DIR = REPO_ROOT / "data"

DATA_ENV_VAR = "SKIN_DATA_DIR"
HAM_ENV_VAR = "SKIN_HAM10000_DIR"
# Lets the test suite and `reproduce --out` send every artefact elsewhere
# without touching the committed ones.
OUTPUT_ENV_VAR = "SKIN_OUTPUT_DIR"
# How the notebooks train (``helpers.training.devices``): auto (every GPU when there is
# one, else the CPU as always), cpu, or mirrored (MirroredStrategy even on a CPU).
DEVICES_ENV_VAR = "SKIN_DEVICES"
# The HAM10000 folder's name where ``resolve_ham_dir`` looks (data/, or beside the binary
# data set); a parent folder read as the binary data set leaves it out (``layouts.read_dataset``).
HAM_DIR_NAME = "ham10000"
DEVICE_SETTINGS = ("auto", "cpu", "mirrored")

NOTEBOOKS = [
    "1_Data_Exploration.ipynb",
    "2_Image_Processing_and_Modeling.ipynb",
    "3_Transfer_Learning_Models.ipynb",
    "4_Explaining_Model_Predictions.ipynb",
    "5_Multiclass_and_Metadata.ipynb",
    "6_Seed_Variability.ipynb",
    "7_Results_at_Another_Clinic.ipynb",
    "Project_Main_Notebook.ipynb",  # last: reads what the others wrote, trains nothing
]

# The "quick" setting (class, CI): the same notebooks with smaller settings.
# One place for every notebook: in quick mode each of these parameters of the
# named chapter is capped at the value here (``helpers.notebook.Notebook.shrink``);
# a parameter that is None (meaning "all") becomes the value here.
QUICK: dict[str, dict[str, int]] = {
    "data": {"subset_per_class": 30, "artefact_sample": 40},          # 1: per given split and class (diagnosis)
    "baselines": {"epochs": 3},                                        # 2
    "transfer": {"epochs": 1, "head_epochs": 2, "vgg_head_epochs": 2, "vgg_finetune_epochs": 1,      # 3
                 "lite0_image_size": 64, "artefact_scan": 150, "pool_copies": 2},
    "explain": {"lime_samples": 200, "lime_images": 3, "artefact_sample": 60},                      # 4
    "multiclass": {"image_size": 64, "epochs": 2, "head_epochs": 3, "pool_copies": 2, "n_resamples": 200},  # 5
    "seeds": {"seed_repeats": 2, "multiclass_seed_repeats": 2},        # 6
    "cross": {"n_resamples": 200, "refit_repeats": 50},                # 7
    "summary": {},                                                     # main notebook: trains nothing
}

# The "full" setting (``reproduce --full``), for a machine with a GPU: larger images and
# longer training than the CPU default, per notebook (papermill parameters; a notebook
# gets only those its parameters cell declares). Not run by this project yet: no GPU here.
FULL: dict[str, dict[str, Any]] = {
    "2_Image_Processing_and_Modeling.ipynb": {"image_size": 128},   # the baselines at Lite0's size
    "3_Transfer_Learning_Models.ipynb": {"image_size": 224, "lite0_image_size": 224, "epochs": 60,
                                         "vgg_finetune_epochs": 10},
    "5_Multiclass_and_Metadata.ipynb": {"image_size": 224, "epochs": 40},          # HAM10000 copies are 224 px
    "6_Seed_Variability.ipynb": {"seed_repeats": 5, "models": ["mlp", "small_cnn", "vgg16_random_init", "lite0_imagenet",
                                                                "lite0_both", "lite0_random_init", "lite0_artefact_aug"]},
}

# TFLite export (``python -m helpers export-tflite``): held-out images for the
# agreement check and the benchmark, enough to see decision changes and few
# enough for about a minute on two cores; a float file further than the
# tolerance from Keras is a broken conversion.
TFLITE_HELD_OUT = 200
TFLITE_FLOAT_TOLERANCE = 1e-3

# The web page's load test (``python -m helpers serve --load-test``), run by the
# chain after the TFLite export: concurrent clients and requests, one image each.
PAGE_LOAD_TEST = {"clients": 8, "requests": 200}
PAGE_LOAD_TEST_QUICK = {"clients": 2, "requests": 10}

HOW_TO_GET_DATA = """\
No images were found. Point the project at a data set in one of these ways:
  * notebook parameter   data_dir="/path/to/data"
  * environment variable SKIN_DATA_DIR=/path/to/data
  * put the data in      {default}
Expected layout: one folder per class (benign/, malignant/), optionally under
train/ and test/; or HAM10000 (HAM10000_metadata.csv + images); or an ISIC
Archive export written by isic-cli (metadata.csv + images).
With internet, `python -m helpers reproduce` fetches a balanced benign/malignant
set from the ISIC Archive into data/isic-archive by itself when data/ holds no
data (and no data folder was named); or download it first:
    python -m helpers download --out data/isic-archive --limit 1000
"""


class DataNotFoundError(FileNotFoundError):
    """Raised when no usable data directory can be found."""


@dataclass(frozen=True)
class OutputDirs:
    """Where a run writes its figures, models and results."""

    root: Path
    images: Path
    models: Path

    @property
    def results(self) -> Path:
        return self.models / "results.json"

    @property
    def split(self) -> Path:
        return self.models / "split.csv"

    @property
    def data_report(self) -> Path:
        return self.models / "data_report.json"


def output_dirs(root: str | os.PathLike | None = None) -> OutputDirs:
    """Return (and create) the output folders: the repository by default."""
    root = Path(root or os.environ.get(OUTPUT_ENV_VAR) or REPO_ROOT).resolve()
    dirs = OutputDirs(root=root, images=root / "images", models=root / "saved_models")
    dirs.images.mkdir(parents=True, exist_ok=True)
    dirs.models.mkdir(parents=True, exist_ok=True)
    return dirs


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Pick the data directory: explicit parameter, then $SKIN_DATA_DIR, then data/.

    Raises DataNotFoundError with instructions when the chosen place is missing
    or holds no files, so a user never sees an empty plot instead of an error.
    """
    if data_dir:
        source, path = "parameter data_dir", Path(data_dir)
    elif os.environ.get(DATA_ENV_VAR):
        source, path = f"${DATA_ENV_VAR}", Path(os.environ[DATA_ENV_VAR])
    else:
        source, path = "default", DEFAULT_DATA_DIR
    path = path.expanduser().resolve()  # a relative path means the current folder
    if path.is_file():
        raise DataNotFoundError(
            f"Data directory {path} (from {source}) is a file, not a folder: give the folder that holds "
            "the images (a folder per class, HAM10000 or an isic-cli export).")
    if not path.is_dir():
        raise DataNotFoundError(
            f"Data directory {path} (from {source}) does not exist.\n"
            + HOW_TO_GET_DATA.format(default=DEFAULT_DATA_DIR)
        )
    if not any(p.is_file() for p in path.rglob("*")):
        raise DataNotFoundError(
            f"Data directory {path} (from {source}) contains no files.\n"
            + HOW_TO_GET_DATA.format(default=DEFAULT_DATA_DIR)
        )
    return path


def resolve_ham_dir(ham_dir: str | os.PathLike | None = None,
                    data_dir: str | os.PathLike | None = None) -> Path:
    """The HAM10000 folder (notebook 5): parameter, then $SKIN_HAM10000_DIR, then
    data/ham10000, then a ``ham10000`` folder beside the binary data set
    ($SKIN_DATA_DIR, then the ``data_dir`` parameter the chain passes)."""
    candidates = [("parameter ham_dir", ham_dir), (f"${HAM_ENV_VAR}", os.environ.get(HAM_ENV_VAR)),
                  ("default", DEFAULT_DATA_DIR / HAM_DIR_NAME)]
    if os.environ.get(DATA_ENV_VAR):
        candidates.append((f"beside ${DATA_ENV_VAR}", Path(os.environ[DATA_ENV_VAR]).parent / HAM_DIR_NAME))
    if data_dir and not ham_dir:
        candidates.append(("beside parameter data_dir", Path(data_dir).expanduser().parent / HAM_DIR_NAME))
    for source, path in candidates:
        if path and Path(path).expanduser().is_dir():
            return Path(path).expanduser().resolve()
        if path and source != "default" and not str(source).startswith("beside"):
            raise DataNotFoundError(f"HAM10000 folder {path} (from {source}) does not exist.")
    raise DataNotFoundError(
        "No HAM10000 data found. Set the notebook parameter ham_dir or $SKIN_HAM10000_DIR to a folder "
        "holding HAM10000_metadata.csv and the images (images/ or HAM10000_images_part_1/2), or put it "
        f"in {DEFAULT_DATA_DIR / 'ham10000'}. HAM10000 is available from the ISIC Archive and Harvard "
        "Dataverse (doi:10.7910/DVN/DBW86T).")
