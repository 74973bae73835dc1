"""Write files so an interrupted run never leaves half a file in place of a good one
(and read JSON back with an error that names the file)."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


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
