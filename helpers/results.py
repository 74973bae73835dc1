"""``saved_models/results.json``: the one machine-readable record of a run.

Notebooks write into it through ``record_model`` / ``update_results``; README,
the main notebook and the slides read from it. Every write is atomic.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import read_json, write_json, write_text
from .config import REPO_ROOT, output_dirs

# Packages whose versions are recorded with every run.
RECORDED_PACKAGES = [
    "tensorflow-cpu", "keras", "numpy", "pandas", "scikit-learn", "scikit-image",
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


def run_info(quick: bool) -> dict[str, Any]:
    """Commit, date, package versions and machine of this run."""
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
            versions[pkg] = None
    return {
        "commit": commit,
        "uncommitted_changes": dirty,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": versions,
        "machine": {"cpu_cores": os.cpu_count(), "platform": platform.platform()},
        "quick": quick,
    }


def replace_readme_block(readme: str | os.PathLike, name: str, content: str) -> bool:
    """Rewrite the block between ``<!-- name:start -->`` and ``<!-- name:end -->``;
    True when README changed."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {start} ... {end} block.")
    new = pattern.sub(lambda _: f"{start}\n{content}{end}", text)
    if new != text:
        write_text(readme, new)
    return new != text


def update_readme(readme: str | os.PathLike, results: dict[str, Any]) -> bool:
    """Regenerate README's results block from results.json."""
    from .report import readme_markdown  # report draws; keep results.py light to import

    return replace_readme_block(readme, "results", readme_markdown(results))
