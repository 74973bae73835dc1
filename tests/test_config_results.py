import json

import pytest

from helpers import atomic, config, results
from helpers.report import tables


def test_data_dir_precedence(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "x.jpg").write_bytes(b"x")
    monkeypatch.setenv("SKIN_DATA_DIR", str(b))
    assert config.resolve_data_dir(a) == a.resolve()  # parameter beats environment
    assert config.resolve_data_dir(None) == b.resolve()


def test_missing_data_dir_says_how_to_get_data(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIN_DATA_DIR", raising=False)
    with pytest.raises(config.DataNotFoundError, match="does not exist") as err:
        config.resolve_data_dir(tmp_path / "nope")
    assert "python -m helpers download" in str(err.value)
    empty = tmp_path / "empty"
    (empty / "benign").mkdir(parents=True)
    with pytest.raises(config.DataNotFoundError, match="contains no files"):
        config.resolve_data_dir(empty)


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path):
    target = tmp_path / "results.json"
    atomic.write_json(target, {"good": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "r.json", {"auc": float("nan")})
    assert not (tmp_path / "r.json").exists()


def test_results_merge_and_record(tmp_path):
    path = tmp_path / "results.json"
    results.update_results({"timings": {"1": 3.0}}, path)
    results.update_results({"timings": {"2": 4.0}, "run": {"quick": True}}, path)
    results.record_model("cnn", {"test": {"auc": 0.8}, "old_key": 1}, path)
    results.record_model("cnn", {"test": {"auc": 0.9}}, path)  # replaced, not merged
    data = results.load_results(path)
    assert data["timings"] == {"1": 3.0, "2": 4.0}
    assert data["models"]["cnn"] == {"test": {"auc": 0.9}}


def test_corrupt_results_file_is_reported(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        results.load_results(path)


def test_readme_table_is_generated(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nSTALE TABLE\n<!-- results:end -->\nend\n")
    res = {"models": {"small_cnn": {"weights": "none", "image_size": 64, "threshold": 0.31,
                                    "train_seconds": 42.0, "validation": {"auc": 0.87},
                                    "test": {"n": 600, "accuracy": 0.81, "auc": 0.883, "auc_ci95": [0.85, 0.91],
                                             "sensitivity": 0.9, "specificity": 0.7}}},
           "timings": {"1_Data_Exploration.ipynb": 30.0}}
    assert tables.update_readme(readme, res)
    text = readme.read_text()
    assert "| small_cnn | none | 64 | 600 | 0.883 | 0.850-0.910 | 0.900 | 0.700 | n/a | 0.310 | 0.870 | 42 |" in text
    assert "1_Data_Exploration.ipynb 30" in text
    assert "STALE TABLE" not in text and text.startswith("intro") and text.endswith("end\n")
    assert not tables.update_readme(readme, res)  # idempotent


def test_readme_without_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="results:start"):
        tables.update_readme(readme, {})


def test_run_info_records_versions_and_machine():
    info = results.run_info(quick=True)
    assert info["versions"]["keras"] and info["machine"]["cpu_cores"] >= 1 and info["quick"] is True


def test_cpu_description_reads_the_model_and_vector_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16\n")
    assert results.cpu_description(info) == {"cpu": "AMD EPYC 9B14",
                                             "cpu_vector_flags": ["avx2", "fma", "avx512f", "avx512_bf16"]}
    missing = results.cpu_description(tmp_path / "absent")
    assert set(missing) == {"cpu", "cpu_vector_flags"} and missing["cpu_vector_flags"] is None


def test_readme_names_the_cpu_the_numbers_came_from():
    run = {"commit": "abc", "date": "2026-12-03", "quick": False,
           "machine": {"cpu_cores": 2, "cpu": "AMD EPYC", "cpu_vector_flags": ["avx2", "avx512f"], "gpus": []}}
    text = tables.readme_markdown({"models": {}, "run": run, "timings": {}})
    assert text.startswith("_No results yet")  # nothing to say without models
    line = tables.readme_markdown({"models": {"m": {}}, "run": run})
    assert "2 CPU cores (AMD EPYC; avx2, avx512f), no GPU" in line
    del run["machine"]["cpu"]  # a run recorded before the CPU was
    assert "2 CPU cores, no GPU" in tables.readme_markdown({"models": {"m": {}}, "run": run})
