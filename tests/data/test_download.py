"""helpers.download, with the network mocked.

Like isic-cli's own tests (which patch ``isic_cli.cli.image.get_images`` and
friends and run the click command in-process), nothing here reaches the
internet: either the isic-cli subprocess is replaced, or isic-cli runs
in-process with ``requests``' transport (``HTTPAdapter.send``) answering from a
fake ISIC Archive.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import signal
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from image_factory import jpeg_bytes, textured
from isic_factory import FakeArchive, FakeIsicCli, label_of
from requests.adapters import HTTPAdapter

from helpers.apps import cli
from helpers.data import download, layouts


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


def _download(out: Path, limit: int = 7, **kwargs) -> dict:
    """download_isic with the fake archive, the fake isic-cli and a silent log unless given."""
    kwargs.setdefault("run", FakeIsicCli())
    kwargs.setdefault("get", FakeArchive().get)
    kwargs.setdefault("log", lambda *_: None)
    return download.download_isic(out, limit, check=lambda: None, **kwargs)


def test_balanced_download_is_merged_and_readable(monkeypatch, tmp_path):
    archive, isic = FakeArchive(), FakeIsicCli()
    monkeypatch.setattr(requests, "get", archive.requests_get)
    monkeypatch.setattr(download.subprocess, "run", isic.subprocess_run)
    out = tmp_path / "isic-archive"
    result = download.download_isic(out, limit=7, seed=3, log=lambda *_: None)
    assert len(isic.commands) == 2
    for command, (label, n) in zip(isic.commands, [("Benign", 3), ("Malignant", 4)]):
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


def test_isic_cli_failure_is_reported(tmp_path):
    with pytest.raises(download.DownloadError, match="(?s)isic-cli failed.*benign.*run the same command again"):
        _download(tmp_path, 4, run=lambda command: 2)


def test_the_plan_is_printed_before_anything_is_fetched(tmp_path):
    events: list[str] = []
    out = tmp_path / "isic-archive"
    _download(out, 7, run=FakeIsicCli(log=events.append), log=events.append)
    plan = events[0].splitlines()
    assert plan[0] == (f"Plan: fetch 7 dermoscopic images from the ISIC Archive ({download.API_URL}) "
                       f"with isic-cli into {out}")
    assert plan[1].split() == ["benign", "3", "of", "1,234", "matching", *download.QUERIES["benign"].split()]
    assert plan[2].split() == ["malignant", "4", "of", "567", "matching", *download.QUERIES["malignant"].split()]
    # 3 x 200 kB + 4 x 300 kB, as the fake API reports them
    assert plan[3].startswith("  size       1.8 MB: the sizes the ISIC API reports for exactly these images")
    assert plan[4].startswith("  disk ") and " free in " in plan[4]
    assert events[1:] == ["fetching benign (1/2): 3 images ...", "RUN benign",
                          "fetching malignant (2/2): 4 images ...", "RUN malignant"]


def test_the_plan_pages_through_the_search_and_labels_an_estimate(monkeypatch):
    archive = FakeArchive()
    monkeypatch.setattr(download, "SEARCH_PAGE_SIZE", 2)
    plan = download.plan_download({"benign": 5, "malignant": 4}, get=archive.get)
    assert [p["exact"] for p in plan.values()] == [True, True]
    assert plan["benign"]["bytes"] == 5 * 200_000 and len(archive.requests) == 3 + 2  # pages of 2
    monkeypatch.setattr(download, "PLAN_MAX_PAGES", 1)
    plan = download.plan_download({"benign": 5, "malignant": 4}, get=archive.get)
    assert plan["benign"] == {"query": download.QUERIES["benign"], "matching": 1234, "to_fetch": 5,
                              "bytes": 1_000_000, "exact": False, "sized": 2}
    text = download.format_plan(plan, {}, Path("/data"), None)
    assert "an estimate: the mean of the sizes the ISIC API reports for the first 4 of them, times 9" in text
    few = download.plan_download({"malignant": 10}, get=FakeArchive({"Malignant": 3}).get)
    assert few["malignant"]["to_fetch"] == 3  # the archive has fewer than asked for
    with pytest.raises(download.DownloadError, match="has no images for"):
        download.plan_download({"malignant": 10}, get=FakeArchive({"Benign": 1, "Malignant": 0}).get)


def test_an_interrupted_download_resumes_without_fetching_a_finished_class_again(tmp_path):
    out = tmp_path / "isic-archive"
    isic = FakeIsicCli(interrupt={"malignant"})
    with pytest.raises(download.DownloadError, match="exit code 1.*malignant"):
        _download(out, 8, run=isic)
    parts = out / download.PARTS_DIR
    assert json.loads((parts / "benign.done.json").read_text())["n_images"] == 4
    assert not (parts / "malignant.done.json").exists(), "an unfinished class is not marked done"
    assert not (out / "download.json").exists()

    events: list[str] = []
    isic.log = events.append
    isic.commands.clear()
    _download(out, 8, run=isic, log=events.append)
    assert [label_of(c[c.index("--search") + 1]) for c in isic.commands] == ["Malignant"]
    assert isic.found["malignant"] == [".isic-partial.4242.abc", "ISIC_M000000.jpg", "ISIC_M000001.jpg"]
    assert isic.written["malignant"] == ["ISIC_M000002.jpg", "ISIC_M000003.jpg"]  # isic-cli skips the rest
    assert "benign     already fetched (4 images), not fetched again" in events[0]
    assert "malignant  4 of 567 matching" in events[0]
    assert events[1:] == ["benign (1/2): already fetched (4 images), not fetched again",
                          "fetching malignant (2/2): 4 images ...", "RUN malignant"]
    read = layouts.read_dataset(out)
    assert read.skipped.empty and read.table["label"].value_counts().to_dict() == {0: 4, 1: 4}
    assert not parts.exists() and not list(out.glob(".isic-partial*"))

    isic.commands.clear()
    again = _download(out, 8, run=isic, get=_no_network)
    assert again["reused"] and again["n_images"] == 8 and isic.commands == [], "a finished download is reused"


def _no_network(*args, **kwargs):
    raise AssertionError("no request should be made")


def test_exit_code_0_without_metadata_is_not_done(tmp_path):
    def no_metadata(command):
        Path(command[-1], "ISIC_B000000.jpg").write_bytes(b"jpeg")
        return 0

    with pytest.raises(download.DownloadError, match="wrote no metadata.csv for the benign images"):
        _download(tmp_path, 4, run=no_metadata)
    assert not (tmp_path / download.PARTS_DIR / "benign.done.json").exists()


def test_checksums_are_written_and_verified(tmp_path, capsys):
    out = tmp_path / "isic-archive"
    _download(out, 6)
    lines = (out / download.CHECKSUMS).read_text().splitlines()
    images = sorted(p.name for p in out.glob("*.jpg"))
    assert [line.split("  ")[1] for line in lines] == images and len(images) == 6
    for line in lines:
        digest, name = line.split("  ")
        assert digest == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert cli.main(["download", "--verify", "--out", str(out)]) == 0
    assert "all 6 files" in capsys.readouterr().out

    (out / images[0]).write_bytes(b"not the same image")
    (out / images[-1]).unlink()
    report = download.verify_checksums(out)
    assert report["changed"] == [images[0]] and report["missing"] == [images[-1]]
    assert cli.main(["download", "--verify", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 of 6 files differ" in err
    assert f"missing (1):\n  {images[-1]}" in err and f"changed (1):\n  {images[0]}" in err
    assert cli.main(["download", "--verify", "--out", str(tmp_path)]) == 2
    assert "checksums.sha256 does not exist" in capsys.readouterr().err


def test_images_per_class_and_licences_are_recorded(tmp_path):
    events: list[str] = []
    out = tmp_path / "isic-archive"
    result = _download(out, 8, run=FakeIsicCli(lose={"ISIC_M000003"}), log=events.append)
    manifest = json.loads((out / "download.json").read_text())
    assert manifest["per_class"] == result["per_class"] == {"benign": 4, "malignant": 3}
    assert manifest["per_class_requested"] == {"benign": 4, "malignant": 4}
    # every other image CC-0; the lost image is still a metadata.csv row
    assert manifest["licenses"] == result["licenses"] == {"CC-0": 4, "CC-BY-NC": 4}
    assert manifest["n_images"] == 7 and manifest["n_metadata_rows"] == 8
    assert manifest["checksums"] == "checksums.sha256" and manifest["plan"]["benign"]["to_fetch"] == 4
    assert any("wrote no file for 1 of them (ISIC_M000003)" in e for e in events)
    assert sorted(p.name for p in (out / "licenses").iterdir()) == ["CC-0.txt", "CC-BY-NC.txt"]


def test_only_an_empty_data_folder_or_an_unfinished_download_counts_as_missing(tmp_path):
    data, out = tmp_path / "data", tmp_path / "data" / "isic-archive"
    assert download.default_data_missing(data, out)  # no folder
    (out / download.PARTS_DIR / "benign").mkdir(parents=True)
    (out / download.PARTS_DIR / "benign" / "ISIC_B000000.jpg").write_bytes(b"jpeg")
    assert download.default_data_missing(data, out) and download.unfinished_download(out)
    (data / "ham10000").mkdir()
    (data / "ham10000" / "HAM10000_metadata.csv").write_text("lesion_id\n")
    assert not download.default_data_missing(data, out), "other data beside an unfinished download"
    (data / "ham10000" / "HAM10000_metadata.csv").unlink()
    shutil.rmtree(out / download.PARTS_DIR)
    (out / "metadata.csv").write_text("isic_id\n")  # an isic-cli export made by hand: no download.json
    assert not download.default_data_missing(data, out), "a folder filled by hand is never downloaded into"


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
