"""The one home for saved models: write them, find them, load them.

* ``save_model`` writes a ``.keras`` file atomically, without optimizer state;
* ``best_on_validation`` picks, among recorded models, the one with the best
  validation ROC AUC (the test set plays no part), and ``load_best`` loads it;
* ``resolve_model`` turns a name in results.json, a file path or nothing (the
  best model) into (name, file, record);
* ``load_predictor`` loads a ``.keras`` or ``.tflite`` model with what its
  outputs mean (labels, the validation-chosen threshold) as a ``Predictor``,
  which ``predict``, ``evaluate``, the TFLite export and the web page use.

Loading here registers the project's custom layers (``models.layers``) first.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from .. import results
from ..results import best_on_validation, model_records
from ..atomic import atomic_path, read_json
from ..config import OutputDirs, output_dirs
from ..data.labels import CLASS_NAMES
from . import ensemble, layers, losses  # noqa: F401  registers the custom layers and losses, so saved models load


DISCLAIMER = ("Research model, not a diagnosis: not validated for clinical use. "
              "Show a doctor any skin lesion that worries you.")


TFLITE_THREADS = 2  # the project's machines have two cores

# ``Predictor.probabilities`` runs the model on at most this many images at a time: one call on a
# whole folder holds every layer's activations for every image at once (about 19 GB, then a crash,
# for the 5,984 HAM10000 images through lite0_both at 128 px).
PREDICT_BATCH = 32


DYNAMIC_TAG = ".dynamic"  # <model>.dynamic.tflite: dynamic-range quantised weights


SIDECAR_SUFFIX = ".tflite.json"  # <model>.tflite.json: labels and threshold for the .tflite files


MULTICLASS_DECISION = "most probable class (no threshold)"


class ModelRefusedError(ValueError):
    """The model exists but ``predict`` cannot use it (e.g. it needs patient metadata)."""


# ---------------------------------------------------------------------------
# Writing, choosing and finding saved models
# ---------------------------------------------------------------------------


def save_model(model: keras.Model, path: str | Path) -> Path:
    """Save as .keras, without optimizer state (a third of the size; only inference
    needs the file). Written beside the target and moved into place when complete."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: models are saved in the .keras format")
    # Rebuilt from its config: uncompiled, so no optimizer state (clone_model would compile it).
    bare = model.__class__.from_config(model.get_config())
    bare.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        bare.save(tmp)
    return path


def load_best(out: OutputDirs | None = None, backbones: tuple[str, ...] | None = None
              ) -> tuple[str, dict[str, Any], keras.Model]:
    """(name, record, model) of the recorded binary model with the best validation
    AUC whose file is present (among ``backbones`` when given)."""
    out = out or output_dirs()
    recorded = results.load_results(out.results).get("models", {})
    name = best_on_validation(recorded, backbones=backbones, models_dir=out.models)
    if name is None:
        which = f" with backbone in {backbones}" if backbones else ""
        raise FileNotFoundError(f"No saved model{which} recorded in {out.results}: run notebooks "
                                "2_Image_Processing_and_Modeling.ipynb and 3_Transfer_Learning_Models.ipynb first.")
    return name, recorded[name], load_model(out.models / recorded[name]["model_file"])


def load_model(path: str | os.PathLike) -> keras.Model:
    """A saved ``.keras`` model, with the project's custom layers registered.

    Raises FileNotFoundError for a missing file and ValueError naming the file
    for one Keras cannot read (truncated, corrupt, or not a Keras model).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file {path}: rerun `make reproduce` or pass another --model.")
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, ... for a damaged file
        raise ValueError(f"{path} could not be read as a Keras model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}); it may be truncated or "
                         "corrupt: rerun `make reproduce`, or copy the file again.") from exc


def resolve_model(ref: str | None, out: OutputDirs | None = None, *,
                  include_multiclass: bool = False) -> tuple[str, Path, dict]:
    """(name, file, record) for a model name in results.json, a file path, or None for the best
    binary model on validation.

    ``include_multiclass``: also look names and files up among the 7-class
    models recorded under "multiclass" (their records carry ``class_names``).
    """
    out = out or output_dirs()
    saved = results.load_results(out.results)
    if ref is None:
        ref = best_on_validation(saved.get("models", {}), models_dir=out.models)
        if ref is None:
            raise FileNotFoundError(f"No saved model in {out.models}: run `make reproduce` first, "
                                    "or pass --model PATH.")
    recorded = model_records(saved, include_multiclass)
    if ref in recorded:
        if "model_file" not in recorded[ref]:
            raise FileNotFoundError(f"Model '{ref}' in {out.results} has no saved file "
                                    f"({recorded[ref].get('note', 'it is not saved as a file')}).")
        return ref, out.models / recorded[ref]["model_file"], recorded[ref]
    path = Path(ref)
    if not path.is_file():
        known = ", ".join(sorted(n for n, r in recorded.items() if "model_file" in r)) or "none recorded yet"
        raise FileNotFoundError(f"No model '{ref}': not a file, and not a model name in {out.results} "
                                f"(models: {known}).")
    record = next((r for r in recorded.values()
                   if (out.models / r.get("model_file", "")).resolve() == path.resolve()), {})
    return path.stem, path, record


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
        from ai_edge_litert.interpreter import Interpreter  # optional runtime: imported where it is tried
    except ImportError:
        import tensorflow as tf  # the fallback runtime: only without LiteRT

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated",
                                    category=UserWarning)
            return tf.lite.Interpreter(model_path=str(model_path), num_threads=num_threads)
    return Interpreter(model_path=str(model_path), num_threads=num_threads)


class TFLiteRunner:
    """Run a ``.tflite`` image model on batches of any size (its batch dimension is dynamic)."""

    def __init__(self, path: str | os.PathLike, num_threads: int = TFLITE_THREADS):
        self.path = Path(path)
        try:
            self.interpreter = make_interpreter(self.path, num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:  # the runtime's words for a file it cannot parse
            raise ValueError(f"{self.path} could not be read as a TFLite model ({str(exc).splitlines()[0][:200]}); "
                             "it may be truncated or corrupt: export it again with "
                             "`python -m helpers export-tflite`.") from exc
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
    clinic: dict[str, Any] | None = None  # a threshold refitted on a clinic's own images (``calibrate``)

    @property
    def threshold(self) -> tuple[float | None, str]:
        """(threshold, where it came from); None for multiclass models (argmax decides)."""
        if not self.binary:
            return None, MULTICLASS_DECISION
        if self.clinic is not None:
            c = self.clinic
            return float(c["threshold"]), (f"refitted on {c['n']} images of {c['data_name']} for sensitivity >= "
                                           f"{c['target_sensitivity']:.2f} (calibrate, {c['date'][:10]})")
        if self.threshold_override is not None:
            return self.threshold_override
        if "threshold" not in self.record:
            return 0.5, "default 0.5: no validation-chosen threshold recorded for this model"
        how = "chosen on validation"
        if "target_sensitivity" in self.record:
            how += f" for sensitivity >= {float(self.record['target_sensitivity']):.2f}"
        return float(self.record["threshold"]), how

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, len(class_names)) probabilities, in the order of ``class_names``;
        ``run`` sees at most ``PREDICT_BATCH`` images per call, however many ``x`` holds."""
        batches = [x[i:i + PREDICT_BATCH] for i in range(0, len(x), PREDICT_BATCH)]
        width = 1 if self.binary else len(self.class_names)
        raw = np.concatenate([np.asarray(self.run(b), dtype=np.float64).reshape(len(b), -1) for b in batches]
                             or [np.zeros((0, width))])
        if self.binary:
            p = raw[:, 0]
            return np.column_stack([1.0 - p, p])  # CLASS_NAMES order: benign, malignant
        return raw

    def probabilities_of_files(self, paths: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """``probabilities`` of the images in ``paths``, read from the files a batch at a time
        (``data.stream``: decoded on both cores while the model runs), so memory does not grow
        with the number of files. Returns the probabilities of the files that decoded, in the
        order of ``paths``, and ``(path, reason)`` for each one that did not."""
        from ..data.stream import image_stream  # tf.data: only for callers that read folders

        stream = image_stream(list(paths), self.image_size, batch_size=PREDICT_BATCH, check=False)
        empty = np.zeros((0, self.image_size, self.image_size, 3), np.uint8)  # no file decoded: (0, classes)
        P = [self.probabilities(batch.numpy()) for batch in stream.dataset] or [self.probabilities(empty)]
        return np.concatenate(P), stream.skipped

    def decide(self, probs: np.ndarray) -> list[str]:
        """The decision for each row of ``probabilities``: a label of ``class_names``."""
        probs = np.asarray(probs).reshape(-1, len(self.class_names))
        if self.binary:
            threshold, _ = self.threshold
            # p >= threshold is malignant: the convention the threshold was chosen with.
            return [CLASS_NAMES[int(p >= threshold)] for p in probs[:, 1]]
        return [self.class_names[i] for i in probs.argmax(axis=1)]


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
        return tuple(CLASS_NAMES), True
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
    recorded = model_records(saved, include_multiclass=True)
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
    name, path, record = resolve_model(ref, out, include_multiclass=True)
    _refuse_metadata(name, record)  # before loading what could be a large file
    if not path.is_file():
        raise FileNotFoundError(f"The file of model '{name}' ({path}) is missing: rerun `make reproduce` "
                                "or pass --model PATH.")
    model = load_model(path)
    _refuse_metadata(name, record, len(model.inputs))
    class_names, binary = _labels_for(name, record, int(model.output_shape[-1]))

    def run(x: np.ndarray) -> np.ndarray:
        # One batch through the compiled predict function; ``Predictor.probabilities`` keeps batches small.
        return np.asarray(model.predict_on_batch(np.asarray(x, dtype=np.float32)))

    return Predictor(name, path, record, "keras", int(model.input_shape[1]), class_names, binary, run,
                     model=model)


CLINIC_SUFFIX = ".clinic.json"  # <model>.clinic.json: a threshold refitted on a clinic's images


def clinic_file(model_path: str | os.PathLike) -> Path:
    """Where ``calibrate`` keeps a model's clinic threshold: beside the model, named after it
    (one file for the .keras and its .tflite exports)."""
    path = Path(model_path)
    stem = path.name.split(".")[0]
    return path.with_name(stem + CLINIC_SUFFIX)


def load_predictor(ref: str | os.PathLike | None = None, out: OutputDirs | None = None, *,
                   use_clinic: bool = True) -> Predictor:
    """Load a model by name (binary or multiclass record), ``.keras``/``.tflite`` path, or the
    best binary model on validation (``ref`` None).

    A binary model with a threshold refitted on a clinic's own images
    (``<model>.clinic.json``, written by ``python -m helpers calibrate``) decides
    with that threshold, unless ``use_clinic`` is False.
    Raises ``FileNotFoundError`` for an unknown model, ``ModelRefusedError``
    (a ``ValueError``) for a model that needs more than the image.
    """
    out = out or output_dirs()
    if ref is not None and str(ref).endswith(".tflite"):
        path = Path(ref)
        if not path.is_file():
            raise FileNotFoundError(f"No TFLite file {path}: write one with "
                                    "`python -m helpers export-tflite`.")
        predictor = _load_tflite(path, out)
    else:
        predictor = _load_keras(None if ref is None else str(ref), out)
    if use_clinic and predictor.binary and clinic_file(predictor.path).is_file():
        predictor.clinic = read_json(clinic_file(predictor.path), "; rerun `python -m helpers calibrate`")
    return predictor
