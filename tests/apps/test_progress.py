"""helpers.apps.progress: what `make reproduce` says while a notebook runs."""
from __future__ import annotations

import time

import nbformat
import papermill as pm
import pytest

from helpers.apps import progress


def _nb(durations=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter\n\n## 1. Load"), nbformat.v4.new_code_cell("a = 1"),
                nbformat.v4.new_markdown_cell("Some words.\n## 2. Train"), nbformat.v4.new_code_cell("b = 2"),
                nbformat.v4.new_code_cell("c = 3")]
    if durations:
        for cell, d in zip(nb.cells, durations):
            cell.metadata["papermill"] = {"duration": d}
    return nb


def test_sections_and_previous_durations():
    nb = _nb([0.0, 10.0, 0.0, 30.0, 60.0])
    assert progress.section_of(nb, 1) == "1. Load" and progress.section_of(nb, 4) == "2. Train"
    assert progress.section_of(nb, 0) == ""
    assert progress.previous_durations(nb) == [0.0, 10.0, 0.0, 30.0, 60.0]
    assert progress.previous_durations(_nb()) is None  # never run: nothing to go on


def test_estimate_scales_the_previous_run_by_this_runs_speed():
    nb = _nb()
    p = progress.CellProgress("x.ipynb", nb, [0.0, 10.0, 0.0, 30.0, 60.0], print)
    # 20 s for what took 10 s last time: twice as slow, so 90 s of the old run is 180 s left.
    assert p.estimate_left(3, elapsed=20.0) == pytest.approx(180.0)
    assert p.estimate_left(1, elapsed=0.0) == pytest.approx(100.0)  # at the start: the last run's total
    counted = progress.CellProgress("x.ipynb", nb, None, print)
    assert counted.estimate_left(1, 0.0) is None
    assert counted.estimate_left(4, elapsed=20.0) == pytest.approx(10.0)  # 2 code cells in 20 s, 1 to go
    other = progress.CellProgress("x.ipynb", nb, [1.0, 2.0], print)  # another version of the notebook
    assert other.previous is None


def test_the_first_guess_carries_the_speed_of_the_notebooks_already_run():
    # Two notebooks took 30 s where the committed run took 100 s and 50 s (e.g. a quick run),
    # a third had no previous run: 0.2 of the committed times, until this notebook's cells say more.
    speed = progress.chain_speed([(10.0, [0.0, 100.0]), (20.0, [50.0]), (99.0, None)])
    assert speed == pytest.approx(0.2)
    assert progress.chain_speed([]) == 1.0 and progress.chain_speed([(5.0, None)]) == 1.0
    p = progress.CellProgress("x.ipynb", _nb(), [0.0, 10.0, 0.0, 30.0, 60.0], print, speed=speed)
    assert p.estimate_left(1, elapsed=0.0) == pytest.approx(20.0)
    assert p.estimate_left(3, elapsed=20.0) == pytest.approx(180.0)  # its own cells now: twice as slow


def test_a_run_reports_each_cell_with_its_section(tmp_path):
    source, out = tmp_path / "n.ipynb", tmp_path / "out.ipynb"
    nb = _nb()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, source)
    lines: list[str] = []
    engine = progress.register("n.ipynb", None, lines.append, every=0.0)
    pm.execute_notebook(str(source), str(out), engine_name=engine, progress_bar=False, kernel_name="python3")
    assert [line.split(",")[0] for line in lines] == [
        "[reproduce]   n.ipynb: cell 1/3 (1. Load)", "[reproduce]   n.ipynb: cell 2/3 (2. Train)",
        "[reproduce]   n.ipynb: cell 3/3 (2. Train)"]
    assert "left" in lines[-1] and "so far" in lines[-1]
    assert nbformat.read(out, 4).cells[4].metadata["papermill"]["duration"] is not None


def test_chain_profile_reads_papermills_time_per_cell(tmp_path):
    from helpers.report.tables import profile_line

    nbformat.write(_nb([0.0, 10.0, 0.0, 30.0, 60.0]), tmp_path / "1_A.ipynb")
    nbformat.write(_nb([0.0, 20.0, 0.0, 5.0, None]), tmp_path / "2_B.ipynb")  # a cell that never ran
    profile = progress.chain_profile(tmp_path, ["1_A.ipynb", "2_B.ipynb", "3_missing.ipynb"], top=2)
    assert profile["code_cell_seconds"] == {"1_A.ipynb": 100.0, "2_B.ipynb": 25.0}
    assert profile["chain_code_cell_seconds"] == 125.0 and profile["n_code_cells"] == 5
    assert [(c["notebook"], c["cell"], c["section"], c["seconds"], c["share"]) for c in profile["slowest_cells"]] == [
        ("1_A.ipynb", 4, "2. Train", 60.0, 0.48), ("1_A.ipynb", 3, "2. Train", 30.0, 0.24)]
    rerun = tmp_path / "rerun"  # a partial rerun of notebook 2: its cells from the rerun, notebook 1's from before
    rerun.mkdir()
    nbformat.write(_nb([0.0, 2.0, 0.0, 1.0, 1.0]), rerun / "2_B.ipynb")
    both = progress.chain_profile([rerun, tmp_path], ["1_A.ipynb", "2_B.ipynb"], top=2)
    assert both["code_cell_seconds"] == {"1_A.ipynb": 100.0, "2_B.ipynb": 4.0}
    line = profile_line({"profile": profile})
    assert 'notebook 1 "2. Train" 60 s (48%); notebook 1 "2. Train" 30 s (24%)' in line and "2.1 min" in line
    assert profile_line({}) == ""


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_long_cell_right_after_a_short_one_is_named_while_it_runs():
    # Notebook 6: its setup cells took seconds, the next one 20 minutes, and the log showed
    # "cell 1/7" all that time, because that cell started within `every` of the last line.
    clock, lines = _Clock(), []
    p = progress.CellProgress("x.ipynb", _nb(), [0.0, 10.0, 0.0, 30.0, 60.0], lines.append, every=10.0,
                              heartbeat=60.0, clock=clock)
    p.cell_started(1)
    clock.now = 2.0
    p.cell_started(3)  # within 10 s of the last line: not yet
    clock.now = 5.0
    p.tick()
    assert len(lines) == 1 and "cell 1/3" in lines[0]
    clock.now = 10.0
    p.tick()  # still running 10 s after the last line: named now, with its time so far
    # left: the last run's 30 + 60 s at this run's speed (2 s for its 10 s: 0.2x), less the 8 s in the cell
    assert lines[1] == ("[reproduce]   x.ipynb: cell 2/3 (2. Train), 10 s so far, this cell 8 s, "
                        "about 10 s left")
    clock.now = 60.0
    p.tick()
    assert len(lines) == 2  # no news within the heartbeat
    clock.now = 70.0
    p.tick()
    assert lines[2].startswith("[reproduce]   x.ipynb: cell 2/3 (2. Train), 1.2 min so far, this cell 1.1 min")
    p.cell_finished()
    clock.now = 500.0
    p.tick()
    assert len(lines) == 3  # between cells nothing runs: nothing to say


def test_a_cell_past_its_estimate_says_so_rather_than_a_negative_time():
    clock, lines = _Clock(), []
    p = progress.CellProgress("x.ipynb", _nb(), [0.0, 10.0, 0.0, 30.0, 60.0], lines.append, heartbeat=60.0,
                              clock=clock)
    p.cell_started(1)
    clock.now = 1000.0
    p.tick()
    assert lines[-1].endswith("this cell 16.7 min, longer than the estimate")


def test_a_real_run_names_the_long_cell_while_it_runs(tmp_path):
    source, out = tmp_path / "n.ipynb", tmp_path / "out.ipynb"
    nb = _nb()
    nb.cells[3].source = "import time\ntime.sleep(1.5)"
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, source)
    lines: list[str] = []
    engine = progress.register("n.ipynb", None, lines.append, every=30.0, heartbeat=0.5)
    pm.execute_notebook(str(source), str(out), engine_name=engine, progress_bar=False, kernel_name="python3")
    assert lines[0].startswith("[reproduce]   n.ipynb: cell 1/3 (1. Load)")
    assert any(line.startswith("[reproduce]   n.ipynb: cell 2/3 (2. Train)") and "this cell" in line
               for line in lines)  # the sleeping cell, named while it slept
    n = len(lines)
    time.sleep(0.7)
    assert len(lines) == n  # the ticking stopped with the notebook
