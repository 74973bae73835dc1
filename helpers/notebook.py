"""One call sets a notebook up: ``nb = setup("baselines", seed=seed, quick=quick)``.

It quiets TensorFlow's start-up lines, seeds Python, NumPy and TensorFlow,
prints the versions a reader needs to reproduce the notebook, and returns a
``Notebook`` that knows where this run writes (``nb.out``), saves figures
(``nb.save_fig``) and applies the quick setting (``nb.shrink``), whose
values all live in ``helpers.config.QUICK``.
"""
from __future__ import annotations

import inspect
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from .startup import import_tensorflow_quietly

# Before anything below imports TensorFlow: its C++ start-up lines are not for
# readers of the notebooks.
import_tensorflow_quietly()

from . import __version__  # noqa: E402
from .config import QUICK, OutputDirs, output_dirs  # noqa: E402
from .figures import save_fig  # noqa: E402
from .seeding import set_seed  # noqa: E402
from .training import devices  # noqa: E402

# Packages whose versions every notebook prints.
VERSIONS = ("tensorflow-cpu", "keras", "numpy", "pandas", "scikit-learn", "lime", "matplotlib")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a reader needs to reproduce a notebook."""
    out = {"python": platform.python_version()}
    for pkg in VERSIONS:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    if out["tensorflow-cpu"] == "not installed":  # the GPU profile installs TensorFlow's CUDA build
        try:
            out = {"python": out.pop("python"), "tensorflow": metadata.version("tensorflow"), **out}
            del out["tensorflow-cpu"]
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class Notebook:
    """What a notebook needs from its setup: its chapter, seed, quick flag and output folders."""

    chapter: str
    seed: int | None
    quick: bool
    out: OutputDirs

    def shrink(self, **values):
        """In quick mode, cap each parameter at the chapter's ``config.QUICK`` value
        (None, meaning "all", becomes that value); otherwise return them unchanged.
        One value in, one value out; several in, a tuple in the same order."""
        caps = QUICK[self.chapter]
        if self.quick:
            unknown = sorted(set(values) - set(caps))
            if unknown:
                raise KeyError(f"config.QUICK[{self.chapter!r}] has no value for {', '.join(unknown)}")
            values = {k: caps[k] if v is None else min(v, caps[k]) for k, v in values.items()}
        shrunk = tuple(values.values())
        return shrunk[0] if len(shrunk) == 1 else shrunk

    def save_fig(self, fig_id: str, fig=None, **kwargs) -> Path:
        """Save a figure as ``images/<fig_id>.png`` of this run (see ``figures.save_fig``)."""
        return save_fig(fig_id, fig, images_dir=self.out.images, **kwargs)


def setup(chapter: str, *, seed: int | None = None, quick: bool = False) -> Notebook:
    """Set a notebook up; ``chapter`` names its quick settings in ``config.QUICK``."""
    if chapter not in QUICK:
        raise KeyError(f"unknown chapter {chapter!r}; one of {', '.join(QUICK)}")
    pd.set_option("display.precision", 3)
    if seed is not None:
        set_seed(seed)
    nb = Notebook(chapter, seed, bool(quick), output_dirs())
    chosen = devices.use_devices()  # before the notebook builds a model: all GPUs when there are any
    print(f"helpers {__version__}; " + ", ".join(f"{k} {v}" for k, v in versions().items())
          + f"; seed {seed}; quick {nb.quick}; {devices.describe(chosen)}")
    return nb


def show_source(obj) -> None:
    """Show the source code of a helper function or class in the notebook, so the
    reader sees the definition that runs without it being copied here."""
    from IPython.display import Markdown, display  # only inside a notebook

    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))


def show_summary(model, **kwargs) -> None:
    """``model.summary()`` as plain text in one output (no terminal colour codes,
    which a notebook viewer on the web would print as they are)."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kw: lines.append(line), **kwargs)
    print("\n".join(lines))
