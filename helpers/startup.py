"""Importing TensorFlow without its C++ start-up lines.

``TF_CPP_MIN_LOG_LEVEL`` quiets most of them, but on CPUs where TensorFlow turns
oneDNN on (AVX-512 ones, for example) it logs "oneDNN custom operations are on"
before its logging is set up, and no setting reaches that line. So the first
import runs with the process's standard error (file descriptor 2, which C++
writes to) sent to a temporary file; lines that are not known start-up noise
are written back, so a real error is never hidden.
"""
from __future__ import annotations

import os
import sys
import tempfile

# Lines TensorFlow prints on every start on some machines: not for readers.
STARTUP_NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard",
                 "This TensorFlow binary is optimized", "TF_ENABLE_ONEDNN_OPTS")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow once, dropping its start-up lines; a no-op once it is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    try:
        fd = sys.__stderr__.fileno()
    except (AttributeError, OSError, ValueError):  # no real standard error to redirect
        import tensorflow  # noqa: F401
        return
    sys.__stderr__.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), fd)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.__stderr__.flush()
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            kept = drop_startup_noise(captured.read().decode(errors="replace"))
            if kept:
                sys.stderr.write(kept)


def drop_startup_noise(text: str) -> str:
    """``text`` without the lines of ``STARTUP_NOISE``."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not any(noise in line for noise in STARTUP_NOISE))
