"""Download a balanced benign/malignant set of dermoscopic images from the ISIC Archive.

The download itself is done by the official ``isic-cli`` (installed with the
project), run as a subprocess, once per class::

    isic image download --search 'diagnosis_1:"Benign" AND image_type:dermoscopic' --limit N/2 DIR

Each run writes ``metadata.csv``, ``attribution.txt``, ``licenses/`` and
``<isic_id>.jpg`` into its own folder; the two are then merged into one
isic-cli layout folder (default ``data/isic-archive/``) that
``helpers.data.read_dataset`` reads. Run from the command line as
``python -m helpers download --out data/isic-archive --limit 1000`` (``helpers.apps.download``);
``python -m helpers reproduce`` calls it by itself on a fresh machine.

Before fetching, a plan is printed: the two queries, how many images of how
many matching, where to, and how much. The size is not guessed: every image
the API's search returns carries its size in bytes (``files.full.size``, the
``FileOut`` schema of ``isic/core/api/image.py`` in ImageMarkup/isic), and
isic-cli walks that same search in the same order (``get_images`` in
``isic_cli/io/http.py``), so the sum over the first N results is the size of
the N images it will fetch. Only beyond ``PLAN_MAX_PAGES`` pages is it an
estimate (the mean size read so far times N), and the plan says so.

Resuming. A class whose isic-cli run ended with exit code 0 and wrote
``metadata.csv`` is marked done (``.isic-download-parts/<class>.done.json``,
written atomically) and is not fetched again on a rerun; an unfinished class
is fetched again into the same folder. That costs little: isic-cli 12.4
(``download_image`` in ``isic_cli/io/http.py``; ImageMarkup/isic-cli pull
request #8, "Skip existing files on download") skips an image whose file of
the same name already exists with the size the API reports, and writes each
image to ``.isic-partial.<pid>.*`` first, moving it into place when complete
(leftovers of a killed run are ignored here). It does not resume within one
image, and it does not report an image whose download failed (its thread
pool's results are never read): such an image is simply missing, so missing
ones are counted here and named. A completed download (``download.json``
present, same queries and limit) is reused as it is.

Provenance. After the merge, ``checksums.sha256`` (``sha256sum`` format,
sorted) holds a SHA-256 of every image, ``python -m helpers download --verify``
checks them again, and ``download.json`` records the images per class and the
count per ``copyright_license`` of ``metadata.csv`` (the licence texts are in
``licenses/``, the credits in ``attribution.txt``, both written by isic-cli).
"""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from .. import config
from ..atomic import atomic_path, exclusive_folder, read_json, write_json, write_text
from ..config import DATA_ENV_VAR, DEFAULT_DATA_DIR
from .checksums import CHECKSUMS, verify_checksums, write_checksums  # noqa: F401 (the CLI imports them from here)
from .images import IMAGE_SUFFIXES

API_URL = "https://api.isic-archive.com/api/v2/"
SEARCH_URL = API_URL + "images/search/"
DEFAULT_OUT = DEFAULT_DATA_DIR / "isic-archive"
DEFAULT_LIMIT = 1000
# isic-cli 12.x rejects the retired "diagnosis:" field; diagnosis_1 is the top
# level of the current hierarchical taxonomy (Benign / Malignant / Indeterminate).
QUERIES = {
    "benign": 'diagnosis_1:"Benign" AND image_type:dermoscopic',
    "malignant": 'diagnosis_1:"Malignant" AND image_type:dermoscopic',
}
PARTS_DIR = ".isic-download-parts"
DONE_SUFFIX = ".done.json"
MANIFEST = "download.json"
# The API's largest page (CursorPagination.max_page_size in ImageMarkup/isic),
# which is also the page isic-cli asks for; the plan reads at most this many pages per class.
SEARCH_PAGE_SIZE = 100
PLAN_MAX_PAGES = 10

Getter = Callable[[str, "dict | None"], dict]


class DownloadError(RuntimeError):
    """The download could not be done; the message says why and what to do instead."""


def check_connectivity(url: str = API_URL, timeout: float = 5.0) -> None:
    """Raise DownloadError unless the ISIC Archive API answers within ``timeout`` seconds."""
    import requests  # installed with isic-cli; imported here so the module loads without it

    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as error:
        raise DownloadError(
            f"no internet: cannot reach the ISIC Archive at {url} ({type(error).__name__}); "
            f"copy a data set into {DEFAULT_DATA_DIR} or set {DATA_ENV_VAR}"
        ) from error
    if response.status_code >= 500:
        raise DownloadError(
            f"the ISIC Archive at {url} answered HTTP {response.status_code}; try again later, "
            f"or copy a data set into {DEFAULT_DATA_DIR} or set {DATA_ENV_VAR}"
        )


def search_json(url: str, params: dict | None = None, timeout: float = 30.0) -> dict:
    """One page of the ISIC API's image search as JSON; any failure is a DownloadError naming the URL."""
    import requests

    try:
        response = requests.get(url, params=params, timeout=timeout)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as error:  # ValueError: not JSON
        raise DownloadError(f"the ISIC Archive search at {url} failed ({type(error).__name__}: {error}); "
                            "try again later") from error


def isic_command() -> list[str]:
    """How to start isic-cli: the ``isic`` script beside this Python, else ``python -m``.

    ``--no-version-check`` because 12.4 is the last isic-cli for Python 3.11:
    its start-up check would otherwise ask for an upgrade that cannot install
    here (and needs PyPI, a second host, to be reachable).
    """
    script = Path(sys.executable).with_name("isic.exe" if os.name == "nt" else "isic")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "isic_cli.cli"]
    return base + ["--no-version-check"]


def _run_subprocess(args: Sequence[str]) -> int:
    """Run isic-cli with its progress output on the terminal; stdin closed so it never prompts."""
    return subprocess.run(list(args), stdin=subprocess.DEVNULL, check=False).returncode


# ---------------------------------------------------------------------------
# The plan: what will be fetched, and how much
# ---------------------------------------------------------------------------


def _class_plan(query: str, wanted: int, get: Getter, collections: str | None = None) -> dict:
    """How many images match ``query``, how many will be fetched and their size in bytes.

    The size is the sum of ``files.full.size`` over the first results of the
    search, the images isic-cli fetches (see the module docstring); when more
    are wanted than ``PLAN_MAX_PAGES`` pages hold, the mean size of those read
    is scaled up and ``exact`` is False.
    """
    params = {"query": query, "limit": SEARCH_PAGE_SIZE, **({"collections": collections} if collections else {})}
    page = get(SEARCH_URL, params)
    query = query or f"collections={collections}"  # what the messages name
    try:
        matching = int(page["count"])
        to_fetch = min(wanted, matching)
        sizes: list[int] = []
        for pages_read in range(1, PLAN_MAX_PAGES + 1):
            sizes += [int(image["files"]["full"]["size"]) for image in page["results"]]
            if len(sizes) >= to_fetch or not page.get("next") or pages_read == PLAN_MAX_PAGES:
                break
            page = get(page["next"], None)
    except (KeyError, TypeError, ValueError) as error:
        raise DownloadError(f"the ISIC Archive answered the search {query!r} with an unexpected page "
                            f"({type(error).__name__}: {error}); the API may have changed") from error
    if matching == 0:
        raise DownloadError(f"the ISIC Archive has no images for {query!r}: the search syntax of the "
                            "archive may have changed (see `isic image download --help`)")
    sizes = sizes[:to_fetch]
    exact = len(sizes) == to_fetch
    n_bytes = sum(sizes) if exact else round(sum(sizes) / max(len(sizes), 1) * to_fetch)
    return {"query": query, "matching": matching, "to_fetch": to_fetch, "bytes": n_bytes, "exact": exact,
            "sized": len(sizes)}


def plan_download(per_class: dict[str, int], *, get: Getter = search_json) -> dict[str, dict]:
    """The plan of each class in ``per_class`` (label -> images wanted): see ``_class_plan``."""
    return {label: _class_plan(QUERIES[label], wanted, get) for label, wanted in per_class.items()}


def _size(n_bytes: float) -> str:
    """Bytes for a reader, in decimal units (1 MB = 10^6 bytes), as isic-cli prints them."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n_bytes < 1000:
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} TB"


def format_plan(plan: dict[str, dict], done: dict[str, dict], out_dir: Path, free_bytes: int | None) -> str:
    """What will be fetched, from where, to where and how much: printed before anything is fetched."""
    to_fetch = sum(p["to_fetch"] for p in plan.values())
    lines = [f"Plan: fetch {to_fetch:,} dermoscopic images from the ISIC Archive ({API_URL}) "
             f"with isic-cli into {out_dir}"]
    for label, record in done.items():
        lines.append(f"  {label:<10} already fetched ({record['n_images']:,} images), not fetched again")
    for label, p in plan.items():
        lines.append(f"  {label:<10} {p['to_fetch']:,} of {p['matching']:,} matching   {p['query']}")
    n_bytes = sum(p["bytes"] for p in plan.values())
    if all(p["exact"] for p in plan.values()):
        how = ("the sizes the ISIC API reports for exactly these images (files.full.size of the first "
               "search results, the ones isic-cli fetches)")
    else:
        sized = sum(p["sized"] for p in plan.values())
        how = (f"an estimate: the mean of the sizes the ISIC API reports for the first {sized:,} of them, "
               f"times {to_fetch:,}")
    lines.append(f"  size       {_size(n_bytes)}: {how}; plus metadata.csv, attribution.txt and licences "
                 "(a few kB)")
    if free_bytes is not None:
        lines.append(f"  disk       {_size(free_bytes)} free in {out_dir}")
    return "\n".join(lines)


def _check_disk(plan: dict[str, dict], parts: dict[str, Path], out_dir: Path) -> int | None:
    """Free bytes in ``out_dir``; DownloadError when the planned images cannot fit.

    Images already in a part folder (an interrupted run) are not fetched again
    by isic-cli, so they do not count against the space left.
    """
    try:
        free = shutil.disk_usage(out_dir).free
    except OSError:
        return None
    have = sum(p.stat().st_size for label in plan if parts[label].is_dir()
               for p in parts[label].iterdir() if p.is_file())
    needed = sum(p["bytes"] for p in plan.values()) - have
    if needed > free:
        raise DownloadError(f"not enough disk space in {out_dir}: the images need about {_size(needed)}, "
                            f"{_size(free)} are free. Free some space, or choose another folder (--out).")
    return free


# ---------------------------------------------------------------------------
# One class: fetched once, marked done
# ---------------------------------------------------------------------------


def _marker(out_dir: Path, label: str) -> Path:
    """Where the done marker of ``label`` lives: beside its part folder, never in it
    (everything in a part folder is moved into the data set by the merge)."""
    return out_dir / PARTS_DIR / f"{label}{DONE_SUFFIX}"


def _finished(out_dir: Path, label: str, wanted: int) -> dict | None:
    """The record of ``label``'s finished isic-cli run for this query and limit, else None.

    A marker of another query or limit (the user asked for more images) or an
    unreadable one does not count: the class is fetched again.
    """
    path = _marker(out_dir, label)
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except ValueError:
        return None
    return record if record.get("query") == QUERIES[label] and record.get("limit") == wanted else None


def _images_in(part: Path) -> dict[str, Path]:
    """isic_id -> image file directly in ``part``; isic-cli's unfinished ``.isic-partial.*`` files are not images."""
    return {p.stem: p for p in part.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES}


def listed_and_missing(part: Path) -> tuple[pd.DataFrame, list[str]]:
    """An isic-cli folder's metadata.csv (isic_id stripped) and the ids it lists with no image
    file: isic-cli does not report an image whose download failed."""
    listed = pd.read_csv(part / "metadata.csv", dtype=str, keep_default_na=False)
    listed["isic_id"] = listed["isic_id"].str.strip()
    present = _images_in(part)
    return listed, [i for i in listed["isic_id"] if i not in present]


def _fetch_class(label: str, wanted: int, part: Path, out_dir: Path,
                 run: Callable[[Sequence[str]], int], log: Callable[[str], None]) -> list[str]:
    """Run isic-cli for one class into ``part`` and mark it done; returns the command.

    The marker is written (atomically) only after exit code 0 and a
    metadata.csv: isic-cli writes metadata.csv after its last image, so a run
    killed earlier leaves none. Images it listed but did not write are named.
    """
    part.mkdir(parents=True, exist_ok=True)
    command = isic_command() + ["image", "download", "--search", QUERIES[label], "--limit", str(wanted), str(part)]
    code = run(command)
    if code != 0:
        raise DownloadError(
            f"isic-cli failed (exit code {code}) downloading {label} images: {' '.join(command)}\n"
            f"The images fetched so far are in {part}; run the same command again to resume "
            "(finished classes are kept, and isic-cli skips images already there).")
    csv_path = part / "metadata.csv"
    if not csv_path.is_file():
        raise DownloadError(f"isic-cli wrote no metadata.csv for the {label} images in {part}; "
                            "run the same command again to resume")
    listed, missing = listed_and_missing(part)
    ids = listed["isic_id"]
    if missing:
        log(f"warning: isic-cli listed {len(ids):,} {label} images in {csv_path} but wrote no file for "
            f"{len(missing):,} of them ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
            "they are left out of the data set")
    write_json(_marker(out_dir, label), {
        "label": label, "query": QUERIES[label], "limit": wanted, "exit_code": code,
        "n_listed": int(len(ids)), "n_images": int(len(ids) - len(missing)),
        "finished_at": _now(), "command": command,
    })
    return command


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------
# Merge, checksums, licences
# ---------------------------------------------------------------------------


def _merge_parts(parts: dict[str, Path], out_dir: Path) -> pd.DataFrame:
    """Move the images of every part into ``out_dir`` and write one metadata.csv etc.

    Rows already in ``out_dir/metadata.csv`` (an earlier download) are kept;
    an isic_id seen twice is kept once. Idempotent, so a merge cut short is
    finished by the next run (the part's metadata.csv stays until the end).
    """
    frames = []
    existing = out_dir / "metadata.csv"
    if existing.is_file():
        frames.append(pd.read_csv(existing, dtype=str, keep_default_na=False))
    attributions: list[str] = []
    if (out_dir / "attribution.txt").is_file():
        attributions += (out_dir / "attribution.txt").read_text(encoding="utf8").split("\n\n")
    for label, part in parts.items():
        csv_path = part / "metadata.csv"
        if not csv_path.is_file():
            raise DownloadError(f"isic-cli wrote no metadata.csv for the {label} images in {part}")
        frames.append(pd.read_csv(csv_path, dtype=str, keep_default_na=False))
        for image in _images_in(part).values():
            os.replace(image, out_dir / image.name)
        if (part / "attribution.txt").is_file():
            attributions += (part / "attribution.txt").read_text(encoding="utf8").split("\n\n")
        if (part / "licenses").is_dir():
            (out_dir / "licenses").mkdir(exist_ok=True)
            for licence in (part / "licenses").iterdir():
                shutil.copy2(licence, out_dir / "licenses" / licence.name)
    merged = pd.concat(frames, ignore_index=True).fillna("")
    merged = merged.drop_duplicates(subset="isic_id", keep="first")
    first = [c for c in ("isic_id", "attribution", "copyright_license") if c in merged]
    merged = merged[first + sorted(c for c in merged.columns if c not in first)]
    with atomic_path(existing) as tmp:
        merged.to_csv(tmp, index=False)
    unique = [a for a in dict.fromkeys(a.strip() for a in attributions) if a]
    write_text(out_dir / "attribution.txt", "\n\n".join(unique) + "\n")
    return merged


def licence_counts(merged: pd.DataFrame) -> dict[str, int]:
    """Images per ``copyright_license`` of metadata.csv (e.g. CC-0, CC-BY, CC-BY-NC), sorted by name."""
    if "copyright_license" not in merged:
        return {}
    values = merged["copyright_license"].replace("", "unknown")
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


# ---------------------------------------------------------------------------
# The whole download
# ---------------------------------------------------------------------------


def _exclusive(out_dir: Path):
    """One download per folder at a time (two would fetch into the same part folders)."""
    return exclusive_folder(out_dir, DownloadError(f"another download is writing to {out_dir}; wait for it to finish"))


def completed_download(out_dir: str | Path, per_class: dict[str, int] | None = None) -> dict | None:
    """The ``download.json`` of a finished download in ``out_dir`` (for these queries and,
    when given, these numbers per class), else None."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = read_json(path)
    except ValueError:
        return None
    if manifest.get("queries") != QUERIES:
        return None
    if per_class is not None and manifest.get("per_class_requested") != per_class:
        return None
    return manifest


def unfinished_download(out_dir: Path | None = None) -> bool:
    """True when ``out_dir`` holds the part folders of a first download of ours and no
    download.json: one that did not finish (the parts are removed once it is written)."""
    out_dir = Path(out_dir or DEFAULT_OUT)
    return (out_dir / PARTS_DIR).is_dir() and not (out_dir / MANIFEST).is_file()


def default_data_missing(data_dir: Path | None = None, out_dir: Path | None = None) -> bool:
    """True when the default data folder holds no data set: no files at all, or only an
    unfinished download into ``out_dir`` (its images are not a data set until the merge).

    Any other file counts as data, so a folder the user filled by hand (an
    isic-cli export without download.json, say) is never downloaded into.
    """
    data_dir = Path(data_dir or config.DEFAULT_DATA_DIR)
    out_dir = Path(out_dir or DEFAULT_OUT)
    if not data_dir.is_dir():
        return True
    ignored = out_dir if unfinished_download(out_dir) else None
    return not any(p.is_file() and (ignored is None or ignored not in p.parents) for p in data_dir.rglob("*"))


def _isic_cli_version() -> str | None:
    try:
        return package_metadata.version("isic-cli")
    except package_metadata.PackageNotFoundError:
        return None


def download_isic(out_dir: str | Path = DEFAULT_OUT, limit: int = DEFAULT_LIMIT, seed: int | None = None,
                  *, run: Callable[[Sequence[str]], int] | None = None,
                  check: Callable[[], None] = check_connectivity, get: Getter = search_json,
                  log: Callable[[str], None] = print) -> dict:
    """Download ``limit`` images, half benign and half malignant, into ``out_dir``.

    Prints the plan first, then a line per class (isic-cli draws its own
    progress bar). Resumes an interrupted download and reuses a finished one
    (module docstring). ``seed`` is recorded in ``download.json`` only: the ISIC
    search returns images in a fixed order, so the same call fetches the same
    images (while the archive does not change). ``run`` (default: isic-cli as a
    subprocess, ``_run_subprocess``), ``check`` and ``get`` (the search API)
    exist for tests. Raises DownloadError with a readable message on any failure.
    """
    run = run or _run_subprocess  # looked up now, so a test can replace it for a caller (reproduce)
    if limit < 2:
        raise DownloadError(f"--limit must be at least 2 (one image per class), got {limit}")
    out_dir = Path(out_dir).expanduser().resolve()
    if not out_dir.is_dir():  # nothing to resume or reuse: offline, leave no empty folder behind
        check()
        check = _checked
    out_dir.mkdir(parents=True, exist_ok=True)
    per_class = {"benign": limit // 2, "malignant": limit - limit // 2}
    with _exclusive(out_dir):
        manifest = completed_download(out_dir, per_class)
        if manifest is not None:
            log(f"{out_dir} already holds this download ({MANIFEST}, {manifest.get('n_images')} images): "
                f"reused, nothing fetched. `python -m helpers download --verify --out {out_dir}` checks its files.")
            return {"out_dir": str(out_dir), "n_images": manifest.get("n_images"), "reused": True,
                    "per_class": manifest.get("per_class"), "licenses": manifest.get("licenses"),
                    "per_class_requested": per_class}
        return _download(out_dir, per_class, limit, seed, run=run, check=check, get=get, log=log)


def _checked() -> None:
    """The connectivity check once it has passed."""


def _download(out_dir: Path, per_class: dict[str, int], limit: int, seed: int | None, *,
              run, check, get, log) -> dict:
    """Plan, fetch the classes not yet done, merge, hash, record; the caller holds the folder's lock."""
    parts = {label: out_dir / PARTS_DIR / label for label in QUERIES}
    done = {label: record for label in QUERIES if (record := _finished(out_dir, label, per_class[label]))}
    todo = {label: per_class[label] for label in QUERIES if label not in done}
    plan: dict[str, dict] = {}
    if todo:  # nothing to fetch (a merge cut short): no network needed
        check()
        plan = plan_download(todo, get=get)
        free = _check_disk(plan, parts, out_dir)
        log(format_plan(plan, done, out_dir, free))
    for position, label in enumerate(QUERIES, 1):
        where = f"{label} ({position}/{len(QUERIES)})"
        if label in done:
            log(f"{where}: already fetched ({done[label]['n_images']:,} images), not fetched again")
            continue
        log(f"fetching {where}: {plan[label]['to_fetch']:,} images ...")
        _fetch_class(label, per_class[label], parts[label], out_dir, run, log)
        done[label] = read_json(_marker(out_dir, label))
    merged = _merge_parts(parts, out_dir)
    n_images = write_checksums(out_dir)
    manifest = {
        "source": API_URL,
        "downloaded_at": _now(),
        "isic_cli": _isic_cli_version(),
        "limit": limit,
        "seed": seed,
        "queries": QUERIES,
        "per_class_requested": per_class,
        "per_class": {label: done[label]["n_images"] for label in QUERIES},
        "n_images": n_images,
        "n_metadata_rows": int(len(merged)),
        "licenses": licence_counts(merged),
        "checksums": CHECKSUMS,
        "plan": plan or None,
        "commands": [done[label]["command"] for label in QUERIES],
    }
    write_json(out_dir / MANIFEST, manifest)  # the download is complete from here on
    shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)
    return {"out_dir": str(out_dir), "n_images": n_images, "reused": False, "per_class": manifest["per_class"],
            "licenses": manifest["licenses"], "per_class_requested": per_class}
