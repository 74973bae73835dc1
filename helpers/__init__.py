"""Shared helpers for the dermoscopic skin-lesion notebook series.

Every notebook imports this package instead of copying code; see README.md.
"""
from __future__ import annotations

from importlib import metadata

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of the packages a reader needs to reproduce a notebook."""
    out = {}
    for pkg in ("python", "tensorflow-cpu", "keras", "numpy", "pandas", "scikit-learn", "lime", "matplotlib"):
        if pkg == "python":
            import platform

            out[pkg] = platform.python_version()
            continue
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
