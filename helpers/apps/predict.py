"""`python -m helpers predict`: ranked predictions of a saved model on your own images.

A model is found the way ``evaluate`` finds one (``models.saved``): a name in
``saved_models/results.json``, a ``.keras`` or ``.tflite`` file, or by default
the binary model with the best validation ROC AUC.

Nothing about preprocessing is re-typed here: every model of this project
takes raw RGB pixels 0-255 and carries its scaling as layers (the TFLite files
keep those layers), so an image only has to be decoded, made RGB and resized
exactly as for training -- ``data.load_images`` does that for every caller.

Two kinds of model are understood:

* binary (``results["models"]``): one sigmoid output, P(malignant); both
  labels are printed, and the decision uses the threshold chosen on
  validation (0.5 for a bare file, and said so);
* 7-class HAM10000 (``results["multiclass"]``): a softmax over the
  diagnoses in the record's ``class_names``, printed with their full names;
  the decision is the most probable diagnosis. Models that also need patient
  metadata as input are refused: this command only has the image.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from ..config import OutputDirs
from ..data.images import IMAGE_SUFFIXES, load_images
from ..data.labels import MALIGNANT_DX, full_name
from ..data.layouts import BROKEN_LINK, NOT_IMAGE, UNREADABLE
from ..models.saved import DISCLAIMER, MULTICLASS_DECISION, Predictor, load_predictor

EXIT_OK, EXIT_SKIPPED, EXIT_ERROR = 0, 1, 2


# Images are decoded and scored this many at a time: a large folder never has to
# fit in memory, and results are printed as each batch is done (Ctrl-C loses little).
CHUNK = 16


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def collect_images(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files and folders (walked recursively) into candidate image files.

    Returns ``(candidates, skipped)``. In folders, files with an image suffix
    are candidates and the others are skipped as "not an image file"; hidden
    files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are passed over
    silently. A file named explicitly is always tried, whatever its suffix.
    Each file is listed once even when named twice.
    """
    candidates: list[Path] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            candidates.append(path)

    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if (f.is_file() or f.is_symlink())
                           and not _hidden(f.relative_to(path)))
            if not files:
                skipped.append((str(path), "folder holds no files"))
            for f in files:
                if not f.exists():
                    skipped.append((str(f), f"{BROKEN_LINK}: points to {os.readlink(f)}, which does not exist"))
                elif f.suffix.lower() in IMAGE_SUFFIXES:
                    add(f)
                else:
                    skipped.append((str(f), f"{NOT_IMAGE} (suffix {f.suffix!r})"))
        elif path.is_file():
            add(path)
        elif path.is_symlink():
            skipped.append((str(path), f"{BROKEN_LINK}: points to {os.readlink(path)}, which does not exist"))
        else:
            skipped.append((str(path), "no such file or folder"))
    return candidates, skipped


def _size_note(path: Path, image_size: int) -> str | None:
    """A note when an image is smaller than the model's input: it is upscaled, and
    the fine structure the model looks for is not there."""
    with Image.open(path) as im:
        width, height = im.size
    if min(width, height) >= image_size:
        return None
    return (f"only {width}x{height} pixels: upscaled to the model's {image_size}x{image_size}, so the "
            "prediction may mean little; use the full-resolution photo")


def _describe(predictor: Predictor, path: Path, probs: np.ndarray, decision: str) -> dict[str, Any]:
    threshold, how = predictor.threshold
    order = np.argsort(-probs, kind="stable")  # most probable first; ties keep the model's order
    labels = [{"label": predictor.class_names[i], "name": full_name(predictor.class_names[i]),
               "probability": float(probs[i])} for i in order]
    item: dict[str, Any] = {
        "path": str(path), "model": predictor.name, "model_file": str(predictor.path),
        "backend": predictor.backend, "labels": labels, "decision": decision,
        "threshold": threshold, "threshold_source": how,
    }
    if predictor.binary:
        item["p_malignant"] = float(probs[1])
    elif set(MALIGNANT_DX) <= set(predictor.class_names):
        # The project's binary label: mel, bcc and akiec count as malignant.
        item["p_malignant_diagnoses"] = float(sum(probs[predictor.class_names.index(c)]
                                                  for c in sorted(MALIGNANT_DX)))
    item["disclaimer"] = DISCLAIMER
    return item


def iter_predictions(predictor: Predictor, paths: Sequence[str | os.PathLike]
                     ) -> Iterator[tuple[str, Any]]:
    """Predict every readable image among ``paths`` (files and folders), a batch at a time.

    Yields ``("prediction", item)`` for each image as soon as its batch is done
    (the dict ``predict_paths`` documents) and ``("skipped", (path, reason))``
    for every file that is not an image or could not be decoded.
    """
    candidates, skipped = collect_images(paths)
    for entry in skipped:
        yield "skipped", entry
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start:start + CHUNK]
        x, bad = load_images(chunk, predictor.image_size)
        bad_paths = {p for p, _ in bad}
        for p, reason in bad:
            yield "skipped", (p, f"{UNREADABLE}: {reason}")
        good = [p for p in chunk if str(p) not in bad_paths]
        if not good:
            continue
        probs = predictor.probabilities(x)
        for path, row, decision in zip(good, probs, predictor.decide(probs)):
            item = _describe(predictor, path, row, decision)
            note = _size_note(path, predictor.image_size)
            if note:
                item["note"] = note
            yield "prediction", item


def predict_paths(ref: str | os.PathLike | Predictor | None, paths: Sequence[str | os.PathLike],
                  out: OutputDirs | None = None) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Predict every readable image among ``paths`` (files and folders).

    ``ref``: a loaded ``Predictor`` or anything ``load_predictor`` takes.
    Returns ``(predictions, skipped)``: one dict per image in the order found
    (keys: path, model, model_file, backend, labels [{label, name,
    probability}] most probable first, decision, threshold, threshold_source,
    p_malignant or p_malignant_diagnoses, disclaimer, and a ``note`` for an
    image smaller than the model's input), and ``(path, reason)`` for every
    file that was not an image or could not be decoded.
    """
    predictor = ref if isinstance(ref, Predictor) else load_predictor(ref, out)
    predictions, skipped = [], []
    for kind, value in iter_predictions(predictor, paths):
        (predictions if kind == "prediction" else skipped).append(value)
    return predictions, skipped


def format_header(predictor: Predictor) -> str:
    """Which model, its input size and decision rule, and the reminder."""
    threshold, how = predictor.threshold
    rule = (f"decision: malignant when P(malignant) >= {threshold:.3f} ({how})" if predictor.binary
            else f"decision: the {MULTICLASS_DECISION}")
    return (f"model {predictor.name} ({predictor.backend}, {predictor.path}, "
            f"{predictor.image_size}x{predictor.image_size} input); {rule}\n{DISCLAIMER}")


def format_prediction(item: dict[str, Any]) -> str:
    """One image: its labels ranked with probabilities, then the decision."""
    width = max(len(lab["label"]) for lab in item["labels"])
    lines = [item["path"]]
    for lab in item["labels"]:
        full = f"  {lab['name']}" if lab["name"] != lab["label"] else ""
        lines.append(f"  {lab['label']:<{width}}  {lab['probability']:6.3f}{full}")
    if item["threshold"] is not None:
        p = item["p_malignant"]
        sign = ">=" if p >= item["threshold"] else "<"
        lines.append(f"  -> {item['decision']} (P(malignant) {p:.3f} {sign} threshold "
                     f"{item['threshold']:.3f}, {item['threshold_source']})")
    else:
        extra = ""
        if "p_malignant_diagnoses" in item:
            codes = "+".join(sorted(MALIGNANT_DX))
            extra = f"; malignant diagnoses ({codes}) together {item['p_malignant_diagnoses']:.3f}"
        lines.append(f"  -> {item['decision']}, {full_name(item['decision'])} (most probable{extra})")
    if item.get("note"):
        lines.append(f"  note: {item['note']}")
    return "\n".join(lines)


def format_text(predictor: Predictor, predictions: list[dict[str, Any]]) -> str:
    """The whole text report: header, then one block per image."""
    return "\n\n".join([format_header(predictor), *map(format_prediction, predictions)])


def format_json_lines(predictions: list[dict[str, Any]]) -> str:
    """One JSON object per image, one per line (empty string for none)."""
    return "".join(json.dumps(item) + "\n" for item in predictions)


def run_predict(args: argparse.Namespace) -> int:
    """CLI entry: each prediction on stdout as soon as it is made, skipped files on
    stderr; exit code 0, 1 or 2 (see the help)."""
    try:
        predictor = load_predictor(args.model, use_clinic=args.threshold == "clinic")
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"predict: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not args.json:
        print(format_header(predictor), flush=True)
    n_predicted, n_skipped = 0, 0
    for kind, value in iter_predictions(predictor, args.paths):
        if kind == "prediction":
            n_predicted += 1
            print(json.dumps(value) if args.json else "\n" + format_prediction(value), flush=True)
        else:
            n_skipped += 1
            print(f"predict: skipped {value[0]}: {value[1]}", file=sys.stderr, flush=True)
    if n_skipped:
        print(f"predict: {n_predicted} image(s) predicted, {n_skipped} file(s) skipped", file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK
