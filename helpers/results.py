"""``saved_models/results.json``: the one machine-readable record of a run.

Notebooks write into it through ``record_model`` / ``update_results``; README,
the main notebook and the slides read from it. Every write is atomic.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from .atomic import read_json, write_json
from .config import REPO_ROOT, output_dirs

# Packages whose versions are recorded with every run.
RECORDED_PACKAGES = [
    "tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas", "scikit-learn", "scikit-image",
    "lime", "papermill", "matplotlib", "pillow",
]


def results_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path) if path else output_dirs().results


def load_results(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The results so far ({} when no run has written any yet)."""
    p = results_path(path)
    if not p.exists():
        return {}
    return read_json(p, "; rerun `python -m helpers reproduce`")


def _merge(base: dict, updates: dict) -> dict:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def update_results(updates: dict[str, Any], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Deep-merge ``updates`` into results.json and write it back atomically."""
    p = results_path(path)
    results = _merge(load_results(p), updates)
    write_json(p, results)
    return results


def record_model(name: str, entry: dict[str, Any], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Replace the record of one model (a stale key from an older run must not survive)."""
    p = results_path(path)
    results = load_results(p)
    results.setdefault("models", {})[name] = entry
    write_json(p, results)
    return results


def replace_section(key: str, value: Any, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Replace one top-level section whole (nothing of an older run's section survives)."""
    p = results_path(path)
    results = load_results(p)
    results[key] = value
    write_json(p, results)
    return results


def record_partial_rerun(entry: dict[str, Any], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Add a partial rerun (``reproduce --notebooks ...``) to ``run["partial_reruns"]``.

    ``run``'s own keys stay those of the last whole-chain run: its commit, date and chain
    time describe every result the partial rerun did not remake."""
    p = results_path(path)
    results = load_results(p)
    results.setdefault("run", {}).setdefault("partial_reruns", []).append(entry)
    write_json(p, results)
    return results


def run_info(quick: bool, *, full: bool = False, devices: str = "auto") -> dict[str, Any]:
    """Commit, date, package versions, machine and setting of this run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    versions = {}
    for pkg in RECORDED_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            if pkg != "tensorflow":  # the CUDA build (GPU profile): recorded only where installed
                versions[pkg] = None
    return {
        "commit": commit,
        "uncommitted_changes": dirty,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": versions,
        "machine": {"cpu_cores": os.cpu_count(), **cpu_description(), "platform": platform.platform(),
                    "gpus": _gpus()},
        "quick": quick,
        "full": full,
        "devices": devices,
    }


# Vector instructions that decide which kernels oneDNN runs, and so how floating-point sums
# round: the same seed gives different trained weights on CPUs with different sets.
_VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_description(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU's model name and its vector instructions (from /proc/cpuinfo on Linux;
    elsewhere what ``platform`` says, with no flags)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return {"cpu": platform.processor() or None, "cpu_vector_flags": None}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's lines
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name") or platform.processor() or None,
            "cpu_vector_flags": [f for f in _VECTOR_FLAGS if f in flags]}


def _gpus() -> list[str]:
    """The GPUs TensorFlow sees in this process (none with tensorflow-cpu)."""
    from .startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # the chain runner's first TensorFlow import: without its C++ start-up lines
    from .training.devices import gpus  # TensorFlow: only when a run starts, not for every reader of results

    return gpus()


def selection_score(record: Mapping[str, Any]) -> float | None:
    """What a model is chosen on: its validation ROC AUC, averaged over the data sets'
    validation splits when the chain has several (``selection_auc``)."""
    if record.get("selection_auc") is not None:
        return record["selection_auc"]
    return (record.get("validation") or {}).get("auc")


def best_on_validation(records: Mapping[str, Mapping[str, Any]], *, backbones: tuple[str, ...] | None = None,
                       models_dir: str | os.PathLike | None = None) -> str | None:
    """The name of the record with the best validation ROC AUC (``selection_score``), or None.

    ``backbones``: only records of these backbones; ``models_dir``: only
    records whose model file is present there. The test set plays no part.
    """
    scored = {name: selection_score(r) for name, r in records.items()
              if isinstance(r, Mapping) and selection_score(r) is not None
              and (backbones is None or r.get("backbone") in backbones)
              and (models_dir is None or (Path(models_dir) / r.get("model_file", "")).is_file())}
    return max(scored, key=scored.get) if scored else None


def model_records(saved: Mapping[str, Any], include_multiclass: bool = False) -> dict[str, dict[str, Any]]:
    """The model records of a results.json: binary models (``"models"``), and with
    ``include_multiclass`` the seven-class ones (records under ``"multiclass"``
    with ``task == "multiclass"``; the section's summaries are not models).
    A binary model keeps its name if both sections use it."""
    multiclass = {k: v for k, v in saved.get("multiclass", {}).items()
                  if isinstance(v, dict) and v.get("task") == "multiclass"} if include_multiclass else {}
    return {**multiclass, **saved.get("models", {})}
