"""README's commands, run verbatim, in a copy of the repository beside ../shared.

Every shell command of README.md (in ```bash blocks and `inline code`) that can
run here is run exactly as written, from the copy's top folder, with none of
the SKIN_* variables of this shell. The copy's notebooks are replaced by quick
stand-ins that resolve the data folder the way the real ones do (the real chain
is tests/test_chain.py), so `make reproduce` takes seconds. Commands with
placeholders ([...], DIR, NAME), `make test` itself, conda and the GPU profile
(several GB of CUDA wheels, and no GPU here) are not run; of the two commands that start
the web page, the first is started and the other is checked to be what it runs. The
project's environment is active (.venv/bin first on PATH), as README asks.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from helpers import config

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PLACEHOLDER = re.compile(r"\[|\.\.\.|\bDIR\b|\bNAME\b|NAME_OR_PATH|IMAGE_OR_FOLDER|\bN\b")
NOT_RUN = ("make test", "conda ", "make setup-gpu", ".venv-gpu/")

pytestmark = pytest.mark.real_data

STAND_IN = """
from helpers import config, results
results.update_results({"readme_check": {NAME: str(config.resolve_data_dir(data_dir))}}, config.output_dirs().results)
"""


def readme_commands() -> list[str]:
    """Shell commands written in README.md, comments stripped, in order."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        commands += [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    commands += re.findall(r"`((?:SKIN_DATA_DIR=\S+ )?make \w+)`", text)
    runnable = [c for c in commands if not PLACEHOLDER.search(c) and not c.startswith(NOT_RUN)]
    # the chain last: a whole run replaces the copy's saved models, which `predict` uses
    return sorted(dict.fromkeys(runnable), key=lambda c: "make " in c and not c.endswith("serve"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, isic_mvb_dir):
    """A copy of the tracked files beside a ``shared`` link, with this venv and stand-in notebooks."""
    if not (REPO / ".venv" / ".installed").is_file():
        pytest.skip("needs the project's .venv (make test creates it)")
    ws = tmp_path_factory.mktemp("ws")
    (ws / "shared").mkdir()
    (ws / "shared" / "data").symlink_to(isic_mvb_dir.parent)
    repo = ws / "repo"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        if (REPO / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, repo / rel)
    (repo / ".venv").symlink_to(REPO / ".venv")
    stamp = (REPO / ".venv" / ".installed").stat().st_mtime
    for rel in ("environment/requirements.txt", "pyproject.toml"):  # make: the venv is up to date
        os.utime(repo / rel, (stamp - 60, stamp - 60))
    for name in config.NOTEBOOKS:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("quick = False\ndata_dir = None", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(STAND_IN.replace("NAME", repr(name)))]
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
        nbformat.write(nb, repo / "notebooks" / name)
    test_images = sorted((isic_mvb_dir / "test" / "malignant").glob("*.jpg"))[:3]
    shutil.copy(test_images[0], repo / "some_image.jpg")
    (repo / "my_photos").mkdir()
    for p in test_images[1:]:
        shutil.copy(p, repo / "my_photos" / p.name)
    return repo


def _user_env(cwd: Path) -> dict[str, str]:
    """The environment of a user's shell in the copy ``cwd``: none of the SKIN_* variables CI
    sets, none of make's own (under `make test`, MAKELEVEL would make a nested make print
    "Entering directory" lines), and the project's environment active, as README asks."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SKIN_") and k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    env["PATH"] = f"{cwd / '.venv' / 'bin'}:{env['PATH']}"
    env["PYTHONPATH"] = str(cwd)  # the kernels import the copy's helpers, as in a clone
    return env


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=_user_env(cwd), capture_output=True, text=True,
                          timeout=600)


def test_readme_lists_the_commands_we_expect():
    commands = readme_commands()
    assert "SKIN_DATA_DIR=../shared/data/isic-mvb make reproduce" in commands
    assert any(c.startswith(".venv/bin/python -m helpers predict") for c in commands)
    assert not any(c.startswith(NOT_RUN) for c in commands)  # e.g. `make setup-gpu`, written but not run here


def test_readme_commands_run_verbatim(sandbox):
    data = (sandbox.parent / "shared" / "data" / "isic-mvb").resolve()
    online = _online()
    served = None
    for command in readme_commands():
        if command.endswith("serve") and served:  # one page start is enough: the other is the same command
            _check_make_serve_runs({command, served}, sandbox)
            continue
        if command.endswith("serve"):  # serves until stopped: it must answer on 127.0.0.1
            assert _serves(command, sandbox)
            served = command
            continue
        if online and (command in ("make reproduce", "make quick") or " download " in command):
            continue  # with no data it would fetch 1000 images from the ISIC Archive: not in a test
        done = run(command, sandbox)
        said = done.stdout + done.stderr
        if command in ("make reproduce", "make quick"):  # no data anywhere, offline: the reason and how to get some
            assert done.returncode != 0 and "SKIN_DATA_DIR" in said and "python -m helpers download" in said, said
            assert "could not be fetched from the ISIC Archive" in said, said
        elif command.endswith("make reproduce"):  # a relative SKIN_DATA_DIR means the caller's folder
            assert done.returncode == 0, said
            seen = json_results(sandbox)["readme_check"]
            assert set(seen) == set(config.NOTEBOOKS) and set(seen.values()) == {str(data)}, seen
        elif " download " in command:
            assert done.returncode == 1 and "no internet" in said, said
        elif " predict " in command:
            assert done.returncode == 0, said
            assert ("--json" in command) == said.lstrip().startswith("{"), said
            assert "malignant" in said and "Research model, not a diagnosis" in said
        else:
            raise AssertionError(f"README command not covered by this test: {command}")


def _check_make_serve_runs(commands: set[str], cwd: Path) -> None:
    """``make serve`` and the other README command that starts the page start the same
    thing: what make would run (``make -n``: printed, not run), set-up aside, is that command."""
    (other,) = commands - {"make serve"}
    done = run("make -n serve", cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].strip() == other, done.stdout


def _serves(command: str, cwd: Path, url: str = "http://127.0.0.1:7860/") -> bool:
    """Start a command that serves the page, wait until the page answers, stop it."""
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 7860)) != 0, "port 7860 is taken: stop what serves there first"
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=_user_env(cwd), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            try:
                return b"Skin-lesion classifier" in urllib.request.urlopen(url, timeout=2).read()
            except OSError:
                time.sleep(1)
        raise AssertionError(f"{command} did not serve {url} within 180 s (exit status {proc.poll()})")
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the whole group: make, its shell and python
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
                break


def json_results(repo: Path) -> dict:
    return json.loads((repo / "saved_models" / "results.json").read_text())


def _online() -> bool:
    try:
        socket.create_connection(("api.isic-archive.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_readme_gives_exit_codes_for_every_command():
    from helpers.apps import cli

    table = README.read_text().split("Exit codes, for every command:")[1].split("\n## ")[0]
    missing = [c for c in cli.COMMANDS if f"| `{c}` |" not in table]
    assert not missing, f"README's exit-code table lacks {missing}"
