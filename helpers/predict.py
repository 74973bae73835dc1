"""`python -m helpers predict`: ranked predictions of a saved model on your own images.

A model is found the way ``evaluate`` finds one (``inference.resolve_model``):
a name in ``saved_models/results.json``, a ``.keras`` file, or by default the
binary model with the best validation ROC AUC. A ``.tflite`` file written by
``export-tflite`` works too.

Nothing about preprocessing is re-typed here: every model of this project
takes raw RGB pixels 0-255 and carries its scaling as layers (the TFLite files
keep those layers), so an image only has to be decoded, made RGB and resized
exactly as for training -- ``data.load_image`` does that for every caller.

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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import data, results
from .atomic import read_json
from .config import OutputDirs, output_dirs

# helpers.inference (and through it scikit-learn) and TensorFlow are imported
# where they are used: the CLI imports this module to build its parser.

DISCLAIMER = ("Research model, not a diagnosis: not validated for clinical use. "
              "Show a doctor any skin lesion that worries you.")
EXIT_OK, EXIT_SKIPPED, EXIT_ERROR = 0, 1, 2
# Images are decoded and scored this many at a time, so a large folder never
# has to fit in memory at once.
CHUNK = 64
TFLITE_THREADS = 2  # the project's machines have two cores
DYNAMIC_TAG = ".dynamic"  # <model>.dynamic.tflite: dynamic-range quantised weights
SIDECAR_SUFFIX = ".tflite.json"  # <model>.tflite.json: labels and threshold for the .tflite files
MULTICLASS_DECISION = "most probable class (no threshold)"


class ModelRefusedError(ValueError):
    """The model exists but ``predict`` cannot use it (e.g. it needs patient metadata)."""


# ---------------------------------------------------------------------------
# TFLite runtime
# ---------------------------------------------------------------------------

def make_interpreter(model_path: str | os.PathLike, num_threads: int = TFLITE_THREADS):
    """A TFLite interpreter for ``model_path``, from LiteRT when it is installed.

    TF 2.21 still ships ``tf.lite.Interpreter`` but warns on every use that it
    is deprecated in favour of LiteRT (``ai-edge-litert``, pinned in the
    environment). Without that package the TF interpreter is used and exactly
    that warning is silenced: it is about TF's future, not about this model.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated",
                                    category=UserWarning)
            return tf.lite.Interpreter(model_path=str(model_path), num_threads=num_threads)
    return Interpreter(model_path=str(model_path), num_threads=num_threads)


class TFLiteRunner:
    """Run a ``.tflite`` image model on batches of any size (its batch dimension is dynamic)."""

    def __init__(self, path: str | os.PathLike, num_threads: int = TFLITE_THREADS):
        self.path = Path(path)
        self.interpreter = make_interpreter(self.path, num_threads)
        inputs = self.interpreter.get_input_details()
        self.n_inputs = len(inputs)
        self._input = inputs[0]
        self._output = self.interpreter.get_output_details()[0]
        self.image_size = int(self._input["shape"][1])
        self.n_outputs = int(self._output["shape"][-1])
        self._batch: int | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Raw model outputs (N, K) for images (N, S, S, 3), pixels 0-255."""
        if self._batch != len(x):
            self.interpreter.resize_tensor_input(self._input["index"], [len(x), *self._input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self._batch = len(x)
        self.interpreter.set_tensor(self._input["index"], np.asarray(x, dtype=np.float32))
        self.interpreter.invoke()
        # A copy: the interpreter reuses its output buffer on the next call.
        return np.array(self.interpreter.get_tensor(self._output["index"]), dtype=np.float64)


# ---------------------------------------------------------------------------
# A loaded model with its labels and decision rule
# ---------------------------------------------------------------------------

@dataclass
class Predictor:
    """A model ready to score images, with what its outputs mean.

    ``run`` maps uint8 images (N, S, S, 3) to the model's raw outputs (N, K);
    ``binary`` models have K = 1 (P(malignant)), the others one probability
    per entry of ``class_names``.
    """

    name: str
    path: Path
    record: dict[str, Any]
    backend: str  # "keras", "tflite-float" or "tflite-dynamic"
    image_size: int
    class_names: tuple[str, ...]
    binary: bool
    run: Callable[[np.ndarray], np.ndarray]
    threshold_override: tuple[float, str] | None = None  # from a .tflite sidecar
    model: Any = None  # the keras.Model or TFLiteRunner behind ``run`` (export and benchmarks use it)

    @property
    def threshold(self) -> tuple[float | None, str]:
        """(threshold, where it came from); None for multiclass models (argmax decides)."""
        if not self.binary:
            return None, MULTICLASS_DECISION
        if self.threshold_override is not None:
            return self.threshold_override
        from .inference import SavedModel  # one place decides the default threshold and its wording

        value, how = SavedModel(self.name, self.path, self.record, None).threshold
        if "threshold" in self.record and "target_sensitivity" in self.record:
            how += f" for sensitivity >= {float(self.record['target_sensitivity']):.2f}"
        return value, how

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, len(class_names)) probabilities, in the order of ``class_names``."""
        raw = np.asarray(self.run(x), dtype=np.float64).reshape(len(x), -1)
        if self.binary:
            p = raw[:, 0]
            return np.column_stack([1.0 - p, p])  # CLASS_NAMES order: benign, malignant
        return raw

    def decide(self, probs: np.ndarray) -> list[str]:
        """The decision for each row of ``probabilities``: a label of ``class_names``."""
        probs = np.asarray(probs).reshape(-1, len(self.class_names))
        if self.binary:
            threshold, _ = self.threshold
            # p >= threshold is malignant: the convention the threshold was chosen with.
            return [data.CLASS_NAMES[int(p >= threshold)] for p in probs[:, 1]]
        return [self.class_names[i] for i in probs.argmax(axis=1)]


def _full_name(label: str) -> str:
    return data.DX_NAMES.get(label, label)


def _refuse_metadata(name: str, record: dict[str, Any], n_inputs: int | None = None) -> None:
    needs = str(record.get("inputs", "image")) != "image" or (n_inputs is not None and n_inputs > 1)
    if needs:
        raise ModelRefusedError(
            f"Model '{name}' needs patient metadata (age, sex, site) as well as the image "
            f"(inputs: {record.get('inputs', f'{n_inputs} tensors')}); `predict` only has the image. "
            "Choose an image-only model with --model.")


def _labels_for(name: str, record: dict[str, Any], n_outputs: int) -> tuple[tuple[str, ...], bool]:
    """(class names, binary?) from the model's output width and its record."""
    if n_outputs == 1:
        return tuple(data.CLASS_NAMES), True
    names = tuple(record.get("class_names") or ())
    if not names:
        # A bare file: its outputs are numbered, not guessed.
        return tuple(f"class_{i}" for i in range(n_outputs)), False
    if len(names) != n_outputs:
        raise ValueError(f"Model '{name}' has {n_outputs} outputs but its record names "
                         f"{len(names)} classes ({', '.join(names)}).")
    return names, False


def _tflite_origin(path: Path, out: OutputDirs) -> tuple[str, dict[str, Any], str]:
    """(name, record, variant) of the model a .tflite file was exported from.

    The record is found through the .keras file it was converted from (by
    name, beside it; the .keras file itself need not be there any more).
    """
    stem = path.name[: -len(".tflite")]
    variant = "float"
    if stem.endswith(DYNAMIC_TAG):
        stem, variant = stem[: -len(DYNAMIC_TAG)], "dynamic"
    twin = (path.parent / f"{stem}.keras").resolve()
    saved = results.load_results(out.results)
    recorded = {**saved.get("multiclass", {}), **saved.get("models", {})}
    for name, record in recorded.items():
        if (out.models / record.get("model_file", "")).resolve() == twin:
            return name, record, variant
    return stem, {}, variant


def _read_sidecar(path: Path) -> dict[str, Any]:
    stem = path.name[: -len(".tflite")]
    stem = stem[: -len(DYNAMIC_TAG)] if stem.endswith(DYNAMIC_TAG) else stem
    sidecar = path.parent / f"{stem}{SIDECAR_SUFFIX}"
    if not sidecar.is_file():
        return {}
    return read_json(sidecar)


def _load_tflite(path: Path, out: OutputDirs) -> Predictor:
    name, record, variant = _tflite_origin(path, out)
    sidecar = _read_sidecar(path)
    if not record and sidecar:
        # Moved away from saved_models/: the sidecar written at export says what the outputs mean.
        name = sidecar.get("model", name)
        record = {k: sidecar[k] for k in ("class_names", "inputs") if k in sidecar}
    _refuse_metadata(name, record)
    runner = TFLiteRunner(path)
    _refuse_metadata(name, record, runner.n_inputs)
    class_names, binary = _labels_for(name, record, runner.n_outputs)
    override = None
    if binary and "threshold" not in record and sidecar.get("threshold") is not None:
        how = str(sidecar.get("threshold_source", "from the export sidecar"))
        override = (float(sidecar["threshold"]), how)
    return Predictor(name, path, record, f"tflite-{variant}", runner.image_size, class_names, binary,
                     runner, override, runner)


def _load_keras(ref: str | None, out: OutputDirs) -> Predictor:
    import keras

    from . import models  # noqa: F401  registers the custom layers for loading
    from .inference import resolve_model

    name, path, record = resolve_model(ref, out, include_multiclass=True)
    _refuse_metadata(name, record)  # before loading what could be a large file
    if not path.is_file():
        raise FileNotFoundError(f"The file of model '{name}' ({path}) is missing: rerun `make reproduce` "
                                "or pass --model PATH.")
    model = keras.models.load_model(path)
    _refuse_metadata(name, record, len(model.inputs))
    class_names, binary = _labels_for(name, record, int(model.output_shape[-1]))

    def run(x: np.ndarray) -> np.ndarray:
        # One batch through the compiled predict function; the caller keeps batches small.
        return np.asarray(model.predict_on_batch(np.asarray(x, dtype=np.float32)))

    return Predictor(name, path, record, "keras", int(model.input_shape[1]), class_names, binary, run,
                     model=model)


def load_predictor(ref: str | os.PathLike | None = None, out: OutputDirs | None = None) -> Predictor:
    """Load a model by name (binary or multiclass record), ``.keras``/``.tflite`` path, or the
    best binary model on validation (``ref`` None).

    Raises ``FileNotFoundError`` for an unknown model, ``ModelRefusedError``
    (a ``ValueError``) for a model that needs more than the image.
    """
    out = out or output_dirs()
    if ref is not None and str(ref).endswith(".tflite"):
        path = Path(ref)
        if not path.is_file():
            raise FileNotFoundError(f"No TFLite file {path}: write one with "
                                    "`python -m helpers export-tflite`.")
        return _load_tflite(path, out)
    return _load_keras(None if ref is None else str(ref), out)


# ---------------------------------------------------------------------------
# Finding images and predicting
# ---------------------------------------------------------------------------

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
            files = sorted(f for f in path.rglob("*") if f.is_file() and not _hidden(f.relative_to(path)))
            if not files:
                skipped.append((str(path), "folder holds no files"))
            for f in files:
                if f.suffix.lower() in data.IMAGE_SUFFIXES:
                    add(f)
                else:
                    skipped.append((str(f), f"{data.NOT_IMAGE} (suffix {f.suffix!r})"))
        elif path.is_file():
            add(path)
        else:
            skipped.append((str(path), "no such file or folder"))
    return candidates, skipped


def _describe(predictor: Predictor, path: Path, probs: np.ndarray, decision: str) -> dict[str, Any]:
    threshold, how = predictor.threshold
    order = np.argsort(-probs, kind="stable")  # most probable first; ties keep the model's order
    labels = [{"label": predictor.class_names[i], "name": _full_name(predictor.class_names[i]),
               "probability": float(probs[i])} for i in order]
    item: dict[str, Any] = {
        "path": str(path), "model": predictor.name, "model_file": str(predictor.path),
        "backend": predictor.backend, "labels": labels, "decision": decision,
        "threshold": threshold, "threshold_source": how,
    }
    if predictor.binary:
        item["p_malignant"] = float(probs[1])
    elif data.MALIGNANT_DX <= set(predictor.class_names):
        # The project's binary label: mel, bcc and akiec count as malignant.
        item["p_malignant_diagnoses"] = float(sum(probs[predictor.class_names.index(c)]
                                                  for c in sorted(data.MALIGNANT_DX)))
    item["disclaimer"] = DISCLAIMER
    return item


def predict_paths(ref: str | os.PathLike | Predictor | None, paths: Sequence[str | os.PathLike],
                  out: OutputDirs | None = None) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Predict every readable image among ``paths`` (files and folders).

    ``ref``: a loaded ``Predictor`` or anything ``load_predictor`` takes.
    Returns ``(predictions, skipped)``: one dict per image in the order found
    (keys: path, model, model_file, backend, labels [{label, name,
    probability}] most probable first, decision, threshold, threshold_source,
    p_malignant or p_malignant_diagnoses, disclaimer), and ``(path, reason)``
    for every file that was not an image or could not be decoded.
    """
    predictor = ref if isinstance(ref, Predictor) else load_predictor(ref, out)
    candidates, skipped = collect_images(paths)
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start:start + CHUNK]
        x, bad = data.load_images(chunk, predictor.image_size)
        bad_paths = {p for p, _ in bad}
        skipped.extend((p, f"{data.UNREADABLE}: {reason}") for p, reason in bad)
        good = [p for p in chunk if str(p) not in bad_paths]
        if not good:
            continue
        probs = predictor.probabilities(x)
        for path, row, decision in zip(good, probs, predictor.decide(probs)):
            predictions.append(_describe(predictor, path, row, decision))
    return predictions, skipped


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

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
            codes = "+".join(sorted(data.MALIGNANT_DX))
            extra = f"; malignant diagnoses ({codes}) together {item['p_malignant_diagnoses']:.3f}"
        lines.append(f"  -> {item['decision']}, {_full_name(item['decision'])} (most probable{extra})")
    return "\n".join(lines)


def format_text(predictor: Predictor, predictions: list[dict[str, Any]]) -> str:
    """The whole text report: header, then one block per image."""
    return "\n\n".join([format_header(predictor), *map(format_prediction, predictions)])


def format_json_lines(predictions: list[dict[str, Any]]) -> str:
    """One JSON object per image, one per line (empty string for none)."""
    return "".join(json.dumps(item) + "\n" for item in predictions)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

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


def add_predict_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``predict``: images/folders, ``--model``, ``--json``; the help names the exit codes."""
    parser.description = PREDICT_DESCRIPTION
    parser.epilog = PREDICT_EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("paths", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and/or folders")
    parser.add_argument("--model", help="model name in results.json (binary or multiclass), a .keras or "
                                        ".tflite file (default: the binary model best on validation)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image, one per line")
    return parser


def run_predict(args: argparse.Namespace) -> int:
    """CLI entry: predictions on stdout, skipped files on stderr; exit code 0, 1 or 2 (see the help)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    try:
        predictor = load_predictor(args.model)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"predict: {exc}", file=sys.stderr)
        return EXIT_ERROR
    predictions, skipped = predict_paths(predictor, args.paths)
    if args.json:
        sys.stdout.write(format_json_lines(predictions))
    else:
        print(format_text(predictor, predictions))
    for path, reason in skipped:
        print(f"predict: skipped {path}: {reason}", file=sys.stderr)
    if skipped:
        print(f"predict: {len(predictions)} image(s) predicted, {len(skipped)} file(s) skipped",
              file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK
