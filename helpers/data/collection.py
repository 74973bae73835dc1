"""Fetch a whole ISIC Archive collection with isic-cli: HAM10000, for the seven-class chapter.

The binary data set comes from two searches (``download``); HAM10000 is a
collection of the archive, found by its name through the API
(``collections/``, the list ``isic collection list`` prints), so no id is
written here. Then::

    isic image download --collections ID --limit N data/.ham10000.part

with N the collection's size (an explicit limit: with 0, isic-cli asks
before a large download, and it runs without a terminal here). The images,
``metadata.csv`` (diagnosis, lesion id, age, sex, site, licence per image),
``attribution.txt`` and ``licenses/`` land in a part folder beside the target;
only a complete fetch, hashed (``checksums.sha256``) and recorded
(``download.json``), is renamed to the target (``data/ham10000``, where
``config.resolve_ham_dir`` looks), so no notebook ever reads half a download.
A rerun resumes in the part folder (isic-cli skips complete images) and a
finished one is reused. The data layer reads the result as an isic-cli
export: diagnoses mapped to the seven HAM10000 codes, lesions grouped by the
archive's lesion id.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

from ..atomic import exclusive_folder, read_json, write_json
from ..config import DEFAULT_DATA_DIR, HAM_DIR_NAME
from .checksums import write_checksums
from .download import (API_URL, MANIFEST, SEARCH_PAGE_SIZE, DownloadError, Getter, _class_plan,
                       _isic_cli_version, _now, _run_subprocess, _size, check_connectivity, isic_command,
                       licence_counts, listed_and_missing, search_json)

HAM10000 = "HAM10000"
DEFAULT_HAM_OUT = DEFAULT_DATA_DIR / HAM_DIR_NAME
COLLECTIONS_URL = API_URL + "collections/"


def find_collection(name: str, *, get: Getter = search_json) -> dict:
    """The archive's collection called ``name`` (case does not matter); DownloadError naming
    similar ones when there is none."""
    seen: list[str] = []
    page = get(COLLECTIONS_URL, {"limit": SEARCH_PAGE_SIZE})
    try:
        while True:
            for collection in page["results"]:
                seen.append(str(collection["name"]))
                if seen[-1].strip().casefold() == name.casefold():
                    return collection
            if not page.get("next"):
                break
            page = get(page["next"], None)
    except (KeyError, TypeError) as error:
        raise DownloadError(f"the ISIC Archive answered the collection list with an unexpected page "
                            f"({type(error).__name__}: {error}); the API may have changed") from error
    similar = [s for s in seen if name.casefold() in s.casefold()]
    raise DownloadError(f"the ISIC Archive has no collection named {name!r} ({len(seen)} listed"
                        + (f"; similar: {', '.join(similar[:5])}" if similar else "")
                        + "); `isic collection list` shows them all")


def part_folder(out_dir: Path) -> Path:
    """Where a fetch into ``out_dir`` is made: a hidden sibling, renamed when complete."""
    return out_dir.with_name(f".{out_dir.name}.part")


def completed_collection(out_dir: str | Path, name: str = HAM10000) -> dict | None:
    """The ``download.json`` of a finished fetch of collection ``name`` in ``out_dir``, else None."""
    path = Path(out_dir) / MANIFEST
    try:
        manifest = read_json(path) if path.is_file() else None
    except ValueError:
        return None
    if manifest and str(manifest.get("collection", {}).get("name", "")).casefold() == name.casefold():
        return manifest
    return None


def download_collection(name: str = HAM10000, out_dir: str | Path = DEFAULT_HAM_OUT, *,
                        run: Callable[[Sequence[str]], int] | None = None,
                        check: Callable[[], None] = check_connectivity, get: Getter = search_json,
                        log: Callable[[str], None] = print) -> dict:
    """Fetch every image of the ISIC Archive collection ``name`` into ``out_dir`` (module
    docstring); returns its ``download.json``. ``run``, ``check`` and ``get`` exist for tests."""
    run = run or _run_subprocess
    out_dir = Path(out_dir).expanduser().resolve()
    manifest = completed_collection(out_dir, name)
    if manifest is not None:
        log(f"{out_dir} already holds the {name} collection ({manifest['n_images']:,} images): reused")
        return manifest
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DownloadError(f"{out_dir} exists and is not a finished {name} download; move it away or "
                            f"choose another folder (--out)")
    part = part_folder(out_dir)
    check()
    collection = find_collection(name, get=get)
    plan = _class_plan("", 10**9, get, collections=str(collection["id"]))  # every image of the collection
    have = sum(p.stat().st_size for p in part.iterdir() if p.is_file()) if part.is_dir() else 0
    part.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(part.parent).free
    how = "the sizes the ISIC API reports" if plan["exact"] else \
        f"an estimate from the sizes of the first {plan['sized']:,}"
    log(f"Plan: fetch the ISIC Archive collection {collection['name']} (id {collection['id']}): "
        f"{plan['to_fetch']:,} images, {_size(plan['bytes'])} ({how}), with isic-cli into {part}, "
        f"renamed to {out_dir} when complete; {_size(free)} free"
        + (f"; {_size(have)} already fetched by an earlier run" if have else ""))
    if plan["bytes"] - have > free:
        raise DownloadError(f"not enough disk space in {part.parent}: the images need about "
                            f"{_size(plan['bytes'] - have)}, {_size(free)} are free")
    part.mkdir(exist_ok=True)
    with exclusive_folder(part, DownloadError(f"another download is writing to {part}; wait for it to finish")):
        return _fetch(name, collection, plan, part, out_dir, run, log)


def _fetch(name: str, collection: dict, plan: dict, part: Path, out_dir: Path,
           run: Callable[[Sequence[str]], int], log: Callable[[str], None]) -> dict:
    """isic-cli into ``part``, then hash, record and rename to ``out_dir``; the caller holds the lock."""
    command = isic_command() + ["image", "download", "--collections", str(collection["id"]),
                                "--limit", str(plan["to_fetch"]), str(part)]
    code = run(command)
    if code != 0 or not (part / "metadata.csv").is_file():
        raise DownloadError(f"isic-cli {'failed (exit code ' + str(code) + ')' if code else 'wrote no metadata.csv'}"
                            f" fetching {name}: {' '.join(command)}\nThe images fetched so far are in {part}; "
                            "run the same command again to resume (isic-cli skips images already there).")
    listed, missing = listed_and_missing(part)
    if missing:
        log(f"warning: isic-cli listed {len(listed):,} images of {name} but wrote no file for {len(missing):,} "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); they are left out, and named "
            f"in {MANIFEST}")
    manifest = {"collection": {"id": collection["id"], "name": collection["name"]}, "source": API_URL,
                "n_listed": int(len(listed)), "n_images": write_checksums(part), "missing": missing,
                "licenses": licence_counts(listed), "finished_at": _now(), "command": command,
                "isic_cli": _isic_cli_version(), "bytes_planned": plan["bytes"]}
    write_json(part / MANIFEST, manifest)
    if out_dir.is_dir():
        out_dir.rmdir()  # empty (checked above)
    os.replace(part, out_dir)  # the data set appears whole or not at all
    log(f"{name}: {manifest['n_images']:,} images in {out_dir} (licences: "
        + ", ".join(f"{k} {v:,}" for k, v in manifest["licenses"].items()) + ")")
    return manifest
