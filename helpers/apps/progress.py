"""Progress inside a notebook while ``reproduce`` runs it: cell k of n, the section
it is in, the time so far and an estimate of the time left.

The estimate comes from the notebook's previous run when there is one (the
committed notebooks carry papermill's time per cell): the time still to go in
that run, scaled by how fast this run has been so far. Without one, it is the
mean time per cell so far times the cells left.

Papermill offers a tqdm bar only; a line per step reads better in a log, so
this is a papermill engine (the nbclient one) whose execution manager also
reports each code cell as it starts.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import nbformat
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ENGINE_NAME = "skin-lesion-progress"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def previous_durations(nb: nbformat.NotebookNode) -> list[float] | None:
    """Seconds per cell of the run that produced ``nb`` (None if it was not run whole)."""
    times = [c.get("metadata", {}).get("papermill", {}).get("duration") for c in nb.cells]
    code = [t for c, t in zip(nb.cells, times) if c.cell_type == "code"]
    if not code or any(t is None for t in code):
        return None
    return [float(t or 0.0) for t in times]


def section_of(nb: nbformat.NotebookNode, index: int) -> str:
    """The nearest markdown heading above cell ``index`` ('' if none)."""
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown":
            for line in reversed(cell.source.splitlines()):
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


class CellProgress:
    """Reports the start of each code cell of one notebook, at most every ``every`` seconds,
    and, while a cell runs, a line every ``heartbeat`` seconds (``tick``): a long cell that
    began right after a short one was otherwise never named, and the log sat on the
    previous cell's line for as long as it ran (notebook 6: 20 minutes on "cell 1/7")."""

    def __init__(self, name: str, nb: nbformat.NotebookNode, previous: list[float] | None,
                 log: Callable[[str], None], every: float = 10.0, speed: float = 1.0,
                 heartbeat: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.name, self.nb, self.log, self.every, self.heartbeat = name, nb, log, every, heartbeat
        # This run's time per second of the previous run's, from the notebooks it has finished
        # (``chain_speed``): the guess until this notebook's own cells say more.
        self.speed = speed
        # The previous run is only a guide when it had the same cells.
        self.previous = previous if previous is not None and len(previous) == len(nb.cells) else None
        self.code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        self.clock = clock
        self.start_time = clock()
        self.last_report = -float("inf")
        self.current: tuple[int, float] | None = None  # the code cell running now, and when it started
        self.reported: int | None = None               # the cell the last line named
        self._lock = threading.Lock()                  # cell events and the ticking thread
        self._stop: threading.Event | None = None

    def estimate_left(self, index: int, elapsed: float) -> float | None:
        """Seconds left before cell ``index`` starts, or None when there is nothing to go on."""
        if self.previous is not None:
            done_before, to_go = sum(self.previous[:index]), sum(self.previous[index:])
            speed = elapsed / done_before if done_before > 1.0 and elapsed > 1.0 else self.speed
            return to_go * speed
        done = sum(1 for i in self.code if i < index)
        return elapsed / done * (len(self.code) - done) if done else None

    def cell_started(self, index: int) -> None:
        if index not in self.code:
            return
        with self._lock:
            now = self.clock()
            self.current = (index, now)
            if now - self.last_report < self.every and index != self.code[0]:
                return  # ``tick`` names it if it still runs once ``every`` has passed
            self._report(now)

    def cell_finished(self) -> None:
        with self._lock:
            self.current = None

    def tick(self) -> None:
        """Name a running cell whose start went unreported, once ``every`` has passed since
        the last line, and repeat the running cell's line every ``heartbeat`` seconds."""
        with self._lock:
            if self.current is None:
                return
            now = self.clock()
            if ((self.reported != self.current[0] and now - self.last_report >= self.every)
                    or now - self.last_report >= self.heartbeat):
                self._report(now)

    def _report(self, now: float) -> None:
        index, started = self.current
        self.last_report, self.reported = now, index
        elapsed, in_cell = now - self.start_time, now - started
        left = self.estimate_left(index, started - self.start_time)
        if left is not None:
            left -= in_cell
        k = self.code.index(index) + 1
        section = section_of(self.nb, index)
        self.log(f"[reproduce]   {self.name}: cell {k}/{len(self.code)}"
                 + (f" ({section[:60]})" if section else "")
                 + f", {_minutes(elapsed)} so far"
                 + (f", this cell {_minutes(in_cell)}" if in_cell >= 1.0 else "")
                 + ("" if left is None else f", about {_minutes(left)} left" if left > 0
                    else ", longer than the estimate"))

    def start_ticking(self) -> None:
        """A daemon thread that calls ``tick`` until ``stop_ticking``."""
        self._stop = stop = threading.Event()
        interval = max(0.05, min(self.every, self.heartbeat) / 2)

        def run():
            while not stop.wait(interval):
                self.tick()

        threading.Thread(target=run, name=f"progress {self.name}", daemon=True).start()

    def stop_ticking(self) -> None:
        if self._stop is not None:
            self._stop.set()
        self.cell_finished()


def chain_speed(finished: list[tuple[float, list[float] | None]]) -> float:
    """This run's seconds per second of the previous run, over the notebooks it has
    finished: (seconds now, previous durations per cell or None) each; 1.0 with nothing
    to compare (a quick run after a full one, or a slower machine, shows here)."""
    now = sum(seconds for seconds, previous in finished if previous)
    before = sum(sum(previous) for _, previous in finished if previous)
    return now / before if before > 1.0 and now > 1.0 else 1.0


def register(name: str, previous: list[float] | None, log: Callable[[str], None], every: float = 10.0,
             speed: float = 1.0, heartbeat: float = 60.0) -> str:
    """Register (again) the engine that reports the progress of notebook ``name``; returns
    the engine's name for ``papermill.execute_notebook(engine_name=...)``. ``speed``: see
    ``chain_speed``; ``every``, ``heartbeat``: see ``CellProgress``."""

    class Manager(NotebookExecutionManager):
        def __init__(self, nb, *args, **kwargs):
            super().__init__(nb, *args, **kwargs)
            # The notebook as executed: with its injected-parameters cell.
            self.progress = CellProgress(name, self.nb, previous, log, every, speed, heartbeat)

        def notebook_start(self, **kwargs):
            super().notebook_start(**kwargs)
            self.progress.start_ticking()

        def cell_start(self, cell, cell_index=None, **kwargs):
            if cell_index is not None:
                self.progress.cell_started(cell_index)
            return super().cell_start(cell, cell_index, **kwargs)

        def cell_complete(self, cell, cell_index=None, **kwargs):
            self.progress.cell_finished()
            return super().cell_complete(cell, cell_index, **kwargs)

        def notebook_complete(self, **kwargs):
            self.progress.stop_ticking()
            return super().notebook_complete(**kwargs)

    class Engine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=False, log_output=False,
                             autosave_cell_every=30, **kwargs):
            # Engine.execute_notebook with this module's manager (papermill has no hook for it).
            nb_man = Manager(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                             autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    papermill_engines.register(ENGINE_NAME, Engine)
    return ENGINE_NAME


def chain_profile(notebooks_dirs, names, top: int = 12) -> dict:
    """Where a run's time went, read from papermill's time per cell in the executed
    notebooks (measured by the run, not estimated): the code-cell seconds of each
    notebook and the ``top`` slowest cells of the whole chain with their section.
    ``notebooks_dirs``: a folder, or several where each notebook is taken from the first
    that has it (a partial rerun's folder, then the repository's notebooks)."""
    folders = [notebooks_dirs] if isinstance(notebooks_dirs, (str, Path)) else list(notebooks_dirs)
    cells, per_notebook = [], {}
    for name in names:
        path = next((Path(f) / name for f in folders if (Path(f) / name).is_file()), None)
        if path is None:
            continue
        nb = nbformat.read(path, as_version=4)
        total = 0.0
        for index, cell in enumerate(nb.cells):
            seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
            if cell.cell_type != "code" or seconds is None:
                continue
            total += seconds
            cells.append({"notebook": name, "cell": index, "section": section_of(nb, index),
                          "seconds": round(float(seconds), 1)})
        per_notebook[name] = round(total, 1)
    chain = sum(per_notebook.values())
    slowest = sorted(cells, key=lambda c: -c["seconds"])[:top]
    for c in slowest:
        c["share"] = round(c["seconds"] / chain, 3) if chain else None
    return {"code_cell_seconds": per_notebook, "chain_code_cell_seconds": round(chain, 1),
            "n_code_cells": len(cells), "slowest_cells": slowest}
