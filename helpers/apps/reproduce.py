"""`python -m helpers reproduce`: run the notebook chain with papermill, in order, as one job.

On a fresh machine (no data in data/ and no data folder named) it first fetches
the default data set from the ISIC Archive (``find_or_fetch_data``, unless
``--no-download``).

Where a run writes (the repository, or ``--output-dir``) is called its root. A
run never writes into the root directly:

1. it stages everything in ``<root>/.run-XXXX/`` (executed notebooks, figures,
   models, results.json, the deck, and in the repository README.md);
2. when every notebook has run, the best model is exported to TFLite, the web
   page is load-tested (``serve --load-test``) and the
   deck is built, it writes ``PROMOTE.json`` into the staging folder
   (atomically): the list of files to move into the root and, for a whole
   chain, the stale files to remove. From that moment the run is complete;
3. it moves the files one by one (each move atomic) and removes the staging folder.

The next run (``recover``) finishes a promotion that was interrupted after
step 2 and deletes a staging folder that never reached it. So a run killed at
any point, even by SIGKILL, leaves the last complete run in the root, and no
stray folder that the next run does not clean up. A failed notebook is named;
the executed notebooks of the failed run are kept in ``<root>/.last-failed-run/``.
Two runs on one root at once are refused (an exclusive lock on the root folder).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import nbformat
import papermill as pm
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from traitlets.config import Config

from .. import config, results
from ..atomic import exclusive_folder, read_json, write_json
from ..config import (DATA_ENV_VAR, DEVICE_SETTINGS, DEVICES_ENV_VAR, FULL, HAM_ENV_VAR, HOW_TO_GET_DATA,
                      NOTEBOOKS, NOTEBOOKS_DIR, OUTPUT_ENV_VAR, PAGE_LOAD_TEST, PAGE_LOAD_TEST_QUICK, REPO_ROOT,
                      DataNotFoundError, output_dirs, resolve_data_dir)
from ..data import collection
from ..data import download as fetch
from ..data.arrays import load_split_table
from ..report.slides import build_presentation, headline_record
from ..report.tables import replace_readme_block, update_readme
from . import progress

KERNEL_NAME = "skin-lesion"
MAIN_NOTEBOOK = "Project_Main_Notebook.ipynb"  # last: reads what the others wrote, trains nothing
STAGING_PREFIX = ".run-"
PROMOTE_FILE = "PROMOTE.json"
FAILED_DIR = ".last-failed-run"
# Folders whose files a whole-chain run replaces: what it did not produce is stale,
# except a clinic's own threshold (``calibrate``), which is the user's, not the chain's,
# the web page's screenshot, which its browser test takes (tests/apps/test_serve.py), and the
# input benchmark, measured by hand on an idle machine (helpers/apps/stream_benchmark.py).
PRUNED = ("images", "saved_models")
KEPT = ("*.clinic.json", "web_page.png", "streaming_benchmark.json", "streaming_benchmark.png")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Code and outputs travel between papermill and the kernel over local TCP: with CurveZMQ keys
# provisioned by the kernel manager (the kernelspec ipykernel writes declares support) they are
# encrypted, and ipykernel no longer warns at every kernel start that they are not.
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}}) if zmq.has("curve") else Config()


class ChainError(RuntimeError):
    """A notebook of the chain failed; the message names it."""


class UsageError(ValueError):
    """The run cannot start as asked (no such notebook, an output folder that is a file, ...)."""


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Register a Jupyter kernel for this interpreter (idempotent), so papermill
    runs the notebooks with the same environment as the caller.

    The interpreter is named by its environment's real folder, so reaching the
    same venv through a link does not register it again under another path.
    """
    python = Path(sys.prefix).resolve() / "bin" / Path(sys.executable).name
    python = str(python if python.exists() else sys.executable)
    spec = KernelSpecManager().find_kernel_specs().get(name)
    if spec is None or python not in json.loads(Path(spec, "kernel.json").read_text())["argv"]:
        subprocess.run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
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


def select_notebooks(patterns: Sequence[str] | None) -> list[str]:
    """The chain's notebooks whose names start with one of ``patterns`` (all for None).

    An empty list of patterns, or one that matches no notebook, is a usage error
    naming the notebooks: running the whole chain instead would overwrite a
    full run's outputs by mistake.
    """
    if patterns is None:
        return list(NOTEBOOKS)
    chosen = [nb for nb in NOTEBOOKS if any(nb.startswith(p) for p in patterns)]
    unmatched = [p for p in patterns if not any(nb.startswith(p) for nb in NOTEBOOKS)]
    if not patterns or unmatched:
        what = f"no notebook starts with {', '.join(map(repr, unmatched))}" if unmatched else "no notebook named"
        raise UsageError(f"--notebooks: {what}. The notebooks are:\n  " + "\n  ".join(NOTEBOOKS))
    return chosen


def declared_parameters(notebook: Path) -> set[str]:
    """The names in a notebook's cell tagged ``parameters``."""
    return set(pm.inspect_notebook(str(notebook)))


def run_notebooks(work: Path, *, notebooks: Sequence[str], parameters: dict[str, Any],
                  kernel_name: str, log=print, per_notebook: dict[str, dict[str, Any]] | None = None
                  ) -> dict[str, float]:
    """Execute ``notebooks`` in order with their outputs going to ``work``; returns wall times.

    Each notebook gets only the ``parameters`` its parameters cell declares (those of
    ``per_notebook[nb]`` over the shared ones, e.g. the ``full`` setting); its
    progress (cell, section, time so far and left) is logged as it runs (``progress``).
    Each time is recorded in results.json as soon as its notebook ends, so a
    later notebook (the main one) can report the run it belongs to.
    """
    (work / "notebooks").mkdir(parents=True, exist_ok=True)
    timings, finished = {}, []
    # TF_CPP_MIN_LOG_LEVEL: TensorFlow's C++ start-up chatter is not for readers.
    with _env(**{OUTPUT_ENV_VAR: str(work), "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}):
        for nb in notebooks:
            log(f"[reproduce] {nb} ...")
            start = time.perf_counter()
            declared = declared_parameters(NOTEBOOKS_DIR / nb)
            given = {**parameters, **(per_notebook or {}).get(nb, {})}
            previous = progress.previous_durations(nbformat.read(NOTEBOOKS_DIR / nb, 4))
            engine = progress.register(nb, previous, log, speed=progress.chain_speed(finished))
            try:
                pm.execute_notebook(NOTEBOOKS_DIR / nb, work / "notebooks" / nb,
                                    parameters={k: v for k, v in given.items() if k in declared},
                                    kernel_name=kernel_name, cwd=str(NOTEBOOKS_DIR), progress_bar=False,
                                    log_output=False, engine_name=engine, config=KERNEL_CONFIG)
            except Exception as exc:  # papermill raises its own error type, nbclient others
                raise ChainError(f"notebook {nb} failed: {type(exc).__name__}: {str(exc)[-3000:]}") from exc
            timings[nb] = round(time.perf_counter() - start, 1)
            finished.append((timings[nb], previous))
            results.update_results({"timings": {nb: timings[nb]}}, output_dirs(work).results)
            log(f"[reproduce] {nb} done in {timings[nb]:.0f} s")
    return timings


def _export_best(out, data_dir: str, log) -> None:
    """TFLite export of the best model, checked against Keras and timed (results: "deployment")."""
    from .tflite import export_best_and_benchmark  # TensorFlow: only when the chain gets this far

    try:
        deployment = export_best_and_benchmark(out, data_dir)
    except FileNotFoundError as exc:  # e.g. `--notebooks 1`: no saved model or split yet
        log(f"[reproduce] TFLite export skipped: {exc}")
        return
    log(f"[reproduce] TFLite export of {deployment['model']} checked and timed in {deployment['seconds']:.0f} s")


def _benchmark_page(out, data_dir: str, quick: bool, log) -> None:
    """The web page's load test on 127.0.0.1 (results: "web_page"), in its own process
    as a user would start the page."""
    if results.best_on_validation(results.load_results(out.results).get("models", {}), models_dir=out.models) is None:
        log("[reproduce] web page load test skipped: no saved binary model (e.g. `--notebooks 1`)")
        return
    load = PAGE_LOAD_TEST_QUICK if quick else PAGE_LOAD_TEST
    command = [sys.executable, "-m", "helpers", "serve", "--load-test", "--record", "--data-dir", data_dir,
               "--clients", str(load["clients"]), "--requests", str(load["requests"]), "--port", str(_free_port())]
    with _env(**{OUTPUT_ENV_VAR: str(out.root), "GRADIO_TEMP_DIR": str(out.root / ".gradio")}):
        done = subprocess.run(command, capture_output=True, text=True)
    shutil.rmtree(out.root / ".gradio", ignore_errors=True)
    if done.returncode == 2:  # no binary model or no image (e.g. `--notebooks 1`)
        log(f"[reproduce] web page load test skipped: {done.stderr.strip()[-500:]}")
        return
    if done.returncode != 0 and "serve: " not in done.stdout:
        raise ChainError(f"the web page load test failed: {done.stderr[-3000:]}")
    log(f"[reproduce] {done.stdout.strip().splitlines()[0] if done.stdout.strip() else 'web page load test done'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _readme_predict_example(readme: Path, root: Path, data_dir: str, log) -> None:
    """README's `predict` example: real output of the best model on the first
    malignant image of the cleaned test split (the run's files in ``root``)."""
    from ..models.saved import load_predictor  # TensorFlow: only when the chain gets this far
    from .predict import format_text, predict_paths  # imports TensorFlow too

    out = output_dirs(root)
    try:
        table = load_split_table(data_dir, out)
        predictor = load_predictor(None, out, use_clinic=False)
    except FileNotFoundError as exc:
        log(f"[reproduce] README predict example not updated: {exc}")
        return
    # The split holds both archives; the example is from the data folder the README's command names.
    in_data_dir = table["path"].map(lambda p: Path(p).resolve().is_relative_to(Path(data_dir).resolve()))
    path = sorted(table.loc[(table["split"] == "test") & (table["label"] == 1) & in_data_dir, "path"])[0]
    predictions, _ = predict_paths(predictor, [path])
    shown = os.path.relpath(path, data_dir)
    text = format_text(predictor, predictions).replace(str(root) + "/", "").replace(str(data_dir) + "/", "")
    block = f"```console\n$ python -m helpers predict $SKIN_DATA_DIR/{shown}\n{text.rstrip()}\n```\n"
    replace_readme_block(readme, "predict", block)


# ---------------------------------------------------------------------------
# Staging, promotion, recovery
# ---------------------------------------------------------------------------

def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def promote(work: Path, root: Path, prune: bool) -> None:
    """Make the finished run in ``work`` the root's run (see the module docstring).

    ``prune`` (a whole chain): files in the root's images/ and saved_models/
    that this run did not produce are stale and removed, so nothing from an
    older run is mistaken for this one's.
    """
    produced = [f for f in _files(work) if f != PROMOTE_FILE]
    stale = [str(p.relative_to(root)) for folder in PRUNED if prune for p in sorted((root / folder).glob("*"))
             if p.is_file() and str(p.relative_to(root)) not in produced and not any(p.match(k) for k in KEPT)]
    write_json(work / PROMOTE_FILE, {"move": produced, "remove": stale})  # the commit point
    _finish_promotion(work, root)


def _finish_promotion(work: Path, root: Path) -> None:
    """Carry out (or carry on with) the promotion ``work/PROMOTE.json`` describes; idempotent."""
    plan = read_json(work / PROMOTE_FILE)
    for rel in plan["remove"]:
        (root / rel).unlink(missing_ok=True)
    for rel in plan["move"]:
        if (work / rel).is_file():  # not yet moved by an interrupted promotion
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(work / rel, root / rel)
    shutil.rmtree(work)


def recover(root: Path, log=print) -> None:
    """Finish the promotion of a run that was killed after its commit point, and
    delete the staging folders of runs that never reached it."""
    for work in sorted(root.glob(f"{STAGING_PREFIX}*")):
        if not work.is_dir():
            continue
        if (work / PROMOTE_FILE).is_file():
            log(f"[reproduce] finishing the promotion of an interrupted run ({work.name})")
            _finish_promotion(work, root)
        else:
            log(f"[reproduce] removing the staging folder of an unfinished run ({work.name})")
            shutil.rmtree(work)


def _exclusive(root: Path):
    """Hold an exclusive lock on the root folder for the run (released even on SIGKILL)."""
    return exclusive_folder(root, UsageError(f"another `reproduce` is writing to {root}; wait for it to finish"))


def _prepare_root(output_dir: str | os.PathLike | None) -> Path:
    """The run's root: the repository, or ``output_dir`` (relative to the current
    directory), created when missing; a clear UsageError when it cannot be."""
    if output_dir is None:
        return REPO_ROOT
    root = Path(output_dir).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--output-dir {root} is a file, not a folder: give a folder (it is created if missing)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise UsageError(f"--output-dir {root} cannot be written: {exc.strerror or exc}") from exc
    return root


# ---------------------------------------------------------------------------
# Data: found, or on a fresh machine fetched
# ---------------------------------------------------------------------------

def find_or_fetch_data(data_dir: str | os.PathLike | None = None, *, download: bool = False,
                       log: Callable[..., None] = print) -> Path:
    """The data folder (``resolve_data_dir``); with ``download``, a fresh machine's data is fetched first.

    Only the default place (data/) is ever filled, and only when it holds no
    data set, or just an unfinished download (which is then resumed): a folder
    the user named (``data_dir``, $SKIN_DATA_DIR) that is wrong stays an
    error, since fetching a thousand images into a mistyped path helps nobody.
    A fetch that cannot start or fails says why, with the usual instructions
    (a DataNotFoundError, so the exit code stays "could not start"). When data/
    holds the set fetched here, the HAM10000 collection is fetched into
    data/ham10000 too unless a HAM10000 folder is found (``data.collection``).
    """
    if data_dir or os.environ.get(DATA_ENV_VAR) or not fetch.default_data_missing():
        root = resolve_data_dir(data_dir)
        if download and _fetched_here(root):
            _find_or_fetch_ham10000(root, log)  # a first fetch of HAM10000 cut short: resumed
        return root
    how = HOW_TO_GET_DATA.format(default=config.DEFAULT_DATA_DIR)
    if not download:
        if fetch.unfinished_download(fetch.DEFAULT_OUT):
            raise DataNotFoundError(
                f"{fetch.DEFAULT_OUT} holds an unfinished download (no {fetch.MANIFEST} yet): run without "
                f"--no-download, or `python -m helpers download`, to finish it.\n{how}")
        return resolve_data_dir(None)  # raises, saying how to get data
    log(f"[reproduce] no data set in {config.DEFAULT_DATA_DIR} (and no --data-dir or ${DATA_ENV_VAR}): "
        "fetching the default one from the ISIC Archive first (--no-download: stop here instead)")
    try:
        fetch.download_isic(fetch.DEFAULT_OUT, fetch.DEFAULT_LIMIT,
                            log=lambda text: log("\n".join(f"[reproduce] {line}" for line in text.splitlines())))
    except fetch.DownloadError as error:
        raise DataNotFoundError(
            f"No data set in {config.DEFAULT_DATA_DIR}, and the default one could not be fetched from the "
            f"ISIC Archive: {error}\n{how}") from error
    root = resolve_data_dir(None)
    _find_or_fetch_ham10000(root, log)
    return root


def _fetched_here(root: Path) -> bool:
    """True when ``root`` is the default data folder holding the set this project fetched."""
    return root == Path(config.DEFAULT_DATA_DIR).resolve() and fetch.completed_download(fetch.DEFAULT_OUT) is not None


def _find_or_fetch_ham10000(root: Path, log: Callable[..., None]) -> None:
    """On a machine whose data this project fetched, HAM10000 too (notebook 5 trains on it, and
    notebooks 1-4 and 7 score every model on it), unless a HAM10000 folder is found."""
    try:
        config.resolve_ham_dir(None, root)
        return
    except DataNotFoundError:
        pass
    target = Path(config.DEFAULT_DATA_DIR) / config.HAM_DIR_NAME
    log(f"[reproduce] no HAM10000 folder (and no ${HAM_ENV_VAR}): fetching the {collection.HAM10000} collection "
        f"of the ISIC Archive into {target} (--no-download: stop here instead)")
    try:
        collection.download_collection(collection.HAM10000, target,
                                       log=lambda text: log(f"[reproduce] {text}"))
    except fetch.DownloadError as error:
        raise DataNotFoundError(
            f"HAM10000, which notebook 5 trains on, could not be fetched from the ISIC Archive: {error}\n"
            f"Run `python -m helpers download --collection HAM10000` when online, or set ${HAM_ENV_VAR} to a "
            "HAM10000 folder (HAM10000_metadata.csv and the images; Harvard Dataverse doi:10.7910/DVN/DBW86T)."
        ) from error


def reproduce(*, quick: bool = False, data_dir: str | os.PathLike | None = None,
              output_dir: str | os.PathLike | None = None, notebooks: Sequence[str] | None = None,
              parameters: dict[str, Any] | None = None, download: bool = False, full: bool = False,
              devices: str | None = None, log: Callable[..., None] = print) -> dict[str, Any]:
    """Run the chain and return the final results.

    ``data_dir`` (else $SKIN_DATA_DIR, else data/) and ``output_dir`` are
    relative to the current directory; the notebooks get absolute paths.
    ``download``: when none of these holds data, fetch the default data set
    into data/ first (``find_or_fetch_data``; the command line does, unless
    ``--no-download``). Without ``output_dir`` the run is promoted into the
    repository and README's generated blocks are rewritten; with it, everything
    (executed notebooks included) goes there and the repository is left untouched.
    ``full``: the larger images and longer training of ``config.FULL`` (for a GPU;
    with ``quick`` too, the quick caps still apply). ``devices`` (else $SKIN_DEVICES,
    else "auto"): how the notebooks train (``training.devices``).
    """
    notebooks = list(notebooks if notebooks is not None else NOTEBOOKS)
    devices = devices or os.environ.get(DEVICES_ENV_VAR) or "auto"
    if devices not in DEVICE_SETTINGS:  # before a download too
        raise UsageError(f"unknown --devices {devices!r}: one of {', '.join(DEVICE_SETTINGS)}")
    root = _prepare_root(output_dir)  # before a download: a bad --output-dir should not wait for one
    data_root = find_or_fetch_data(data_dir, download=download, log=log)
    in_repo = output_dir is None
    whole_chain = notebooks == list(NOTEBOOKS)
    # Absolute paths for the kernels, which run in notebooks/: a relative path means the caller's folder.
    env = {DATA_ENV_VAR: str(data_root)}
    if os.environ.get(HAM_ENV_VAR):
        env[HAM_ENV_VAR] = str(Path(os.environ[HAM_ENV_VAR]).expanduser().resolve())
    # The data folder reaches the notebooks through the environment, so the executed notebooks do not
    # carry this machine's paths; notebook parameters stay what a reader would set by hand.
    params = {"quick": quick, **(parameters or {})}
    per_notebook = FULL if full else None
    env[DEVICES_ENV_VAR] = devices
    kernel = ensure_kernel()
    with _exclusive(root), _env(**env):
        recover(root, log)
        work = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        out = output_dirs(work)
        # Executed notebooks of earlier runs, staged only to be read: notebook 6 reruns notebook 5
        # with the parameters papermill wrote into it. Never promoted back or kept as this run's,
        # so an edit made to one while this run goes on survives it.
        borrowed: list[Path] = []
        try:
            if not whole_chain:
                # A partial rerun (say notebook 3 alone) must find what earlier notebooks saved: their
                # records and models, and their figures, which the main notebook and the deck show.
                for folder, into in (("saved_models", out.models), ("images", out.images)):
                    if (root / folder).is_dir():
                        shutil.copytree(root / folder, into, dirs_exist_ok=True)
                (work / "notebooks").mkdir(exist_ok=True)
                for earlier in sorted((root / "notebooks").glob("*.ipynb")):
                    if earlier.name not in notebooks:
                        borrowed.append(Path(shutil.copy2(earlier, work / "notebooks" / earlier.name)))
            start = time.perf_counter()
            info = results.run_info(quick, full=full, devices=devices)
            if whole_chain:
                results.update_results({"run": info}, out.results)
            run_notebooks(work, notebooks=[nb for nb in notebooks if nb != MAIN_NOTEBOOK], parameters=params,
                          kernel_name=kernel, log=log, per_notebook=per_notebook)
            _export_best(out, str(data_root), log)
            _benchmark_page(out, str(data_root), quick, log)
            if MAIN_NOTEBOOK in notebooks:  # after the export, so it can show the deployment record
                run_notebooks(work, notebooks=[MAIN_NOTEBOOK], parameters=params, kernel_name=kernel, log=log)
            for f in borrowed:
                f.unlink()
            seconds = round(time.perf_counter() - start, 1)
            if whole_chain:
                final = results.update_results({"run": {"chain_seconds": seconds, "chain_notebooks": notebooks}},
                                               out.results)
            else:  # the whole run's commit and chain time still describe the results not remade
                final = results.record_partial_rerun({**info, "notebooks": notebooks, "seconds": seconds},
                                                     out.results)
            # Replaced whole, so no stale key of an earlier run survives: where the time went (papermill's
            # time per cell) and the derived numbers the summary and the deck lead with.
            # A partial rerun's notebooks from this run, the others from the run they came from.
            final["profile"] = (progress.chain_profile(work / "notebooks", notebooks) if whole_chain else
                                progress.chain_profile([work / "notebooks", root / "notebooks"], NOTEBOOKS))
            final = {**final, "headline": headline_record(final)}
            write_json(out.results, final)
            build_presentation(final, out.images, work / "Presentation.pdf")
            if in_repo:
                shutil.copy2(REPO_ROOT / "README.md", work / "README.md")
                update_readme(work / "README.md", final)
                _readme_predict_example(work / "README.md", work, str(data_root), log)
        except BaseException:
            for f in borrowed:
                f.unlink(missing_ok=True)
            failed = work / "notebooks"
            if any(failed.glob("*.ipynb")):
                keep = root / FAILED_DIR
                shutil.rmtree(keep, ignore_errors=True)
                shutil.move(str(failed), keep)
                log(f"[reproduce] the run failed; its executed notebooks are in {keep}. "
                    "The previous run's notebooks, models and results were left in place.")
            shutil.rmtree(work, ignore_errors=True)
            raise
        promote(work, root, prune=whole_chain)
        shutil.rmtree(root / FAILED_DIR, ignore_errors=True)  # the last run succeeded
    log(f"[reproduce] the run is in {root}"
        + (" (notebooks, figures, models, results.json, Presentation.pdf and README)" if in_repo else ""))
    return final


def run_reproduce(args: argparse.Namespace) -> int:
    """``python -m helpers reproduce``: exit code 0 when the chain ran, 1 when a notebook
    failed, 2 when it could not start (no data and none could be fetched, no such notebook,
    an unusable output folder)."""
    try:
        notebooks = select_notebooks(args.notebooks)
        final = reproduce(quick=args.quick, data_dir=args.data_dir, output_dir=args.output_dir,
                          notebooks=notebooks, download=not args.no_download, full=args.full,
                          devices=args.devices)
    except (DataNotFoundError, UsageError) as exc:
        print(f"[reproduce] {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChainError as exc:
        print(f"[reproduce] FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    run = final["run"]  # a whole run starts a fresh results.json, so partial_reruns means this run was one
    seconds = run["partial_reruns"][-1]["seconds"] if run.get("partial_reruns") else run["chain_seconds"]
    print(f"[reproduce] done in {seconds / 60:.1f} min")
    return EXIT_OK
