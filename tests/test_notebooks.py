"""The committed notebooks as a reader meets them on GitHub: chapters that say what they
teach and end with exercises, a papermill parameters cell with a quick switch, and
outputs from a real run without errors or TensorFlow's start-up lines (issue 15)."""
from __future__ import annotations

import re

import nbformat
import pytest

from helpers import config

CHAPTERS = [nb for nb in config.NOTEBOOKS if nb[0].isdigit()]
NOISE = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations", "This TensorFlow binary is optimized")


def _read(name: str):
    return nbformat.read(config.NOTEBOOKS_DIR / name, as_version=4)


@pytest.mark.parametrize("name", CHAPTERS)
def test_a_chapter_says_what_it_teaches_and_ends_with_exercises(name):
    cells = _read(name).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {name[0]}. ")
    assert "**What you will learn**" in cells[0].source
    last = cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Try this")
    assert len(re.findall(r"^\d\. ", last.source, re.M)) >= 2


@pytest.mark.parametrize("name", CHAPTERS)  # the main notebook trains nothing: no quick setting
def test_parameters_cell_has_the_quick_switch(name):
    tagged = [c for c in _read(name).cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and re.search(r"^quick = False", tagged[0].source, re.M)


@pytest.mark.parametrize("name", config.NOTEBOOKS)
def test_papermill_sees_every_parameter(name):
    """papermill drops a line it cannot parse (e.g. one whose comment holds "=") with a log
    line only: that parameter could then not be set by reproduce or on the command line."""
    from helpers.apps.reproduce import declared_parameters

    tagged = [c for c in _read(name).cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assigned = set(re.findall(r"^(\w+)\s*=", tagged[0].source, re.M))
    assert assigned and declared_parameters(config.NOTEBOOKS_DIR / name) == assigned


@pytest.mark.parametrize("name", config.NOTEBOOKS)
def test_committed_outputs_have_no_errors_or_library_noise(name):
    for i, cell in enumerate(_read(name).cells):
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{name} cell {i}: {out.get('ename')}"
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            assert not any(n in text for n in NOISE), f"{name} cell {i}: {text[:300]}"


@pytest.mark.parametrize("name", config.NOTEBOOKS)
def test_no_cell_dumps_a_whole_record(name):
    # A record_* helper returns all of results.json; left as a cell's last expression it
    # printed 91,000 characters into notebook 5. Tables and summaries stay far below this.
    for i, cell in enumerate(_read(name).cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else out.get("data", {}).get("text/plain", "")
            assert len(text) < 20_000, f"{name} cell {i} shows {len(text)} characters: end the line with `_ =` or `;`"


def test_the_metrics_are_defined_where_first_used():
    glossary = next(c.source for c in _read(config.NOTEBOOKS[1]).cells if c.source.startswith("### The metrics"))
    for term in ("**Sensitivity**", "**ROC AUC**", "**PPV**", "**95% CI**", "**ECE**", "**Brier score**",
                 "**Temperature scaling**", "prevalence"):
        assert term in glossary, term
