"""Fetching the HAM10000 collection with isic-cli: found by name, planned, fetched into a
part folder that becomes the data set only when complete, resumed, reused; network and
isic-cli mocked."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pandas as pd
import pytest
from image_factory import jpeg_bytes, textured

from helpers.data import collection, download
from helpers.data.checksums import verify_checksums
from helpers.data.layouts import read_dataset

HAM_ID = 212
# diagnosis_3 as the archive words it -> the code the data layer should map it to
DIAGNOSES = [("Benign", "Nevus", "nv"), ("Malignant", "Melanoma Invasive", "mel"),
             ("Malignant", "Basal cell carcinoma", "bcc"), ("Benign", "Seborrheic keratosis", "bkl"),
             ("Benign", "Dermatofibroma", "df"), ("Benign", "Hemangioma", "vasc"),
             ("Malignant", "Solar or actinic keratosis", "akiec")]
N_IMAGES = 14
BYTES = 250_000


class FakeArchive:
    """collections/ (two pages) and images/search/?collections=ID as the ISIC API v2 answers them."""

    def __init__(self, names=("ISIC 2019: Training", "MSK-1", "HAM10000")):
        self.collections = [{"id": HAM_ID if n == "HAM10000" else 100 + k, "name": n} for k, n in enumerate(names)]
        self.requests: list[tuple[str, dict | None]] = []

    def get(self, url: str, params: dict | None = None) -> dict:
        self.requests.append((url, params))
        if params is None:
            params = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        start = int(params.get("offset", 0))
        if url.startswith(collection.COLLECTIONS_URL):
            page = self.collections[start:start + 2]
            more = start + 2 < len(self.collections)
            return {"count": len(self.collections), "results": page,
                    "next": f"{collection.COLLECTIONS_URL}?offset={start + 2}" if more else None}
        assert params.get("collections") == str(HAM_ID) and params["query"] == ""
        limit = int(params["limit"])
        ids = [f"ISIC_{k:07d}" for k in range(start, min(start + limit, N_IMAGES))]
        more = start + len(ids) < N_IMAGES
        return {"count": N_IMAGES if start == 0 else None,
                "next": f"{download.SEARCH_URL}?{urlencode({**params, 'offset': start + len(ids)})}" if more else None,
                "results": [{"isic_id": i, "files": {"full": {"size": BYTES}}} for i in ids]}


class FakeIsicCli:
    """``isic image download --collections ID --limit N DIR``: writes images and metadata.csv as
    isic-cli does, skips images already there; ``interrupt`` stops its next run half-way."""

    def __init__(self, interrupt: bool = False, lose: frozenset = frozenset()):
        self.interrupt, self.lose = interrupt, lose
        self.commands: list[list[str]] = []
        self.found: list[list[str]] = []

    def __call__(self, command: list[str]) -> int:
        self.commands.append(command)
        assert command[command.index("--collections") + 1] == str(HAM_ID)
        limit, out = int(command[command.index("--limit") + 1]), Path(command[-1])
        self.found.append(sorted(p.name for p in out.iterdir()))
        rows = []
        for k in range(limit // 2 if self.interrupt else limit):
            image_id = f"ISIC_{k:07d}"
            path = out / f"{image_id}.jpg"
            if image_id not in self.lose and not path.exists():
                path.write_bytes(jpeg_bytes(textured(k, 32)))
            d1, d3, _ = DIAGNOSES[k % len(DIAGNOSES)]
            rows.append({"isic_id": image_id, "attribution": "ViDIR Group", "copyright_license": "CC-BY-NC",
                         "diagnosis_1": d1, "diagnosis_3": d3, "lesion_id": f"IL_{k // 2:07d}",
                         "age_approx": 40 + k, "sex": "female" if k % 2 else "male",
                         "anatom_site_general": "back", "image_type": "dermoscopic"})
        if self.interrupt:
            self.interrupt = False
            return 1
        pd.DataFrame(rows).to_csv(out / "metadata.csv", index=False)
        (out / "attribution.txt").write_text("ViDIR Group")
        return 0


def _fetch(tmp_path, cli, archive=None, log=None):
    archive = archive or FakeArchive()
    return collection.download_collection(out_dir=tmp_path / "data" / "ham10000", run=cli, check=lambda: None,
                                          get=archive.get, log=log or (lambda _: None))


def test_the_collection_is_found_by_name_across_pages():
    archive = FakeArchive()
    assert collection.find_collection("ham10000", get=archive.get) == {"id": HAM_ID, "name": "HAM10000"}
    assert sum(url.startswith(collection.COLLECTIONS_URL) for url, _ in archive.requests) == 2  # the second page
    with pytest.raises(download.DownloadError, match=r"no collection named 'HAM'.*3 listed.*similar: HAM10000"):
        collection.find_collection("HAM", get=archive.get)


def test_the_collection_is_planned_fetched_and_readable_as_seven_diagnoses(tmp_path):
    lines: list[str] = []
    cli = FakeIsicCli()
    manifest = _fetch(tmp_path, cli, log=lines.append)
    target = tmp_path / "data" / "ham10000"
    assert lines[0].startswith(f"Plan: fetch the ISIC Archive collection HAM10000 (id {HAM_ID}): {N_IMAGES} images, "
                               f"{N_IMAGES * BYTES / 1e6:.1f} MB (the sizes the ISIC API reports)")
    assert cli.commands[0][-5:] == ["--collections", str(HAM_ID), "--limit", str(N_IMAGES),
                                    str(collection.part_folder(target))]
    assert not collection.part_folder(target).exists() and target.is_dir()
    assert manifest["n_images"] == N_IMAGES and manifest["missing"] == [] and manifest["licenses"] == {"CC-BY-NC": 14}
    checked = verify_checksums(target)
    assert checked["n_files"] == N_IMAGES and checked["missing"] == checked["changed"] == []
    read = read_dataset(target)
    assert len(read.table) == N_IMAGES and read.skipped.empty
    assert set(read.table["dx"]) == {code for *_, code in DIAGNOSES}  # the seven HAM10000 codes
    assert read.table["lesion_id"].nunique() == N_IMAGES // 2  # two photos per lesion stay one group
    assert (read.table["label"] == read.table["dx"].isin(["mel", "bcc", "akiec"])).all()


def test_an_interrupted_fetch_leaves_no_data_set_and_resumes(tmp_path):
    cli = FakeIsicCli(interrupt=True)
    with pytest.raises(download.DownloadError, match=r"(?s)exit code 1.*run the same command again to resume"):
        _fetch(tmp_path, cli)
    target = tmp_path / "data" / "ham10000"
    assert not target.exists()  # the notebooks never see half a download
    half = sorted(p.name for p in collection.part_folder(target).glob("*.jpg"))
    assert len(half) == N_IMAGES // 2
    lines: list[str] = []
    _fetch(tmp_path, cli, log=lines.append)
    assert [n for n in cli.found[1] if n.endswith(".jpg")] == half  # isic-cli ran in the same folder again
    assert "already fetched by an earlier run" in lines[0]
    assert len(list(target.glob("*.jpg"))) == N_IMAGES


def test_a_finished_fetch_is_reused_and_a_foreign_folder_is_not_overwritten(tmp_path):
    cli = FakeIsicCli()
    _fetch(tmp_path, cli)
    lines: list[str] = []
    assert _fetch(tmp_path, cli, log=lines.append)["n_images"] == N_IMAGES
    assert len(cli.commands) == 1 and "reused" in lines[0]
    other = tmp_path / "other"
    (other / "ham10000").mkdir(parents=True)
    (other / "ham10000" / "notes.txt").write_text("mine")
    with pytest.raises(download.DownloadError, match="is not a finished HAM10000 download"):
        collection.download_collection(out_dir=other / "ham10000", run=cli, check=lambda: None,
                                       get=FakeArchive().get, log=lambda _: None)


def test_images_isic_cli_did_not_write_are_counted_and_named(tmp_path):
    lines: list[str] = []
    manifest = _fetch(tmp_path, FakeIsicCli(lose=frozenset({"ISIC_0000003"})), log=lines.append)
    assert manifest["n_listed"] == N_IMAGES and manifest["n_images"] == N_IMAGES - 1
    assert manifest["missing"] == ["ISIC_0000003"] and any("ISIC_0000003" in line for line in lines)


def test_the_command_line_fetches_a_collection_into_data_ham10000_by_default(monkeypatch, tmp_path, capsys):
    from helpers.apps import cli
    from helpers.apps import download as download_app

    calls = []

    def fake(name, out_dir):
        calls.append((name, Path(out_dir)))
        return {"collection": {"name": name}, "n_images": 3}

    monkeypatch.setattr(download_app, "download_collection", fake)
    assert cli.main(["download", "--collection", "HAM10000"]) == 0
    assert calls == [("HAM10000", collection.DEFAULT_HAM_OUT)]
    assert "HAM10000: 3 images" in capsys.readouterr().out
    monkeypatch.setattr(download_app, "download_collection",
                        lambda *a: (_ for _ in ()).throw(download.DownloadError("no internet: ...")))
    assert cli.main(["download", "--collection", "HAM10000", "--out", str(tmp_path / "h")]) == 1
    assert "download failed: no internet" in capsys.readouterr().err


def test_two_fetches_into_one_folder_do_not_run_at_once(tmp_path):
    from helpers.atomic import exclusive_folder

    part = collection.part_folder(tmp_path / "data" / "ham10000")
    part.mkdir(parents=True)
    cli = FakeIsicCli()
    with exclusive_folder(part, RuntimeError("held")):
        with pytest.raises(download.DownloadError, match="another download is writing to"):
            _fetch(tmp_path, cli)
    assert cli.commands == []
    assert _fetch(tmp_path, cli)["n_images"] == N_IMAGES  # once the other is done
