"""Files written so an interrupted run never leaves half a file in place of a
good one, and JSON read back with an error that names the file.

Every file the project writes (models, results, figures, splits, the deck)
goes through ``atomic_path`` or one of the writers below.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place only on success.

    The temporary name keeps the target's suffixes (".weights.h5", not just
    ".h5") because some writers (Keras, matplotlib) choose the format from them.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:-len(suffix) or None]}.tmp",
                               suffix=suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as plain Python, and NaN, infinity
    and pandas' NA as None (results.json is written with ``allow_nan=False``)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if value is pd.NA:
        return None
    return value


def write_json(target: str | os.PathLike, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON (NaN is refused: it is not JSON)."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")
    return target


def read_json(path: str | os.PathLike, what_to_do: str = "") -> Any:
    """Parse a JSON file; a broken one raises ValueError naming it (and ``what_to_do``)."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}){what_to_do}.") from exc


def write_text(target: str | os.PathLike, text: str) -> Path:
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target


@contextlib.contextmanager
def exclusive_folder(folder: str | os.PathLike, busy: Exception) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while the block runs; raise ``busy`` if another
    process holds it. An flock, so the kernel releases it even when the holder is killed."""
    import fcntl  # POSIX only, like the rest of the chain's locking

    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)
