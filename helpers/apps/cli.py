"""The command line, ``python -m helpers <command>``: every command's arguments,
help and exit codes in one place. The work is done in the command's module,
imported only when that command runs."""
from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from ..config import DEVICE_SETTINGS, NOTEBOOKS, REPO_ROOT, TFLITE_FLOAT_TOLERANCE, TFLITE_HELD_OUT
from ..data.collection import DEFAULT_HAM_OUT
from ..data.download import DEFAULT_LIMIT, DEFAULT_OUT
from ..startup import import_tensorflow_quietly

PREDICT_DESCRIPTION = """\
Print, for each image, the model's labels with probabilities (most probable
first) and its decision. Binary models: P(malignant) and P(benign), decision at
the threshold chosen on validation (0.5 for a file without a record, and said
so). 7-class HAM10000 models: the seven diagnoses, decision = most probable.
The model's own preprocessing is inside the saved model; images are decoded,
made RGB (greyscale, RGBA, CMYK, 16-bit, EXIF rotation) and resized as in
training. Folders are walked recursively.

A research model, not a diagnosis."""

PREDICT_EPILOG = """\
exit status:
  0  every file was predicted
  1  some files were skipped (not images, unreadable, missing): listed on stderr
  2  no usable model, or a usage error"""

EVALUATE_DESCRIPTION = """\
Score a saved model on a folder of labelled images, at the threshold chosen on
the chain's validation split (nothing is tuned on the folder). A binary model:
AUC with a 95% bootstrap interval, sensitivity, specificity, PPV, NPV, balanced
accuracy, F1. A seven-class model on a folder per diagnosis (or HAM10000):
balanced accuracy with its interval, per-class recall and the malignant AUC of
P(mel) + P(bcc) + P(akiec). Images identical to the model's own training or
validation images, near-copies of them and likely second photos of their
lesions are reported (and left out with --exclude-training)."""

EVALUATE_EPILOG = """\
exit status:
  0  scored
  1  scored, but read the warnings (overlap with training images, a missing class, skipped files)
  2  nothing could be scored: no usable model or no readable images, or a usage error"""

CALIBRATE_DESCRIPTION = """\
Refit a binary model's decision threshold (for a target sensitivity) and its
temperature on a small labelled sample from your own clinic, and save them
beside the model (<model>.clinic.json). predict and evaluate then decide with
the refitted threshold (--threshold validation: the original one). By default
the threshold keeps a margin: new images of the clinic reach the target
sensitivity with 80% probability (--confidence); that needs at least 16
malignant images for a target of 0.90. Notebook 7 measures how well 50 or 100
images put a threshold back on another archive, with and without the margin."""

CALIBRATE_EPILOG = """\
exit status:
  0  refitted and saved
  1  refitted and saved, but some files were skipped (listed on stderr), or too
     few malignant images for the margin asked for (the lowest malignant score is used)
  2  nothing saved: no usable binary model, too few labelled images, or a target
     or confidence outside (0, 1)"""

EXPORT_DESCRIPTION = f"""\
Write <model>.tflite (float32) and <model>.dynamic.tflite (dynamic-range
quantised) next to the .keras model, plus <model>.tflite.json (input, labels,
threshold), then compare both with the Keras model on held-out images (the
chain's test split by default, at most {TFLITE_HELD_OUT}): the largest absolute
difference of the probabilities, and the decisions that change at the model's
threshold."""

SERVE_DESCRIPTION = """\
Start a local web page (Gradio) where you upload dermoscopic photos, or pick
an example of the chain's test split, and see for each the binary model's
labels ranked with its decision, the seven HAM10000 diagnoses ranked, and a
Grad-CAM overlay; with a model card from results.json. A research model, not
a diagnosis. The page listens on 127.0.0.1 only, unless --host says otherwise;
uploads are deleted once answered and nothing is sent anywhere."""

SERVE_EPILOG = """\
exit status:
  0  served until stopped; with --load-test, every request was answered
  1  --load-test: some requests failed (counted, examples printed)
  2  no usable binary model, or no image for the load test"""

EXPORT_EPILOG = f"""\
exit status:
  0  exported; the float file agrees with Keras (max |dp| <= {TFLITE_FLOAT_TOLERANCE:g}, no decision change)
  1  exported, but the float file disagrees with Keras (a conversion problem)
  2  no usable model or held-out images, or a usage error"""

REPRODUCE_DESCRIPTION = f"""\
Run the notebook chain with papermill, in order, as one job, and promote the
run only when every notebook has run. Data: --data-dir, else $SKIN_DATA_DIR,
else data/. On a fresh machine (data/ empty or missing, and neither --data-dir
nor $SKIN_DATA_DIR given) it first fetches the default data set itself:
{DEFAULT_LIMIT} dermoscopic images from the ISIC Archive, half benign and half
malignant, with isic-cli into {DEFAULT_OUT.relative_to(REPO_ROOT)}, after printing
what it fetches and how much. An interrupted fetch resumes on the next run.
Offline, or with --no-download, it stops and says how to get data. A folder you
named that is wrong is an error, never filled."""

REPRODUCE_EPILOG = """\
exit status:
  0  the chain ran and was promoted
  1  a notebook failed (named; the last complete run is untouched)
  2  it could not start: no data (and none could be fetched), no such notebook,
     an unusable output folder, another run writing there"""

DOWNLOAD_DESCRIPTION = """\
Fetch a balanced benign/malignant set of dermoscopic images from the ISIC
Archive with isic-cli (images, metadata.csv, licences, attribution.txt),
after printing the plan: the two searches, how many images, where to and how
much. Resumes an interrupted download (a class isic-cli finished is not
fetched again) and reuses a finished one. Writes checksums.sha256 (SHA-256 of
every image) and download.json (images per class, images per licence).
With --collection HAM10000: every image of that collection instead, fetched
into a hidden part folder that is renamed to --out only when complete."""

DOWNLOAD_EPILOG = """\
exit status:
  0  downloaded (or already there); --verify: every file matches checksums.sha256
  1  the download failed (the message says why and what to do); --verify: files
     missing or changed (listed)
  2  a usage error; --verify: no checksums.sha256 in the folder"""

# command -> (module under helpers.apps that does the work, its entry function)
COMMANDS = {
    "reproduce": ("reproduce", "run_reproduce"),
    "download": ("download", "run_download"),
    "evaluate": ("evaluate", "run_evaluate"),
    "predict": ("predict", "run_predict"),
    "export-tflite": ("tflite", "run_export"),
    "calibrate": ("calibrate", "run_calibrate"),
    "serve": ("serve", "run_serve"),
}
LIGHT_COMMANDS = ("reproduce", "download")  # they never import TensorFlow in this process
THRESHOLD_HELP = ("which threshold decides: 'clinic' (refitted on your clinic's images by `calibrate`, when "
                  "there is one; the default) or 'validation' (chosen on the chain's validation split)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="run the notebook chain with papermill",
                         description=REPRODUCE_DESCRIPTION, epilog=REPRODUCE_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    rep.add_argument("--quick", action="store_true", help="small subset and few epochs (class, CI)")
    rep.add_argument("--full", action="store_true",
                     help="larger images and longer training for a machine with a GPU (config.FULL)")
    rep.add_argument("--devices", choices=DEVICE_SETTINGS, default=None,
                     help="auto (default, or $SKIN_DEVICES): every GPU through MirroredStrategy with mixed "
                          "precision when there is one, else the CPU; cpu; mirrored: MirroredStrategy even on a CPU")
    rep.add_argument("--data-dir", help="data folder (default: $SKIN_DATA_DIR, else data/)")
    rep.add_argument("--no-download", action="store_true",
                     help="when data/ holds no data, stop with instructions instead of fetching the default "
                          "data set from the ISIC Archive")
    rep.add_argument("--output-dir", help="write everything here instead of into the repository")
    rep.add_argument("--notebooks", nargs="*", metavar="N",
                     help="only the notebooks whose names start with these (e.g. 3 4), on the last run's "
                          "saved models; recorded in results.json under run.partial_reruns, beside the whole "
                          "run's commit and time; one of: " + ", ".join(NOTEBOOKS))

    dl = sub.add_parser("download", help="fetch a balanced benign/malignant set from the ISIC Archive",
                        description=DOWNLOAD_DESCRIPTION, epilog=DOWNLOAD_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    dl.add_argument("--out", type=Path, default=None,
                    help=f"folder for images and metadata.csv (default: {DEFAULT_OUT}; with --collection "
                         f"HAM10000: {DEFAULT_HAM_OUT}, where notebook 5 looks)")
    dl.add_argument("--collection", metavar="NAME",
                    help="instead of the balanced set: every image of this ISIC Archive collection, e.g. "
                         "HAM10000 (the seven diagnoses of notebook 5, with lesion ids)")
    dl.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                    help=f"number of images, half benign and half malignant (default: {DEFAULT_LIMIT})")
    dl.add_argument("--seed", type=int, default=None, help="recorded in download.json")
    dl.add_argument("--verify", action="store_true",
                    help="instead of downloading: hash the images in --out again and list those missing or "
                         "changed since checksums.sha256 was written")

    ev = sub.add_parser("evaluate", help="score a saved model on a labelled image folder",
                        description=EVALUATE_DESCRIPTION, epilog=EVALUATE_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--model", help="model name in results.json (binary or seven-class), a .keras or .tflite "
                                    "file (default: the binary model best on validation)")
    ev.add_argument("--data", required=True,
                    help="labelled images: a folder per class (benign/malignant, or the HAM10000 diagnoses "
                         "akiec, bcc, bkl, df, mel, nv, vasc), HAM10000 or an isic-cli export")
    ev.add_argument("--exclude-training", action="store_true",
                    help="leave out images identical to the model's own training or validation images, "
                         "near-copies of them and likely second photos of their lesions")
    ev.add_argument("--no-feature-check", action="store_true",
                    help="skip the learned-feature check for second photos of training lesions (it computes "
                         "features of every training image: minutes on 2 CPU cores)")
    ev.add_argument("--threshold", choices=("clinic", "validation"), default="clinic", help=THRESHOLD_HELP)
    ev.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the intervals")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    pr = sub.add_parser("predict", help="ranked labels of a saved model for your own images",
                        description=PREDICT_DESCRIPTION, epilog=PREDICT_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("paths", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and/or folders")
    pr.add_argument("--model", help="model name in results.json (binary or multiclass), a .keras or "
                                    ".tflite file (default: the binary model best on validation)")
    pr.add_argument("--threshold", choices=("clinic", "validation"), default="clinic", help=THRESHOLD_HELP)
    pr.add_argument("--json", action="store_true", help="print one JSON object per image, one per line")

    ex = sub.add_parser("export-tflite", help="write TFLite files of a saved model, checked against Keras",
                        description=EXPORT_DESCRIPTION, epilog=EXPORT_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("--model", help="model name in results.json or a .keras file "
                                    "(default: the binary model best on validation)")
    ex.add_argument("--images", nargs="+", metavar="IMAGE_OR_FOLDER",
                    help="held-out images for the agreement check (default: the chain's test split)")
    ex.add_argument("--data-dir", help="data folder of the chain's split (default: $SKIN_DATA_DIR, else data/)")
    ex.add_argument("--max-images", type=int, default=TFLITE_HELD_OUT,
                    help=f"at most this many held-out images (default: {TFLITE_HELD_OUT})")
    ex.add_argument("--benchmark", action="store_true",
                    help="also time Keras and TFLite: 1-image latency and batch throughput")
    ex.add_argument("--record", action="store_true",
                    help='store the result in results.json under "deployment" (the chain does this)')
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ca = sub.add_parser("calibrate", help="refit a model's threshold on labelled images of your own clinic",
                        description=CALIBRATE_DESCRIPTION, epilog=CALIBRATE_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ca.add_argument("--data", required=True, help="labelled images of your clinic (a folder per class, ...): "
                                                   "50-100 images, with some malignant ones")
    ca.add_argument("--model", help="model name in results.json or a .keras/.tflite file "
                                    "(default: the binary model best on validation)")
    ca.add_argument("--target-sensitivity", type=float, default=0.90,
                    help="the sensitivity the threshold is chosen for (default: 0.90)")
    ca.add_argument("--confidence", type=float, default=0.80,
                    help="probability that new images of the clinic reach the target sensitivity: the margin "
                         "(default: 0.80; 0: no margin, the target met on these images only)")

    se = sub.add_parser("serve", help="a local web page to try the models (upload photos, see ranked labels)",
                        description=SERVE_DESCRIPTION, epilog=SERVE_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    se.add_argument("--model", help="binary model name in results.json or a .keras file "
                                    "(default: the binary model best on validation)")
    se.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this computer only)")
    se.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    se.add_argument("--data-dir", help="data folder of the chain's split, for the examples "
                                       "(default: $SKIN_DATA_DIR, else data/)")
    se.add_argument("--load-test", action="store_true",
                    help="instead of serving: start the page, send --requests uploads from --clients at once, "
                         "print p50/p95 latency and errors, and stop")
    se.add_argument("--clients", type=int, default=8, help="concurrent clients of the load test (default: 8)")
    se.add_argument("--requests", type=int, default=200, help="requests of the load test (default: 200)")
    se.add_argument("--load-test-image", help="the image the load test uploads (default: the first example)")
    se.add_argument("--record", action="store_true",
                    help='store the load test in results.json under "web_page" (the chain does this)')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, entry = COMMANDS[args.command]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: its C++ start-up chatter
    if args.command not in LIGHT_COMMANDS:
        import_tensorflow_quietly()  # the lines that setting does not reach
    # Imported here, not at the top: most commands import TensorFlow (about 4 s),
    # which `--help` and the chain runner itself do not need.
    run = getattr(importlib.import_module(f"helpers.apps.{module}"), entry)
    return int(run(args) or 0)
