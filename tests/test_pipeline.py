"""The chain runner: staging, promotion, and a failed notebook leaving the last good run."""
import json

import nbformat
import pytest

from helpers import cli, pipeline


def _notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("quick = False", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, path)


WRITE_RESULT = """
from helpers import config, results
results.record_model("m", {"test": {"n": 1}}, config.output_dirs().results)
(config.output_dirs().images / "fig.png").write_bytes(b"png")
"""


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "saved_models").mkdir()
    (repo / "saved_models" / "results.json").write_text(json.dumps({"models": {"previous": {}}}))
    (repo / "README.md").write_text("<!-- results:start -->\n<!-- results:end -->\n"
                                    "<!-- predict:start -->\n<!-- predict:end -->\n")
    _notebook(repo / "notebooks" / "a.ipynb", WRITE_RESULT)
    _notebook(repo / "notebooks" / "b.ipynb", "raise RuntimeError('boom in b')")
    monkeypatch.setattr(pipeline, "REPO_ROOT", repo)
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", repo / "notebooks")
    monkeypatch.delenv("SKIN_OUTPUT_DIR", raising=False)
    return repo


def test_failed_notebook_leaves_previous_run_in_place(fake_repo):
    with pytest.raises(pipeline.ChainError, match=r"(?s)notebook b\.ipynb failed.*boom in b"):
        pipeline.reproduce(notebooks=["a.ipynb", "b.ipynb"], log=lambda *_: None)
    assert json.loads((fake_repo / "saved_models" / "results.json").read_text()) == {"models": {"previous": {}}}
    assert not (fake_repo / "images" / "fig.png").exists()
    assert (fake_repo / ".last-failed-run" / "b.ipynb").exists()
    assert not list(fake_repo.glob(".run-*"))  # staging cleaned up


def test_successful_run_is_promoted(fake_repo):
    final = pipeline.reproduce(notebooks=["a.ipynb"], log=lambda *_: None)
    saved = json.loads((fake_repo / "saved_models" / "results.json").read_text())
    assert set(saved["models"]) == {"previous", "m"} and saved == final
    assert saved["timings"]["a.ipynb"] > 0 and saved["run"]["commit"] is None or isinstance(saved["run"]["commit"], str)
    assert (fake_repo / "images" / "fig.png").read_bytes() == b"png"
    assert (fake_repo / "Presentation.pdf").read_bytes().startswith(b"%PDF")
    executed = nbformat.read(fake_repo / "notebooks" / "a.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert "| m |" in (fake_repo / "README.md").read_text()


def test_reproduce_without_data_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SKIN_DATA_DIR", raising=False)
    assert cli.main(["reproduce", "--data-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "python -m helpers download" in err
