"""`python -m helpers calibrate`: refit a binary model's threshold (and temperature) on a
small labelled sample from your own clinic.

A threshold chosen on one archive's validation images rarely keeps its
sensitivity at another clinic (other cameras, other patients): notebook 7
measures how far it drifts, and how well 50 or 100 labelled images of the new
clinic put it back. This command does that refit on your images and saves it
beside the model (``<model>.clinic.json``); ``predict`` and ``evaluate`` then
decide with it (``--threshold validation`` to use the original one).

By default the threshold carries a margin: it is chosen so that the
sensitivity on *new* images of the clinic reaches the target with 80%
probability (``--confidence``; order statistics of the malignant scores, see
``evaluation.binary.threshold_with_confidence``). Fitted for exactly the target on
50-100 images, a threshold falls short on new images about half the time.
With too few malignant images the margin cannot be reached: the lowest
malignant score is used and the command says how many malignant images would
be needed. Score the
refitted model on *other* images of the clinic: ``evaluate`` warns when the
images it scores are the ones the threshold was refitted on.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..config import OutputDirs, output_dirs
from ..data.checksums import file_sha256
from ..data.layouts import read_dataset
from ..evaluation.binary import (binary_metrics, both_classes, choose_threshold, fit_temperature,
                                 malignant_images_needed, threshold_with_confidence)
from ..models.saved import clinic_file, load_predictor

EXIT_OK, EXIT_ATTENTION, EXIT_ERROR = 0, 1, 2
# Fewer labelled images than this cannot place a threshold with any confidence.
MIN_IMAGES, MIN_MALIGNANT = 30, 5


def calibrate(ref: str | None, data_dir: str, *, target_sensitivity: float = 0.90, confidence: float | None = 0.80,
              out: OutputDirs | None = None) -> dict[str, Any]:
    """Refit the threshold for ``target_sensitivity`` (reached on new images of the clinic
    with probability ``confidence``; None: met on these images only) and a temperature on
    the labelled images in ``data_dir``, save them beside the model, and return what was saved."""
    if not 0 < target_sensitivity < 1 or (confidence is not None and not 0 < confidence < 1):
        raise ValueError(f"the target sensitivity ({target_sensitivity}) and the confidence ({confidence}) must lie "
                         "between 0 and 1 (--confidence 0: no margin)")
    out = out or output_dirs()
    predictor = load_predictor(ref, out, use_clinic=False)
    if not predictor.binary:
        raise ValueError(f"Model '{predictor.name}' is a seven-class model; calibrate refits the threshold of a "
                         "benign/malignant model. Choose one with --model.")
    read = read_dataset(data_dir)
    P, bad = predictor.probabilities_of_files(read.table["path"].tolist())
    table = read.table[~read.table["path"].isin({p for p, _ in bad})]
    y = table["label"].to_numpy(dtype=int)
    if len(y) < MIN_IMAGES or int(y.sum()) < MIN_MALIGNANT or not both_classes(y):
        raise ValueError(f"{data_dir} holds {len(y)} readable labelled images, {int(y.sum())} malignant: a threshold "
                         f"needs at least {MIN_IMAGES} images with {MIN_MALIGNANT} malignant ones and some benign.")
    p = P[:, 1]
    original, how = predictor.threshold
    if confidence is None:
        threshold, reached = choose_threshold(y, p, target_sensitivity), None
    else:
        threshold, reached = threshold_with_confidence(y, p, target_sensitivity, confidence)
    record = {
        "model": predictor.name, "model_file": predictor.path.name, "threshold": float(threshold),
        "temperature": fit_temperature(y, p), "target_sensitivity": float(target_sensitivity),
        "confidence": confidence, "confidence_reached": reached,
        "malignant_images_needed": None if confidence is None else malignant_images_needed(target_sensitivity,
                                                                                           confidence),
        "n": int(len(y)), "n_malignant": int(y.sum()), "data_name": Path(data_dir).resolve().name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "previous_threshold": float(original), "previous_threshold_source": how,
        "on_these_images": {"at_previous_threshold": _rates(y, p, original),
                            "at_refitted_threshold": _rates(y, p, threshold)},
        "sha256": sorted(file_sha256(path) for path in table["path"]),
        "skipped": [{"path": str(path), "reason": reason} for path, reason in bad],
    }
    write_json(clinic_file(predictor.path), record)
    return record


def _rates(y, p, threshold: float) -> dict[str, float | None]:
    m = binary_metrics(y, p, threshold)
    return {"sensitivity": m["sensitivity"], "specificity": m["specificity"]}


def run_calibrate(args: argparse.Namespace) -> int:
    """Refit and save; print what changed. Exit code 0: saved; 1: saved, but some files were
    skipped or the margin asked for could not be reached; 2: nothing saved (no usable model,
    too few labelled images, a confidence or target outside (0, 1))."""
    confidence = args.confidence or None  # 0: no margin, the target met on these images only
    try:
        record = calibrate(args.model, args.data, target_sensitivity=args.target_sensitivity, confidence=confidence)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"calibrate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    before, after = record["on_these_images"]["at_previous_threshold"], record["on_these_images"]["at_refitted_threshold"]
    aim = (f"for sensitivity >= {record['target_sensitivity']:.2f} on these images" if record["confidence"] is None else
           f"for sensitivity >= {record['target_sensitivity']:.2f} on new images of the clinic with probability "
           f"{record['confidence_reached']:.0%}")
    print(f"model {record['model']}: threshold {record['previous_threshold']:.3f} ({record['previous_threshold_source']}) "
          f"-> {record['threshold']:.3f}, refitted on {record['n']} images ({record['n_malignant']} malignant) of "
          f"{record['data_name']} {aim}; temperature {record['temperature']:.2f}.\n"
          f"On these images: sensitivity {before['sensitivity']:.3f} -> {after['sensitivity']:.3f}, specificity "
          f"{before['specificity']:.3f} -> {after['specificity']:.3f} (optimistic: the threshold was fitted on them; "
          f"score other images of the clinic with evaluate).\n"
          f"Saved beside the model; predict and evaluate now decide with it (--threshold validation: the original).")
    for item in record["skipped"]:
        print(f"calibrate: skipped {item['path']}: {item['reason']}", file=sys.stderr)
    short = record["confidence"] is not None and record["confidence_reached"] < record["confidence"]
    if short:
        print(f"calibrate: with {record['n_malignant']} malignant images no threshold reaches sensitivity "
              f"{record['target_sensitivity']:.2f} with probability {record['confidence']:.0%}; the lowest malignant "
              f"score is used ({record['confidence_reached']:.0%}). Label at least "
              f"{record['malignant_images_needed']} malignant images for that margin.", file=sys.stderr)
    return EXIT_ATTENTION if record["skipped"] or short else EXIT_OK
