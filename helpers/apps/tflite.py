"""`python -m helpers export-tflite`: a saved model as TFLite files for phones, checked and timed.

Two files are written next to the ``.keras`` model, each atomically:

* ``<model>.tflite``: float32, the same network;
* ``<model>.dynamic.tflite``: dynamic-range quantised (weights stored as int8,
  activations float), about a quarter of the size;

plus ``<model>.tflite.json``, which says what the input and outputs are and
carries the labels and the validation-chosen threshold: an app needs those,
and ``predict`` reads them when a ``.tflite`` file is used away from
``saved_models/``.

Conversion path (Keras 3.15 / TF 2.21): ``Model.export(dir,
format="tf_saved_model")`` then ``tf.lite.TFLiteConverter.from_saved_model``
with TFLite builtin ops only, so no Flex (TensorFlow) ops are needed on the
phone. The models' preprocessing layers (``Rescaling``, the custom
``VGGPreprocess``) are ordinary ops by then and convert with the rest.

The files are then checked against the Keras model on held-out images (the
test split of the chain by default, at most ``TFLITE_HELD_OUT`` images):
largest absolute difference of the probabilities and the number of decisions
that change at the model's threshold. ``benchmark`` times both runtimes on
this machine; ``export_best_and_benchmark`` does everything for the best
model and records it in results.json under "deployment".
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from .. import results
from ..atomic import atomic_path, write_json
from ..config import TFLITE_FLOAT_TOLERANCE, TFLITE_HELD_OUT, OutputDirs, output_dirs
from ..data.arrays import load_split_table
from ..data.images import load_images
from ..data.labels import full_name
from ..models.saved import (DISCLAIMER, DYNAMIC_TAG, SIDECAR_SUFFIX, TFLITE_THREADS, Predictor, TFLiteRunner,
                            load_predictor)
from .predict import collect_images

LATENCY_RUNS, WARMUP_RUNS = 50, 5
BATCH_SIZE, THROUGHPUT_BATCHES = 32, 5
VARIANTS = ("tflite_float", "tflite_dynamic")
CONVERSION = ("keras Model.export(format='tf_saved_model') -> tf.lite.TFLiteConverter.from_saved_model, "
              "TFLite builtin ops only; dynamic: Optimize.DEFAULT (int8 weights, float activations)")


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------

def tflite_files(keras_path: str | os.PathLike) -> dict[str, Path]:
    """Where the exported files of a ``.keras`` model go: next to it."""
    keras_path = Path(keras_path)
    stem = keras_path.name[: -len(".keras")] if keras_path.name.endswith(".keras") else keras_path.stem
    return {"tflite_float": keras_path.with_name(f"{stem}.tflite"),
            "tflite_dynamic": keras_path.with_name(f"{stem}{DYNAMIC_TAG}.tflite"),
            "sidecar": keras_path.with_name(f"{stem}{SIDECAR_SUFFIX}")}


def convert(model) -> dict[str, bytes]:
    """The float and the dynamic-range quantised TFLite flatbuffers of a Keras model.

    The model is exported once as a SavedModel (Keras 3 has no direct
    ``from_keras_model`` path) and converted twice from it.
    """
    out = {}
    with tempfile.TemporaryDirectory(prefix="tflite-export-") as saved_model:
        model.export(saved_model, format="tf_saved_model", verbose=False)
        for variant in VARIANTS:
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
            # Builtins only: a file that needed the Flex delegate would not run on a stock phone runtime.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if variant == "tflite_dynamic":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            out[variant] = converter.convert()
    return out


def _runtime_name() -> str:
    """Which TFLite interpreter ``models.saved.make_interpreter`` uses here, with its version."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401  -- a probe: is the optional LiteRT runtime installed?

        return f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except ImportError:
        return f"tf.lite.Interpreter (tensorflow {tf.__version__})"


def _sidecar(predictor: Predictor, files: dict[str, Path]) -> dict[str, Any]:
    threshold, how = predictor.threshold
    s = predictor.image_size
    return {
        "model": predictor.name,
        "files": {k: files[k].name for k in VARIANTS},
        "input": f"float32 (N, {s}, {s}, 3): RGB pixels 0-255, EXIF-rotated, centre square resized "
                 "(bilinear); the model's preprocessing is inside the file",
        "image_size": s,
        "inputs": predictor.record.get("inputs", "image"),
        "output": ("(N, 1): P(malignant), sigmoid" if predictor.binary
                   else f"(N, {len(predictor.class_names)}): softmax over class_names"),
        "class_names": list(predictor.class_names),
        "full_names": [full_name(c) for c in predictor.class_names],
        "threshold": threshold,
        "threshold_source": how,
        "decision": "malignant when P(malignant) >= threshold" if predictor.binary else "most probable class",
        "disclaimer": DISCLAIMER,
    }


# ---------------------------------------------------------------------------
# Held-out images and agreement
# ---------------------------------------------------------------------------

def _spread(paths: Sequence[str], limit: int) -> list[str]:
    """At most ``limit`` paths, evenly spaced over the (sorted) list, so both classes are in."""
    if len(paths) <= limit:
        return list(paths)
    return [paths[i] for i in np.unique(np.linspace(0, len(paths) - 1, limit).round().astype(int))]


def held_out_test_paths(data_dir: str | None = None, out: OutputDirs | None = None,
                        limit: int = TFLITE_HELD_OUT) -> tuple[list[str], dict[str, Any]]:
    """Up to ``limit`` images of the chain's test split (never used for training or choices),
    and a description of the selection for the record."""
    table = load_split_table(data_dir, out)
    test = sorted(table.loc[table["split"] == "test", "path"])
    chosen = _spread(test, limit)
    return chosen, {"source": "test split of the chain", "n_available": len(test), "n_chosen": len(chosen),
                    "selection": f"evenly spaced over the test split sorted by path, at most {limit}"}


def _load_held_out(paths: Sequence[str | os.PathLike], image_size: int,
                   limit: int) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    found, skipped = collect_images(paths)
    chosen = _spread([str(p) for p in found], limit)
    x, bad = load_images(chosen, image_size)
    bad_paths = {p for p, _ in bad}
    return x, [p for p in chosen if p not in bad_paths], skipped + bad


def agreement(reference: Predictor, other: Predictor, x: np.ndarray,
              paths: Sequence[str], p_ref: np.ndarray | None = None) -> dict[str, Any]:
    """How far ``other``'s probabilities are from ``reference``'s, and which decisions change."""
    p_ref = reference.probabilities(x) if p_ref is None else p_ref
    p_other = other.probabilities(x)
    diff = np.abs(p_other - p_ref)
    changed = [i for i, (a, b) in enumerate(zip(reference.decide(p_ref), other.decide(p_other))) if a != b]
    return {"n": len(x), "max_abs_diff": float(diff.max()) if len(x) else None,
            "mean_abs_diff": float(diff.mean()) if len(x) else None,
            "decision_changes": len(changed), "changed_images": [str(paths[i]) for i in changed[:20]]}


def export_tflite(ref: str | None = None, out: OutputDirs | None = None,
                  held_out_paths: Sequence[str | os.PathLike] | None = None, *,
                  data_dir: str | None = None, limit: int = TFLITE_HELD_OUT) -> dict[str, Any]:
    """Write ``<model>.tflite``, ``<model>.dynamic.tflite`` and ``<model>.tflite.json`` next to
    the ``.keras`` model and check both TFLite files against it.

    ``ref``: as for ``predict`` (name, ``.keras`` path, None for the best
    binary model). ``held_out_paths``: images or folders for the agreement
    check; None takes the chain's test split (``data_dir`` as for the
    notebooks). At most ``limit`` images are used. Returns the report that
    ``record_export`` stores; its keys starting with "_" (the held-out
    images, the Keras model and the TFLite paths, for ``benchmark``) are not
    recorded.
    """
    start = time.perf_counter()
    out = out or output_dirs()
    if ref is not None and str(ref).endswith(".tflite"):
        raise ValueError(f"{ref} is already a TFLite file; export from the .keras model (its name or path).")
    keras_predictor = load_predictor(ref, out, use_clinic=False)
    files = tflite_files(keras_predictor.path)
    for variant, flatbuffer in convert(keras_predictor.model).items():
        with atomic_path(files[variant]) as tmp:
            tmp.write_bytes(flatbuffer)
    write_json(files["sidecar"], _sidecar(keras_predictor, files))

    if held_out_paths is None:
        held_out_paths, held_out = held_out_test_paths(data_dir, out, limit)
    else:
        held_out = {"source": "given images", "selection": f"evenly spaced, at most {limit}"}
    x, used, skipped = _load_held_out(held_out_paths, keras_predictor.image_size, limit)
    if not len(x):
        raise ValueError(f"No readable held-out image for the agreement check ({len(skipped)} skipped).")
    # Image names relative to the images' common folder: the record means the same on every machine.
    root = os.path.commonpath([os.path.abspath(p) for p in used]) if len(used) > 1 else os.path.dirname(used[0])
    names = [os.path.relpath(os.path.abspath(p), root) for p in used]
    held_out.update(n_used=len(x), n_skipped=len(skipped), images_under=Path(root).name)
    threshold, how = keras_predictor.threshold
    p_keras = keras_predictor.probabilities(x)
    report: dict[str, Any] = {
        "model": keras_predictor.name,
        "conversion": CONVERSION,
        "runtime": _runtime_name(),
        "files": {"keras": {"path": keras_predictor.path.name, "bytes": keras_predictor.path.stat().st_size},
                  **{k: {"path": files[k].name, "bytes": files[k].stat().st_size}
                     for k in (*VARIANTS, "sidecar")}},
        "agreement": {"held_out": held_out, "threshold": threshold, "threshold_source": how},
    }
    for variant in VARIANTS:
        other = load_predictor(str(files[variant]), out, use_clinic=False)
        report["agreement"][variant] = agreement(keras_predictor, other, x, names, p_keras)
    report["export_seconds"] = round(time.perf_counter() - start, 1)
    # For benchmark(); keys starting with "_" are not recorded.
    report.update(_x=x, _keras=keras_predictor.model, _tflite={k: files[k] for k in VARIANTS})
    return report


# ---------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------

def _median_ms(fn, x: np.ndarray, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _throughput(fn, batch: np.ndarray, n_batches: int) -> float:
    fn(batch)  # warm-up: first-call allocation and tracing are not throughput
    t = time.perf_counter()
    for _ in range(n_batches):
        fn(batch)
    return float(len(batch) * n_batches / (time.perf_counter() - t))


def benchmark(keras_model, tflite_paths: dict[str, str | os.PathLike], x: np.ndarray, *,
              runs: int = LATENCY_RUNS, warmup: int = WARMUP_RUNS, batch_size: int = BATCH_SIZE,
              n_batches: int = THROUGHPUT_BATCHES, num_threads: int = TFLITE_THREADS) -> dict[str, Any]:
    """Single-image latency (median of ``runs`` after ``warmup``) and batch throughput (images/s)
    of the Keras model and each TFLite file, on real images ``x`` (uint8, N x S x S x 3).

    Keras runs through ``predict_on_batch`` (its compiled predict function,
    TensorFlow's default threads); TFLite through the interpreter with
    ``num_threads`` threads (XNNPACK).
    """
    x = np.asarray(x, dtype=np.float32)
    single = x[:1]
    batch = np.resize(x, (batch_size, *x.shape[1:]))  # repeats images if fewer than a batch
    runners = {"keras": lambda a: keras_model.predict_on_batch(a)}
    for name, path in tflite_paths.items():
        one, many = TFLiteRunner(path, num_threads), TFLiteRunner(path, num_threads)
        runners[name] = (one, many)  # separate interpreters: resizing between 1 and 32 is not timed
    latency, throughput = {}, {}
    for name, fn in runners.items():
        one, many = fn if isinstance(fn, tuple) else (fn, fn)
        latency[name] = round(_median_ms(one, single, runs, warmup), 3)
        throughput[name] = round(_throughput(many, batch, n_batches), 1)
    return {"latency_ms": latency, "throughput_ips": throughput,
            "benchmark": {"latency": f"one image, median of {runs} runs after {warmup} warm-up runs",
                          "throughput": f"batches of {batch_size}, {n_batches} batches after one warm-up",
                          "keras": "Model.predict_on_batch, TensorFlow default threads",
                          "tflite": f"interpreter with num_threads={num_threads} (XNNPACK)",
                          "cpu_cores": os.cpu_count(),
                          "note": "this machine, possibly shared with other work: compare within a run"}}


# ---------------------------------------------------------------------------
# Recording and the chain
# ---------------------------------------------------------------------------

def _public(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if not k.startswith("_")}


def record_export(report: dict[str, Any], bench: dict[str, Any] | None = None,
                  out: OutputDirs | None = None) -> dict[str, Any]:
    """Store the export (and benchmark) as results.json's "deployment" and return that record.

    The key is replaced, not merged: figures of an earlier export (maybe of
    another model) must not survive next to the new ones.
    """
    out = out or output_dirs()
    record = {**_public(report), **(bench or {})}
    saved = results.load_results(out.results)
    saved["deployment"] = record
    write_json(out.results, saved)
    return record


def export_best_and_benchmark(out: OutputDirs | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """The chain's step: export the best binary model on validation, check it on up to
    ``TFLITE_HELD_OUT`` test images, time Keras and TFLite, record it all. Returns the record."""
    start = time.perf_counter()
    out = out or output_dirs()
    report = export_tflite(None, out, data_dir=data_dir)
    bench = benchmark(report["_keras"], report["_tflite"], report["_x"])
    bench["seconds"] = round(time.perf_counter() - start, 1)  # export, check and benchmark
    return record_export(report, bench, out)


def format_report(record: dict[str, Any]) -> str:
    """A short human-readable summary of an export (and benchmark)."""
    files, agree = record["files"], record["agreement"]
    mb = lambda k: f"{files[k]['bytes'] / 1e6:.2f} MB"  # noqa: E731
    held = agree["held_out"]
    lines = [f"model {record['model']}: {files['keras']['path']} ({mb('keras')})",
             f"agreement with Keras on {held['n_used']} held-out images ({held['source']}), "
             f"decisions at threshold {_fmt_threshold(agree['threshold'])} ({agree['threshold_source']}):"]
    for k in VARIANTS:
        a = agree[k]
        lines.append(f"  {files[k]['path']:<36} {mb(k):>9}  max |dp| {a['max_abs_diff']:.2e}, "
                     f"decision changes {a['decision_changes']}/{a['n']}")
    if "latency_ms" in record:
        lat, thr = record["latency_ms"], record["throughput_ips"]
        lines.append("latency, 1 image (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in lat.items()))
        lines.append(f"throughput, batch {BATCH_SIZE} (images/s): "
                     + ", ".join(f"{k} {v:.0f}" for k, v in thr.items()))
    lines.append(f"runtime: {record['runtime']}")
    return "\n".join(lines)


def _fmt_threshold(t: float | None) -> str:
    return "argmax" if t is None else f"{t:.3f}"


def run_export(args: argparse.Namespace) -> int:
    """CLI entry: export, check, optionally benchmark and record; exit code 0, 1 or 2 (see the help)."""
    try:
        report = export_tflite(args.model, held_out_paths=args.images, data_dir=args.data_dir,
                               limit=args.max_images)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"export-tflite: {exc}", file=sys.stderr)
        return 2
    bench = None
    if args.benchmark:
        bench = benchmark(report["_keras"], report["_tflite"], report["_x"])
    record = record_export(report, bench) if args.record else {**_public(report), **(bench or {})}
    print(json.dumps(record) if args.json else format_report(record))
    floating = record["agreement"]["tflite_float"]
    if floating["max_abs_diff"] > TFLITE_FLOAT_TOLERANCE or floating["decision_changes"]:
        print("export-tflite: the float TFLite file disagrees with the Keras model", file=sys.stderr)
        return 1
    return 0
