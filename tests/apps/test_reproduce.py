"""The chain runner: staging and whole promotion (in the repository and in --output-dir),
recovery after a kill, notebook selection, parameters, relative paths and usage errors.

These use small stand-in notebooks; tests/test_chain.py runs the real chain, and
test_a_killed_real_run_leaves_the_last_run_in_place below kills a real one."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
import requests
from image_factory import folder_dataset, ham_dataset
from isic_factory import FakeArchive, FakeIsicCli

from helpers import config
from helpers.apps import cli, reproduce
from helpers.data import collection, download

REPO = Path(__file__).resolve().parents[2]


def _notebook(path, source, parameters="quick = False"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, path)


WRITE_RESULT = """
from helpers import config, results
results.record_model("m", {"test": {"n": 1}}, config.output_dirs().results)
(config.output_dirs().images / "fig.png").write_bytes(b"png")
results.update_results({"seen": {"data_dir": str(config.resolve_data_dir(data_dir)), "quick": quick}},
                       config.output_dirs().results)
"""


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "README").write_text("a data folder")
    return folder


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "saved_models").mkdir()
    (repo / "saved_models" / "results.json").write_text(json.dumps({"models": {"previous": {}}}))
    (repo / "README.md").write_text("<!-- results:start -->\n<!-- results:end -->\n"
                                    "<!-- predict:start -->\n<!-- predict:end -->\n")
    _notebook(repo / "notebooks" / "a.ipynb", WRITE_RESULT, "quick = False\ndata_dir = None")
    _notebook(repo / "notebooks" / "b.ipynb", "raise RuntimeError('boom in b')")
    monkeypatch.setattr(reproduce, "REPO_ROOT", repo)
    monkeypatch.setattr(reproduce, "NOTEBOOKS_DIR", repo / "notebooks")
    monkeypatch.delenv("SKIN_OUTPUT_DIR", raising=False)
    return repo


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) with its SHA-256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_partial_rerun_keeps_the_whole_runs_provenance(fake_repo, data_dir):
    whole = {"commit": "a" * 40, "date": "2026-12-01T00:00:00+00:00", "chain_seconds": 7790.1,
             "chain_notebooks": ["a.ipynb", "b.ipynb"]}
    (fake_repo / "saved_models" / "results.json").write_text(json.dumps({"models": {}, "run": whole}))
    reproduce.reproduce(notebooks=["a.ipynb"], data_dir=data_dir, log=lambda *_: None)
    reproduce.reproduce(notebooks=["a.ipynb"], data_dir=data_dir, log=lambda *_: None)
    run = json.loads((fake_repo / "saved_models" / "results.json").read_text())["run"]
    assert {k: run[k] for k in whole} == whole  # the rest of the results still come from that run
    assert [r["notebooks"] for r in run["partial_reruns"]] == [["a.ipynb"], ["a.ipynb"]]
    readme = (fake_repo / "README.md").read_text()
    assert "whole chain 129.8 min at its last full run (commit `aaaaaaaaaa`)" in readme  # not the rerun's 2 s
    assert "with the notebooks rerun since, the times above add up to" in readme
    assert f"Run: commit `{'a' * 10}`" in readme and readme.count("Rerun since: a.ipynb at commit") == 2


def test_partial_rerun_sees_the_earlier_notebooks_figures(fake_repo, data_dir):
    # The main notebook and the deck of a partial rerun show figures of notebooks not rerun
    # (before, they printed "not produced in this run" for each).
    (fake_repo / "images").mkdir()
    (fake_repo / "images" / "earlier.png").write_bytes(b"earlier")
    _notebook(fake_repo / "notebooks" / "c.ipynb", "from helpers import config, results\n"
              "results.update_results({'saw': (config.output_dirs().images / 'earlier.png').read_text()}, "
              "config.output_dirs().results)")
    final = reproduce.reproduce(notebooks=["c.ipynb"], data_dir=data_dir, log=lambda *_: None)
    assert final["saw"] == "earlier"
    assert (fake_repo / "images" / "earlier.png").read_bytes() == b"earlier"


def test_partial_rerun_sees_the_earlier_notebooks_executed_copies(fake_repo, data_dir, tmp_path):
    # Notebook 6 reruns notebook 5 with the parameters papermill wrote into notebook 5's executed
    # copy; in a partial rerun into --output-dir it found none and fell back to the repository's.
    out = tmp_path / "out"
    reproduce.reproduce(notebooks=["a.ipynb"], data_dir=data_dir, output_dir=out, parameters={"quick": True},
                        log=lambda *_: None)
    # c reads a's executed copy, and meanwhile someone edits a in out/ (an instructor, say)
    _notebook(fake_repo / "notebooks" / "c.ipynb", "import nbformat\nfrom helpers import config, results\n"
              "a = config.output_dirs().root / 'notebooks' / 'a.ipynb'\n"
              "results.update_results({'a_ran_with': nbformat.read(a, as_version=4).metadata['papermill']"
              f"['parameters']}}, config.output_dirs().results)\n"
              f"edited = nbformat.read({str(out / 'notebooks' / 'a.ipynb')!r}, as_version=4)\n"
              "edited.metadata['edited'] = True\n"
              f"nbformat.write(edited, {str(out / 'notebooks' / 'a.ipynb')!r})")
    final = reproduce.reproduce(notebooks=["c.ipynb"], data_dir=data_dir, output_dir=out, log=lambda *_: None)
    assert final["a_ran_with"]["quick"] is True  # the executed copy in out/, not the repository's a.ipynb
    kept = nbformat.read(out / "notebooks" / "a.ipynb", as_version=4).metadata
    assert kept["papermill"]["parameters"]["quick"] is True
    assert kept["edited"] is True  # the staged copy, only read, did not overwrite the edit
    # a failed partial rerun keeps its own executed notebooks for a look, not the copies it read
    with pytest.raises(reproduce.ChainError):
        reproduce.reproduce(notebooks=["b.ipynb"], data_dir=data_dir, output_dir=out, log=lambda *_: None)
    assert sorted(p.name for p in (out / reproduce.FAILED_DIR).iterdir()) == ["b.ipynb"]


def test_failed_notebook_leaves_previous_run_in_place(fake_repo, data_dir):
    before = _snapshot(fake_repo / "saved_models")
    with pytest.raises(reproduce.ChainError, match=r"(?s)notebook b\.ipynb failed.*boom in b"):
        reproduce.reproduce(notebooks=["a.ipynb", "b.ipynb"], data_dir=data_dir, log=lambda *_: None)
    assert _snapshot(fake_repo / "saved_models") == before
    assert not (fake_repo / "images" / "fig.png").exists()
    assert (fake_repo / ".last-failed-run" / "b.ipynb").exists()
    assert not list(fake_repo.glob(".run-*"))  # staging cleaned up


def test_successful_run_is_promoted(fake_repo, data_dir):
    final = reproduce.reproduce(notebooks=["a.ipynb"], data_dir=data_dir, log=lambda *_: None)
    saved = json.loads((fake_repo / "saved_models" / "results.json").read_text())
    assert set(saved["models"]) == {"previous", "m"} and saved == final
    assert saved["timings"]["a.ipynb"] > 0
    (rerun,) = saved["run"]["partial_reruns"]  # notebook a alone: a partial rerun
    assert re.fullmatch(r"[0-9a-f]{40}", rerun["commit"])  # the code that ran, from git
    assert rerun["notebooks"] == ["a.ipynb"] and rerun["seconds"] > 0
    assert "commit" not in saved["run"]  # no whole run yet, and none is claimed
    assert (fake_repo / "images" / "fig.png").read_bytes() == b"png"
    assert (fake_repo / "Presentation.pdf").read_bytes().startswith(b"%PDF")
    executed = nbformat.read(fake_repo / "notebooks" / "a.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert "| m |" in (fake_repo / "README.md").read_text()
    assert not list(fake_repo.glob(".run-*")) and not (fake_repo / ".last-failed-run").exists()


def test_output_dir_run_is_staged_and_promoted_whole(fake_repo, data_dir, tmp_path):
    out = tmp_path / "out"
    readme = (fake_repo / "README.md").read_text()
    reproduce.reproduce(notebooks=["a.ipynb"], data_dir=data_dir, output_dir=out, log=lambda *_: None)
    first = _snapshot(out)
    assert {"saved_models/results.json", "images/fig.png", "notebooks/a.ipynb", "Presentation.pdf"} <= set(first)
    assert not list(out.glob(".run-*")) and (fake_repo / "README.md").read_text() == readme
    with pytest.raises(reproduce.ChainError):  # a failing second run changes nothing there
        reproduce.reproduce(notebooks=["a.ipynb", "b.ipynb"], data_dir=data_dir, output_dir=out,
                            log=lambda *_: None)
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith(".last-failed-run/")} == first
    assert set(after) - set(first) == {".last-failed-run/a.ipynb", ".last-failed-run/b.ipynb"}


def test_only_declared_parameters_reach_a_notebook(fake_repo, data_dir):
    reproduce.reproduce(notebooks=["a.ipynb"], data_dir=data_dir, parameters={"epochs": 3},
                        log=lambda *_: None)
    executed = nbformat.read(fake_repo / "notebooks" / "a.ipynb", as_version=4)
    injected = next(c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "quick = False" in injected and "epochs" not in injected
    assert "data_dir" not in injected  # the data folder travels in the environment, not as a machine path


def test_the_kernel_channel_is_encrypted_and_starts_without_a_warning(fake_repo, data_dir, capfd):
    # The kernel writes to the terminal directly (capfd, not capsys): ipykernel warns there when
    # code and outputs travel over TCP unencrypted.
    reproduce.reproduce(notebooks=["a.ipynb"], data_dir=data_dir, log=lambda *_: None)
    err = capfd.readouterr().err
    assert "without encryption" not in err
    assert reproduce.KERNEL_CONFIG.KernelManager.transport_encryption == "auto"
    executed = nbformat.read(fake_repo / "notebooks" / "a.ipynb", as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_full_setting_and_devices_reach_the_notebooks(fake_repo, data_dir, monkeypatch):
    _notebook(fake_repo / "notebooks" / "c.ipynb", """
import os
from helpers import config, results
results.update_results({"seen": {"size": image_size, "epochs": epochs, "devices": os.environ["SKIN_DEVICES"]}},
                       config.output_dirs().results)
""", "quick = False\nimage_size = 64\nepochs = 40")
    monkeypatch.setattr(reproduce, "FULL", {"c.ipynb": {"image_size": 224, "not_declared": 1}})
    final = reproduce.reproduce(notebooks=["c.ipynb"], data_dir=data_dir, full=True, devices="mirrored",
                                log=lambda *_: None)
    assert final["seen"] == {"size": 224, "epochs": 40, "devices": "mirrored"}
    run = final["run"]["partial_reruns"][-1]  # notebook c alone: recorded as a partial rerun
    assert (run["full"], run["devices"], run["machine"]["gpus"]) == (True, "mirrored", [])
    final = reproduce.reproduce(notebooks=["c.ipynb"], data_dir=data_dir, log=lambda *_: None)
    assert final["seen"] == {"size": 64, "epochs": 40, "devices": "auto"}
    assert final["run"]["partial_reruns"][-1]["full"] is False
    with pytest.raises(reproduce.UsageError, match="unknown --devices 'gpu'"):
        reproduce.reproduce(notebooks=["c.ipynb"], data_dir=data_dir, devices="gpu", log=lambda *_: None)


def test_relative_data_dir_means_the_callers_folder(fake_repo, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKIN_DATA_DIR", "data")  # relative to the caller, not to notebooks/
    reproduce.reproduce(notebooks=["a.ipynb"], output_dir="out", log=lambda *_: None)
    seen = json.loads((tmp_path / "out" / "saved_models" / "results.json").read_text())["seen"]
    assert seen == {"data_dir": str(data_dir.resolve()), "quick": False}
    monkeypatch.delenv("SKIN_DATA_DIR")
    reproduce.reproduce(notebooks=["a.ipynb"], data_dir="data", output_dir="out2", log=lambda *_: None)
    seen = json.loads((tmp_path / "out2" / "saved_models" / "results.json").read_text())["seen"]
    assert seen["data_dir"] == str(data_dir.resolve())


def test_a_promotion_cut_short_is_finished_by_the_next_run(tmp_path):
    root = tmp_path / "root"
    (root / "saved_models").mkdir(parents=True)
    (root / "saved_models" / "results.json").write_text("old")
    (root / "saved_models" / "stale.keras").write_text("stale")
    work = root / ".run-abc"
    (work / "saved_models").mkdir(parents=True)
    (work / "saved_models" / "results.json").write_text("new")
    (work / "images").mkdir()
    (work / "images" / "fig.png").write_text("new fig")
    (work / reproduce.PROMOTE_FILE).write_text(json.dumps({
        "move": ["saved_models/results.json", "images/fig.png"], "remove": ["saved_models/stale.keras"]}))
    # killed after moving the figure, before the rest
    (root / "images").mkdir()
    os.replace(work / "images" / "fig.png", root / "images" / "fig.png")
    reproduce.recover(root, log=lambda *_: None)
    assert _snapshot(root) == {
        "saved_models/results.json": hashlib.sha256(b"new").hexdigest(),
        "images/fig.png": hashlib.sha256(b"new fig").hexdigest()}
    unfinished = root / ".run-def"  # never reached its commit point: discarded
    (unfinished / "saved_models").mkdir(parents=True)
    (unfinished / "saved_models" / "results.json").write_text("half")
    reproduce.recover(root, log=lambda *_: None)
    assert not list(root.glob(".run-*")) and (root / "saved_models" / "results.json").read_text() == "new"


def test_notebook_selection_is_explicit(capsys):
    assert reproduce.select_notebooks(None) == config.NOTEBOOKS
    assert reproduce.select_notebooks(["3", "Project"]) == ["3_Transfer_Learning_Models.ipynb",
                                                            "Project_Main_Notebook.ipynb"]
    for bad in (["9"], [], ["1", "x"]):
        with pytest.raises(reproduce.UsageError, match="1_Data_Exploration.ipynb"):
            reproduce.select_notebooks(bad)
    assert cli.main(["reproduce", "--notebooks", "9"]) == 2
    err = capsys.readouterr().err
    assert "no notebook starts with '9'" in err and "6_Seed_Variability.ipynb" in err
    assert cli.main(["reproduce", "--notebooks"]) == 2


def test_unusable_output_dir_is_a_clear_error(tmp_path, data_dir, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert cli.main(["reproduce", "--data-dir", str(data_dir), "--output-dir", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["reproduce", "--data-dir", str(data_dir), "--output-dir", str(a_file / "sub")]) == 2
    assert "cannot be written" in capsys.readouterr().err
    try:  # /sys is read-only even for root on Linux machines like CI's
        tempfile.NamedTemporaryFile(dir="/sys").close()
        pytest.skip("/sys is writable here: no read-only folder to test with")
    except OSError:
        pass
    assert cli.main(["reproduce", "--data-dir", str(data_dir), "--output-dir", "/sys/skin-lesion-test"]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_reproduce_without_data_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SKIN_DATA_DIR", raising=False)
    assert cli.main(["reproduce", "--data-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "python -m helpers download" in err
    an_image = tmp_path / "one.jpg"
    an_image.write_bytes(b"\xff\xd8\xff")
    assert cli.main(["reproduce", "--data-dir", str(an_image)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def _run_notebook_1(data: Path, out: Path) -> subprocess.Popen:
    # Only the tiny data set: no $SKIN_HAM10000_DIR (CI sets it), which would make notebook 1
    # read and hash the shared HAM10000 folder three times over.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKIN_")}
    return subprocess.Popen([sys.executable, "-m", "helpers", "reproduce", "--quick", "--notebooks", "1",
                             "--data-dir", str(data), "--output-dir", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_a_killed_real_run_leaves_the_last_run_in_place(tmp_path):
    """A real quick run of notebook 1 on a tiny data set completes; a second one is
    SIGKILLed (with its kernel) while notebook 1 runs: the first run is still there
    byte for byte, and what the next run does first (``recover``, under the run's
    lock) clears what the killed one left and keeps the first run. (A third real run
    would take another ~25 s to show the same; the first one shows a run completes.)"""
    data = tmp_path / "tiny"
    folder_dataset(data, {(s, c): 12 for s in ("train", "test") for c in ("benign", "malignant")}, size=64)
    out = tmp_path / "out"
    first = _run_notebook_1(data, out)
    log, _ = first.communicate(timeout=300)
    assert first.returncode == 0, log
    before = _snapshot(out)
    assert "saved_models/split.csv" in before and "notebooks/1_Data_Exploration.ipynb" in before

    second = _run_notebook_1(data, out)
    deadline = time.monotonic() + 120
    while not any((w / "notebooks").is_dir() for w in out.glob(".run-*")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the staging folder exists and papermill has started notebook 1
    time.sleep(3)
    os.killpg(second.pid, signal.SIGKILL)
    second.communicate(timeout=60)
    left = list(out.glob(".run-*"))
    assert left, "the killed run should have been caught while staging"
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".run-")} == before

    said: list[str] = []
    with reproduce._exclusive(out):  # the killed run's lock died with it
        reproduce.recover(out, said.append)
    assert said == [f"[reproduce] removing the staging folder of an unfinished run ({left[0].name})"]
    assert not list(out.glob(".run-*")) and _snapshot(out) == before


# ---------------------------------------------------------------------------
# A fresh machine: no data in data/, none named -> the default set is fetched
# ---------------------------------------------------------------------------

@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """data/ (empty) and data/isic-archive in tmp, no data folder named, the ISIC Archive and isic-cli
    faked (helpers.data.download's tests cover them), and the chain stubbed: nothing trains."""
    data = tmp_path / "data"
    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", data)
    monkeypatch.setattr(download, "DEFAULT_OUT", data / "isic-archive")
    monkeypatch.setattr(download, "DEFAULT_LIMIT", 6)
    for name in ("SKIN_DATA_DIR", "SKIN_HAM10000_DIR", "SKIN_OUTPUT_DIR"):  # CI sets the first two
        monkeypatch.delenv(name, raising=False)
    archive, isic = FakeArchive(), FakeIsicCli(log=print)
    monkeypatch.setattr(requests, "get", archive.requests_get)
    monkeypatch.setattr(download, "_run_subprocess", isic)
    ham_fetches: list[Path] = []

    def fetch_ham(name, out_dir, log=print):  # data.collection's own tests fake the archive for it
        ham_fetches.append(Path(out_dir))
        ham_dataset(Path(out_dir), ["nv", "mel"])
        return {"n_images": 2}

    monkeypatch.setattr(collection, "download_collection", fetch_ham)
    chain: list[str] = []
    monkeypatch.setattr(reproduce, "ensure_kernel", lambda: "stub")
    monkeypatch.setattr(reproduce, "run_notebooks",
                        lambda work, **kw: chain.append(os.environ["SKIN_DATA_DIR"]) or {})
    monkeypatch.setattr(reproduce, "_export_best", lambda *a: None)
    monkeypatch.setattr(reproduce, "_benchmark_page", lambda *a: None)
    monkeypatch.setattr(reproduce, "build_presentation", lambda *a: None)
    return {"data": data, "archive": archive, "isic": isic, "chain": chain, "out": tmp_path / "out",
            "ham_fetches": ham_fetches, "fetch_ham": fetch_ham}


def test_a_fresh_machine_fetches_the_default_data_and_runs_on_it(fresh_machine, capsys):
    data, out = fresh_machine["data"], fresh_machine["out"]
    assert cli.main(["reproduce", "--notebooks", "1", "--output-dir", str(out)]) == 0
    said = capsys.readouterr().out.splitlines()
    plan = said.index(f"[reproduce] Plan: fetch 6 dermoscopic images from the ISIC Archive "
                      f"({download.API_URL}) with isic-cli into {data / 'isic-archive'}")
    assert said.index("[reproduce] fetching benign (1/2): 3 images ...") == plan + 5
    assert said.index("RUN benign") > plan and "RUN malignant" in said
    assert fresh_machine["chain"] == [str(data)], "the chain ran on the fetched data"
    assert (data / "isic-archive" / "download.json").is_file()
    assert len(list((data / "isic-archive").glob("*.jpg"))) == 6
    assert fresh_machine["ham_fetches"] == [data / "ham10000"], "and HAM10000, which notebook 5 trains on"
    assert any(line.startswith("[reproduce] no HAM10000 folder") for line in said)

    fresh_machine["archive"].requests.clear()
    fresh_machine["isic"].commands.clear()
    assert cli.main(["reproduce", "--notebooks", "1", "--output-dir", str(out)]) == 0
    assert fresh_machine["archive"].requests == [] and fresh_machine["isic"].commands == [], \
        "data in place: nothing is fetched again"
    assert len(fresh_machine["ham_fetches"]) == 1


def test_a_ham10000_fetch_cut_short_is_resumed_and_a_failed_one_says_what_to_do(fresh_machine, monkeypatch, capsys):
    data, out = fresh_machine["data"], fresh_machine["out"]
    monkeypatch.setattr(collection, "download_collection", lambda *a, **k: (_ for _ in ()).throw(
        download.DownloadError("isic-cli failed (exit code 1) fetching HAM10000")))
    assert cli.main(["reproduce", "--notebooks", "1", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "HAM10000, which notebook 5 trains on, could not be fetched" in err
    assert "python -m helpers download --collection HAM10000" in err and "SKIN_HAM10000_DIR" in err
    assert (data / "isic-archive" / "download.json").is_file() and fresh_machine["chain"] == []
    fresh_machine["isic"].commands.clear()
    monkeypatch.setattr(collection, "download_collection", fresh_machine["fetch_ham"])  # online again
    assert cli.main(["reproduce", "--notebooks", "1", "--output-dir", str(out)]) == 0
    assert fresh_machine["ham_fetches"] == [data / "ham10000"] and fresh_machine["isic"].commands == [], \
        "the binary set is reused, HAM10000 fetched"
    assert fresh_machine["chain"] == [str(data)]


def test_no_download_keeps_the_old_error(fresh_machine, monkeypatch, capsys):
    monkeypatch.setattr(requests, "get", _no_network)
    assert cli.main(["reproduce", "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "python -m helpers download" in err and "SKIN_DATA_DIR" in err
    (fresh_machine["data"] / "isic-archive" / download.PARTS_DIR / "benign").mkdir(parents=True)
    (fresh_machine["data"] / "isic-archive" / download.PARTS_DIR / "benign" / "ISIC_B000000.jpg").write_bytes(b"x")
    assert cli.main(["reproduce", "--no-download"]) == 2
    assert "holds an unfinished download" in capsys.readouterr().err
    assert fresh_machine["isic"].commands == [] and fresh_machine["chain"] == []


def test_offline_a_fresh_machine_is_told_what_to_do(fresh_machine, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise requests.ConnectionError("Name or service not known")

    monkeypatch.setattr(requests, "get", offline)
    assert cli.main(["reproduce"]) == 2
    err = capsys.readouterr().err
    assert "could not be fetched from the ISIC Archive: no internet: cannot reach the ISIC Archive" in err
    assert "python -m helpers download --out data/isic-archive" in err and "SKIN_DATA_DIR" in err
    assert fresh_machine["isic"].commands == [] and fresh_machine["chain"] == []
    assert not fresh_machine["data"].exists(), "a download that could not start leaves no empty folder"


def test_a_named_folder_that_is_wrong_is_never_filled(fresh_machine, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(requests, "get", _no_network)
    assert cli.main(["reproduce", "--data-dir", str(tmp_path / "typo")]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setenv("SKIN_DATA_DIR", str(tmp_path / "typo"))
    assert cli.main(["reproduce"]) == 2
    assert "from $SKIN_DATA_DIR) does not exist" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists() and not fresh_machine["data"].exists()


def _no_network(*args, **kwargs):
    raise AssertionError("nothing should be fetched")
