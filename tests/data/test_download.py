"""helpers.download, with the network mocked.

Like isic-cli's own tests (which patch ``isic_cli.cli.image.get_images`` and
friends and run the click command in-process), nothing here reaches the
internet: either the isic-cli subprocess is replaced, or isic-cli runs
in-process with ``requests``' transport (``HTTPAdapter.send``) answering from a
fake ISIC Archive.
"""
from __future__ import annotations

import io
import json
import signal
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import requests
from requests.adapters import HTTPAdapter

from helpers.apps import cli
from helpers.data import download, layouts
from image_factory import jpeg_bytes, textured


class _FakeResponse:
    status_code = 200


def _offline(*args, **kwargs):
    raise requests.ConnectionError("Name or service not known")


def test_offline_gives_a_clear_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(requests, "get", _offline)
    calls = []
    with pytest.raises(download.DownloadError, match="no internet: cannot reach the ISIC Archive at https://"):
        download.download_isic(tmp_path / "out", 10, run=calls.append)
    assert calls == [], "nothing is started without a connection"
    assert cli.main(["download", "--out", str(tmp_path / "out"), "--limit", "10"]) == 1
    err = capsys.readouterr().err
    assert "no internet" in err and "SKIN_DATA_DIR" in err


def _fake_isic_cli(commands: list[list[str]]):
    """Stand-in for subprocess.run: writes what `isic image download` writes."""
    def run(command, stdin=None, check=False):
        commands.append(command)
        assert stdin == subprocess.DEVNULL, "isic-cli must never wait for input"
        query = command[command.index("--search") + 1]
        limit = int(command[command.index("--limit") + 1])
        out = Path(command[-1])
        label = "Benign" if '"Benign"' in query else "Malignant"
        rows = []
        for k in range(limit):
            isic_id = f"ISIC_{label[0]}{k:06d}"
            (out / f"{isic_id}.jpg").write_bytes(jpeg_bytes(textured(len(rows) + (0 if label == "Benign" else 100), 32)))
            rows.append({"isic_id": isic_id, "attribution": f"{label} clinic", "copyright_license": "CC-0",
                         "diagnosis_1": label, "image_type": "dermoscopic"})
        pd.DataFrame(rows).to_csv(out / "metadata.csv", index=False)
        (out / "attribution.txt").write_text(f"{label} clinic")
        (out / "licenses").mkdir()
        (out / "licenses" / "CC-0.txt").write_text("CC0")
        return subprocess.CompletedProcess(command, 0)
    return run


def test_balanced_download_is_merged_and_readable(monkeypatch, tmp_path):
    monkeypatch.setattr(requests, "get", lambda *a, **k: _FakeResponse())
    commands: list[list[str]] = []
    monkeypatch.setattr(download.subprocess, "run", _fake_isic_cli(commands))
    out = tmp_path / "isic-archive"
    result = download.download_isic(out, limit=7, seed=3)
    assert len(commands) == 2
    for command, (label, n) in zip(commands, [("Benign", 3), ("Malignant", 4)]):
        assert command[command.index("image"):command.index("image") + 2] == ["image", "download"]
        assert command[command.index("--search") + 1] == f'diagnosis_1:"{label}" AND image_type:dermoscopic'
        assert command[command.index("--limit") + 1] == str(n)
    assert result["n_images"] == 7
    assert not (out / download.PARTS_DIR).exists()
    assert (out / "licenses" / "CC-0.txt").is_file()
    assert (out / "attribution.txt").read_text().split("\n\n") == ["Benign clinic", "Malignant clinic\n"]
    assert json.loads((out / "download.json").read_text())["seed"] == 3
    read = layouts.read_dataset(out)
    assert read.layout == "isic-cli" and read.skipped.empty
    assert read.table["label"].value_counts().to_dict() == {1: 4, 0: 3}
    assert set(read.table["source"]) == {"Benign clinic", "Malignant clinic"}


def test_isic_cli_failure_is_reported(monkeypatch, tmp_path):
    with pytest.raises(download.DownloadError, match="isic-cli failed.*benign"):
        download.download_isic(tmp_path, 4, run=lambda command: 2, check=lambda: None)


# ---------------------------------------------------------------------------
# The real isic-cli, in-process, against a fake ISIC Archive
# ---------------------------------------------------------------------------

def _fake_archive(request, **kwargs):
    """HTTPAdapter.send replacement: answers the few ISIC API calls isic-cli makes."""
    url = urlparse(request.url)
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    response = requests.Response()
    response.status_code, response.url, response.request, response.encoding = 200, request.url, request, "utf-8"
    if url.path.endswith("/images/search/"):
        label = "Malignant" if "Malignant" in params.get("query", "") else "Benign"
        images = [{
            "isic_id": f"ISIC_{label[0]}{k:06d}", "attribution": f"Hospital {k % 2}", "copyright_license": "CC-BY",
            "files": {"full": {"url": f"https://fake-bucket.test/ISIC_{label[0]}{k:06d}.jpg", "size": 1}},
            "metadata": {"acquisition": {"image_type": "dermoscopic"},
                         "clinical": {"diagnosis_1": label, "age_approx": 50, "sex": "female"}},
        } for k in range(5)]
        body = {"count": len(images), "next": None, "previous": None, "results": images}
        response._content = json.dumps(body).encode()
    elif "license-file" in url.path:
        response._content = b"licence text"
    elif url.hostname == "fake-bucket.test":
        response._content = jpeg_bytes(textured(sum(url.path.encode()), 32))
    else:
        response.status_code, response._content = 404, b'{"detail": "not found"}'
    response.raw = io.BytesIO(response._content)
    response._content_consumed = True  # lets iter_content() replay _content for stream=True
    return response


def test_real_isic_cli_output_is_readable(monkeypatch, tmp_path):
    from click.testing import CliRunner
    from girder_cli_oauth_client import GirderCliOAuthClient

    import isic_cli.cli
    from isic_cli.cli import cli

    monkeypatch.setattr(HTTPAdapter, "send", lambda self, request, **kw: _fake_archive(request, **kw))
    monkeypatch.setattr(isic_cli.cli, "_sentry_setup", lambda: None)
    monkeypatch.setattr(GirderCliOAuthClient, "maybe_restore_login", lambda self: None)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # isic-cli replaces them

    def run_in_process(command):
        result = CliRunner().invoke(cli, command[command.index("--no-version-check"):])
        assert result.exit_code == 0, result.output
        return result.exit_code

    try:
        download.download_isic(tmp_path / "isic", limit=6, run=run_in_process)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    read = layouts.read_dataset(tmp_path / "isic")
    assert read.layout == "isic-cli" and read.skipped.empty
    assert read.table["label"].value_counts().to_dict() == {0: 3, 1: 3}
    assert read.table["age"].eq(50).all() and set(read.table["source"]) <= {"Hospital 0", "Hospital 1"}
    assert (tmp_path / "isic" / "licenses" / "CC-BY.txt").read_text() == "licence text"
