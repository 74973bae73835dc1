"""A fake ISIC Archive search API and a fake ``isic image download`` for the download tests.

Nothing here reaches the network or starts a process. ``FakeArchive`` answers
the image search as api.isic-archive.com/api/v2/images/search/ does (``count``
on the first page, ``next``, ``results`` with ``files.full.size``);
``FakeIsicCli`` writes what isic-cli 12.4 writes into its folder (images,
metadata.csv, attribution.txt, licenses/), skips images already there as
isic-cli does, and can be interrupted half-way or lose an image.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlparse

import pandas as pd
from image_factory import jpeg_bytes, textured

from helpers.data import download

LICENCES = ("CC-0", "CC-BY-NC")  # every other image
IMAGE_BYTES = {"Benign": 200_000, "Malignant": 300_000}  # what the fake API reports per image


def label_of(query: str) -> str:
    return "Malignant" if '"Malignant"' in query else "Benign"


def isic_id(label: str, k: int) -> str:
    return f"ISIC_{label[0]}{k:06d}"


class _Response:
    def __init__(self, body: dict, status_code: int = 200):
        self.status_code, self._body = status_code, body

    def raise_for_status(self) -> None:
        pass

    def json(self) -> dict:
        return self._body


class FakeArchive:
    """The ISIC API's image search with ``matching`` images per diagnosis_1, pages of ``limit``."""

    def __init__(self, matching: dict[str, int] | None = None):
        self.matching = matching or {"Benign": 1234, "Malignant": 567}
        self.requests: list[tuple[str, dict | None]] = []

    def get(self, url: str, params: dict | None = None) -> dict:
        """``download_isic(get=...)``: one page of search results as JSON."""
        self.requests.append((url, params))
        if params is None:  # a `next` link (the real one carries a cursor; an offset does here)
            params = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        query, limit, start = params["query"], int(params["limit"]), int(params.get("offset", 0))
        label = label_of(query)
        count = self.matching[label]
        ids = [isic_id(label, k) for k in range(start, min(start + limit, count))]
        more = start + len(ids) < count
        return {
            "count": count if start == 0 else None,  # only on the first page, as the API does
            "previous": None,
            "next": f"{download.SEARCH_URL}?{urlencode({**params, 'offset': start + len(ids)})}" if more else None,
            "results": [{"isic_id": i, "copyright_license": LICENCES[k % 2],
                         "files": {"full": {"url": f"https://bucket.test/{i}.jpg", "size": IMAGE_BYTES[label]}}}
                        for k, i in enumerate(ids, start)],
        }

    def requests_get(self, url: str, params: dict | None = None, timeout: float | None = None) -> _Response:
        """Stands in for ``requests.get``: the connectivity check and the search."""
        if url.startswith(download.SEARCH_URL):
            return _Response(self.get(url, params))
        self.requests.append((url, params))
        return _Response({})


class FakeIsicCli:
    """``isic image download --search Q --limit N DIR``, as a ``run=`` (or, via ``subprocess_run``,
    ``subprocess.run``) stand-in.

    ``interrupt``: labels ("benign", "malignant") whose next run stops half-way
    with exit code 1, leaving a ``.isic-partial.*`` file and no metadata.csv,
    as a SIGINT does. ``lose``: isic_ids listed in metadata.csv but never
    written (isic-cli 12.4 does not report a failed image). ``log`` gets
    "RUN <label>" when a run starts.
    """

    def __init__(self, interrupt: set[str] | None = None, lose: set[str] | None = None,
                 log: Callable[[str], None] | None = None):
        self.interrupt, self.lose, self.log = set(interrupt or ()), set(lose or ()), log
        self.commands: list[list[str]] = []
        self.found: dict[str, list[str]] = {}  # label -> files in its folder when its last run started
        self.written: dict[str, list[str]] = {}  # label -> images its last run wrote

    def __call__(self, command: list[str]) -> int:
        self.commands.append(command)
        query = command[command.index("--search") + 1]
        limit = int(command[command.index("--limit") + 1])
        out = Path(command[-1])
        label = label_of(query)
        out.mkdir(parents=True, exist_ok=True)
        self.found[label.lower()] = sorted(p.name for p in out.iterdir() if p.is_file())
        if self.log is not None:
            self.log(f"RUN {label.lower()}")
        interrupted = label.lower() in self.interrupt
        self.interrupt.discard(label.lower())
        self.written[label.lower()] = []
        rows = []
        for k in range(limit // 2 if interrupted else limit):
            image_id = isic_id(label, k)
            path = out / f"{image_id}.jpg"
            if image_id not in self.lose and not path.exists():  # isic-cli skips an image already there
                path.write_bytes(jpeg_bytes(textured(k + (0 if label == "Benign" else 1000), 32)))
                self.written[label.lower()].append(path.name)
            rows.append({"isic_id": image_id, "attribution": f"{label} clinic",
                         "copyright_license": LICENCES[k % 2], "diagnosis_1": label,
                         "image_type": "dermoscopic"})
        if interrupted:
            (out / ".isic-partial.4242.abc").write_bytes(b"half an image")
            return 1
        pd.DataFrame(rows).to_csv(out / "metadata.csv", index=False)
        (out / "attribution.txt").write_text(f"{label} clinic")
        (out / "licenses").mkdir(exist_ok=True)
        for licence in {r["copyright_license"] for r in rows}:
            (out / "licenses" / f"{licence}.txt").write_text(f"{licence} text")
        return 0

    def subprocess_run(self, command, stdin=None, check=False):
        assert stdin == subprocess.DEVNULL, "isic-cli must never wait for input"
        return subprocess.CompletedProcess(command, self(command))
