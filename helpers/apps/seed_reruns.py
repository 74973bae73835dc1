"""Seed spread of the seven-class models: run notebook 5 again with further seeds.

Notebook 5 trains its two seven-class models (image, image + metadata) over many
cells that a reader follows step by step; repeating that recipe in a helper
would copy it. So the seed study (notebook 6) runs notebook 5 itself again with
papermill, with the parameters it last ran with and another seed, into a
scratch copy of the outputs (the split, the data report and results.json), and
keeps only the records it wrote. The chain's own models and files are never
touched.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import nbformat

from .. import results
from ..config import NOTEBOOKS_DIR, OutputDirs, output_dirs
from ..report.records import spread

MULTICLASS_NOTEBOOK = "5_Multiclass_and_Metadata.ipynb"
MODELS = ("lite0_7class", "lite0_7class_metadata")
# settings of a record that must match between the recorded run and a rerun (same recipe, same data);
# not the loss, which notebook 5 chooses on validation, so each seed chooses it again
SAME = ("image_size", "finetune_blocks", "pool_copies")


def executed_parameters(notebook: str, out: OutputDirs) -> tuple[dict[str, Any], str]:
    """The parameters ``notebook`` last ran with (papermill writes them into the
    executed notebook), from this run's copy, else the repository's; and where
    they were found. A notebook run by hand has none: its defaults are used."""
    # Named from its root: a chain stages in a temporary folder that is gone afterwards.
    for whose, root in (("this run's", out.root), ("the repository's", NOTEBOOKS_DIR.parent)):
        where = root / "notebooks" / notebook
        if where.exists():
            meta = nbformat.read(where, as_version=4).metadata.get("papermill", {})
            if "parameters" in meta:
                return dict(meta["parameters"]), f"{whose} notebooks/{notebook}"
    return {}, "the notebook's defaults (no executed copy with papermill parameters found)"


def rerun(notebook: str, seed: int, parameters: dict[str, Any], out: OutputDirs,
          run: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run ``notebook`` with ``seed`` into a scratch copy of ``out``; returns the
    results.json it wrote. ``run``: the notebook runner (``reproduce.run_notebooks``)."""
    if run is None:
        from .reproduce import ensure_kernel, run_notebooks
        kernel = ensure_kernel()

        def run(work, notebook, params):
            run_notebooks(work, notebooks=[notebook], parameters=params, kernel_name=kernel, log=lambda *a: None)
    with tempfile.TemporaryDirectory(prefix=f"seed-{seed}-") as scratch:
        work = output_dirs(Path(scratch))
        for f in (out.split, out.data_report, out.results):
            if f.exists():
                shutil.copy2(f, work.models / f.name)
        run(work.root, notebook, {**parameters, "seed": seed})
        return results.load_results(work.results)


def _mel(record: dict[str, Any], what: str) -> float | None:
    return record["test"].get("per_class", {}).get("mel", {}).get(what)


def multiclass_seed_study(repeats: int, out: OutputDirs | None = None, log: Callable[[str], None] = print,
                          run: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Notebook 5's models over ``repeats`` seeds: the recorded run and ``repeats - 1``
    reruns (seeds seed + 1, ...). Per model the validation and test balanced accuracy
    and melanoma recall and precision of every seed, and the metadata gain per seed."""
    out = out or output_dirs()
    recorded = results.load_results(out.results).get("multiclass", {})
    missing = [m for m in MODELS if m not in recorded]
    if missing:
        raise ValueError(f"{', '.join(missing)} not in {out.results}: run notebook 5 first.")
    parameters, source = executed_parameters(MULTICLASS_NOTEBOOK, out)
    first = int(recorded[MODELS[0]]["seed"])
    runs = {first: recorded}
    for seed in range(first + 1, first + repeats):
        log(f"notebook 5 with seed {seed} ...")
        section = rerun(MULTICLASS_NOTEBOOK, seed, parameters, out, run).get("multiclass", {})
        for m in MODELS:
            differ = {k: (recorded[m].get(k), section.get(m, {}).get(k)) for k in SAME
                      if recorded[m].get(k) != section.get(m, {}).get(k)}
            if differ:
                raise ValueError(f"notebook 5 with seed {seed} trained {m} differently from the recorded run "
                                 f"({differ}); parameters from {source}. Rerun notebook 5, then this study.")
        runs[seed] = section
    study: dict[str, Any] = {"seeds": list(runs), "parameters_from": source, "rerun_parameters": parameters}
    for m in MODELS:
        per = {"validation_balanced_accuracy": [r[m]["validation"]["balanced_accuracy"] for r in runs.values()],
               "test_balanced_accuracy": [r[m]["test"]["balanced_accuracy"] for r in runs.values()],
               "test_mel_recall": [_mel(r[m], "recall") for r in runs.values()],
               "test_mel_precision": [_mel(r[m], "precision") for r in runs.values()],
               "epochs_run": [r[m].get("epochs_run") for r in runs.values()],
               "loss": [(r[m].get("loss") or {}).get("loss") for r in runs.values()]}
        study[m] = {**per, "test": spread(per["test_balanced_accuracy"]),
                    "validation": spread(per["validation_balanced_accuracy"])}
    gains = [r.get("metadata_gain", {}) for r in runs.values()]
    study["metadata_gain"] = {"test": [g.get("difference") for g in gains],
                              "test_ci95": [g.get("ci95") for g in gains],
                              "validation": [g.get("validation_difference") for g in gains]}
    cis = [c for c in study["metadata_gain"]["test_ci95"] if c]
    study["metadata_gain"]["test_ci_above_zero"] = sum(1 for c in cis if c[0] > 0)
    study["metadata_gain"]["test_ci_below_zero"] = sum(1 for c in cis if c[1] < 0)
    for part in ("test", "validation"):
        known = [v for v in study["metadata_gain"][part] if v is not None]
        if known:
            study["metadata_gain"][f"{part}_summary"] = spread(known)
    return study
