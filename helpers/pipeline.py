"""Run the notebook chain with papermill, in order, as one reproducible job.

A run writes into a staging folder first. Only when every notebook has run is
its output moved into place (notebooks, figures, models, results.json,
Presentation.pdf), so a failed run leaves the previous good artefacts intact.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import results
from .config import NOTEBOOKS, NOTEBOOKS_DIR, OUTPUT_ENV_VAR, REPO_ROOT, output_dirs

KERNEL_NAME = "skin-lesion"


class ChainError(RuntimeError):
    """A notebook of the chain failed; the message names it."""


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Register a Jupyter kernel for this interpreter (idempotent), so papermill
    runs the notebooks with the same environment as the caller."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().find_kernel_specs().get(name)
    if spec is None or not Path(spec, "kernel.json").read_text().count(sys.executable):
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
                        "--display-name", f"Python 3 ({name})"], check=True, capture_output=True)
    return name


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebooks(work: Path, *, notebooks: Sequence[str], parameters: dict[str, Any],
                  kernel_name: str, log=print) -> dict[str, float]:
    """Execute ``notebooks`` in order with their outputs going to ``work``; returns wall times.

    Each time is recorded in results.json as soon as its notebook ends, so a
    later notebook (the main one) can report the run it belongs to.
    """
    import papermill as pm

    (work / "notebooks").mkdir(parents=True, exist_ok=True)
    timings = {}
    # TF_CPP_MIN_LOG_LEVEL: TensorFlow's C++ start-up chatter is not for readers.
    with _env(**{OUTPUT_ENV_VAR: str(work), "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}):
        for nb in notebooks:
            log(f"[reproduce] {nb} ...")
            start = time.perf_counter()
            try:
                pm.execute_notebook(NOTEBOOKS_DIR / nb, work / "notebooks" / nb, parameters=parameters,
                                    kernel_name=kernel_name, cwd=str(NOTEBOOKS_DIR), progress_bar=False,
                                    log_output=False)
            except Exception as exc:  # papermill raises its own error type, nbclient others
                raise ChainError(f"notebook {nb} failed: {type(exc).__name__}: {str(exc)[-3000:]}") from exc
            timings[nb] = round(time.perf_counter() - start, 1)
            results.update_results({"timings": {nb: timings[nb]}}, output_dirs(work).results)
            log(f"[reproduce] {nb} done in {timings[nb]:.0f} s")
    return timings


def _export_best(out, data_dir: str | None, log) -> None:
    """TFLite export of the best model, checked against Keras and timed (results: "deployment")."""
    from .tflite_export import export_best_and_benchmark

    try:
        deployment = export_best_and_benchmark(out, data_dir)
    except FileNotFoundError as exc:  # e.g. `--notebooks 1`: no saved model or split yet
        log(f"[reproduce] TFLite export skipped: {exc}")
        return
    log(f"[reproduce] TFLite export of {deployment['model']} checked and timed in {deployment['seconds']:.0f} s")


def _readme_predict_example(root: Path, data_dir: str | None, log) -> None:
    """README's `predict` example: real output of the best model on the first
    malignant image of the cleaned test split."""
    from .config import resolve_data_dir
    from .predict import format_text, load_predictor, predict_paths
    from .workflow import load_split_table

    out = output_dirs(root)
    try:
        data_root = resolve_data_dir(data_dir)
        table = load_split_table(data_dir, out)
    except FileNotFoundError as exc:
        log(f"[reproduce] README predict example not updated: {exc}")
        return
    path = sorted(table.loc[(table["split"] == "test") & (table["label"] == 1), "path"])[0]
    predictor = load_predictor(None, out)
    predictions, _ = predict_paths(predictor, [path])
    shown = os.path.relpath(path, data_root)
    text = format_text(predictor, predictions).replace(str(root) + "/", "").replace(str(data_root) + "/", "")
    block = f"```console\n$ python -m helpers predict $SKIN_DATA_DIR/{shown}\n{text.rstrip()}\n```\n"
    results.replace_readme_block(root / "README.md", "predict", block)


def _promote(work: Path, root: Path, prune: bool) -> None:
    """Move every file of a finished run from ``work`` into ``root``.

    ``prune`` (a full run): figures and models the run did not produce are
    stale and removed, so nothing from an older run is mistaken for this one's.
    """
    produced = {p.relative_to(work) for p in work.rglob("*") if p.is_file()}
    if prune:
        for folder in ("images", "saved_models"):
            for old in (root / folder).glob("*"):
                if old.is_file() and old.relative_to(root) not in produced:
                    old.unlink()
    for rel in sorted(produced):
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / rel, dest)


def reproduce(*, quick: bool = False, data_dir: str | None = None, output_dir: str | None = None,
              notebooks: Sequence[str] | None = None, parameters: dict[str, Any] | None = None,
              log=print) -> dict[str, Any]:
    """Run the chain and return the final results.

    With ``output_dir`` everything (executed notebooks included) is written
    there and the repository is left untouched; otherwise the run is staged and
    then moved into the repository, and README's results table is regenerated.
    """
    from .report import build_presentation

    notebooks = list(notebooks or NOTEBOOKS)
    params = {"quick": quick, **({"data_dir": str(data_dir)} if data_dir else {}), **(parameters or {})}
    kernel = ensure_kernel()
    in_repo = output_dir is None
    full_run = notebooks == list(NOTEBOOKS)
    if in_repo:
        work = Path(tempfile.mkdtemp(prefix=".run-", dir=REPO_ROOT))
        if not full_run:
            # A partial rerun (say notebook 3 alone) must find what earlier notebooks saved.
            shutil.copytree(REPO_ROOT / "saved_models", work / "saved_models", dirs_exist_ok=True)
    else:
        work = Path(output_dir).resolve()
    out = output_dirs(work)
    try:
        start = time.perf_counter()
        results.update_results({"run": results.run_info(quick)}, out.results)
        run_notebooks(work, notebooks=notebooks, parameters=params, kernel_name=kernel, log=log)
        _export_best(out, data_dir, log)
        final = results.update_results(
            {"run": {"chain_seconds": round(time.perf_counter() - start, 1),
                     "chain_notebooks": notebooks}}, out.results)
        build_presentation(final, out.images, work / "Presentation.pdf")
        if in_repo:
            _promote(work, REPO_ROOT, prune=full_run)
            results.update_readme(REPO_ROOT / "README.md", final)
            _readme_predict_example(REPO_ROOT, data_dir, log)
            log("[reproduce] notebooks, figures, models, results.json, Presentation.pdf and README updated")
        return final
    finally:
        if in_repo and work.exists():
            # Keep a failed run's executed notebooks for inspection, drop the rest.
            failed = work / "notebooks"
            if any(failed.glob("*.ipynb")):
                keep = REPO_ROOT / ".last-failed-run"
                shutil.rmtree(keep, ignore_errors=True)
                shutil.move(str(failed), keep)
                log(f"[reproduce] the run failed; its executed notebooks are in {keep}. "
                    "Previous notebooks, models and results were left in place.")
            shutil.rmtree(work, ignore_errors=True)
