"""Using saved models outside the notebooks: find one by name or path, and
score it on any folder of labelled images the data layer can read."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import data, evaluation, results
from .config import OutputDirs, output_dirs


@dataclass
class SavedModel:
    name: str
    path: Path
    record: dict[str, Any]  # its results.json entry ({} for a model outside the chain)
    model: Any

    @property
    def image_size(self) -> int:
        return int(self.model.input_shape[1])

    @property
    def threshold(self) -> tuple[float, str]:
        """The validation-chosen threshold when the chain recorded one, else 0.5 (said so)."""
        if "threshold" in self.record:
            return float(self.record["threshold"]), "chosen on validation"
        return 0.5, "default 0.5: no validation-chosen threshold recorded for this model"


def resolve_model(ref: str | None, out: OutputDirs | None = None, *,
                  include_multiclass: bool = False) -> tuple[str, Path, dict]:
    """(name, file, record) for a model name in results.json, a file path, or None for the best
    model on validation.

    ``include_multiclass``: also look names and files up among the 7-class
    models recorded under "multiclass" (their records carry ``class_names``).
    The default choice (``ref`` None) is always the best binary model.
    """
    out = out or output_dirs()
    saved = results.load_results(out.results)
    recorded = saved.get("models", {})
    if ref is None:
        present = {n: r for n, r in recorded.items() if (out.models / r.get("model_file", "")).is_file()}
        if not present:
            raise FileNotFoundError(f"No saved model in {out.models}: run `make reproduce` first, "
                                    "or pass --model PATH.")
        ref = max(present, key=lambda n: present[n]["validation"]["auc"])
    if include_multiclass:
        # A binary model keeps its name if both sections use it.
        recorded = {**saved.get("multiclass", {}), **recorded}
    if ref in recorded:
        return ref, out.models / recorded[ref]["model_file"], recorded[ref]
    path = Path(ref)
    if not path.is_file():
        known = ", ".join(sorted(recorded)) or "none recorded yet"
        raise FileNotFoundError(f"No model '{ref}': not a file, and not a model name in {out.results} "
                                f"(known: {known}).")
    record = next((r for r in recorded.values()
                   if (out.models / r.get("model_file", "")).resolve() == path.resolve()), {})
    return path.stem, path, record


def load_saved_model(ref: str | None = None, out: OutputDirs | None = None) -> SavedModel:
    import keras

    from . import models  # noqa: F401  registers the custom layers for loading

    name, path, record = resolve_model(ref, out)
    return SavedModel(name, path, record, keras.models.load_model(path))


def evaluate_folder(ref: str | None, data_dir: str | os.PathLike, *, n_resamples: int = 1000,
                    seed: int = 0, out: OutputDirs | None = None) -> dict[str, Any]:
    """Score a saved model on a labelled image folder (any layout the data layer reads).

    The threshold is the one chosen on the chain's validation split; nothing is
    tuned on the folder being scored.
    """
    from .training import predict_proba

    saved = load_saved_model(ref, out)
    read = data.read_dataset(data_dir)
    x, bad = data.load_images(read.table["path"].tolist(), saved.image_size)
    bad_paths = {p for p, _ in bad}
    table = read.table[~read.table["path"].isin(bad_paths)]
    y = table["label"].to_numpy(dtype=int)
    p = predict_proba(saved.model, x)
    threshold, how = saved.threshold
    metrics = evaluation.binary_metrics(y, p, threshold)
    ci = evaluation.bootstrap_auc_ci(y, p, n_resamples=n_resamples, seed=seed)
    skipped = [{"path": str(r.path), "reason": r.reason} for r in read.skipped.itertuples()]
    skipped += [{"path": str(path), "reason": reason} for path, reason in bad]
    return {"model": saved.name, "model_file": str(saved.path), "data": str(Path(data_dir).resolve()),
            **metrics, "auc_ci95": list(ci) if ci[0] is not None else None, "threshold_source": how,
            "skipped": skipped, "n_skipped": len(skipped)}


def format_evaluation(report: dict[str, Any]) -> str:
    """A short human-readable summary of ``evaluate_folder``'s report."""
    ci = report["auc_ci95"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"model {report['model']} on {report['data']}",
             f"images: {report['n']} ({report['n_pos']} malignant, {report['n_neg']} benign), "
             f"skipped: {report['n_skipped']}",
             f"ROC AUC {fmt(report['auc'])}" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""),
             f"threshold {report['threshold']:.3f} ({report['threshold_source']})"]
    for key in ("sensitivity", "specificity", "ppv", "npv", "balanced_accuracy", "f1", "accuracy"):
        lines.append(f"  {key:<18} {fmt(report[key])}")
    for item in report["skipped"]:
        lines.append(f"  skipped {item['path']}: {item['reason']}")
    return "\n".join(lines)
