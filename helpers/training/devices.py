"""Which devices train the models: the CPU (every committed number), or every GPU at once.

Each notebook's setup calls ``use_devices()`` once, before any model is built.
The setting comes from ``$SKIN_DEVICES`` (``python -m helpers reproduce --devices``):

* ``auto`` (the default): all GPUs through ``tf.distribute.MirroredStrategy``
  with mixed precision when TensorFlow sees a GPU; otherwise nothing changes, so
  a CPU run is the run the committed results come from.
* ``cpu``: nothing changes, even with a GPU (TensorFlow still picks its device
  per op; hide the GPUs with ``CUDA_VISIBLE_DEVICES=""`` to keep ops off them).
* ``mirrored``: MirroredStrategy even on a CPU (one replica, the CPU), which is
  how the GPU path's code is tested on a machine without one (tests/training).

The strategy is set for the whole process (``tf.distribute.experimental_set_strategy``),
so the models a notebook builds in its own cells are created under it without
a ``with strategy.scope():`` around every cell; Keras trains a model with the
strategy it was built under. Mixed precision (float16 compute, float32 weights)
is for GPUs only: on a CPU it is slower and changes the numbers. Under the
strategy the input's shuffle order and dropout's draws differ from the default
path's for the same seed, so a GPU run is seeded but not bit-equal to a CPU run.
"""
from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

from ..config import DEVICE_SETTINGS as SETTINGS
from ..config import DEVICES_ENV_VAR

_chosen: dict[str, Any] | None = None


def gpus() -> list[str]:
    """The logical GPU devices TensorFlow sees (an empty list with tensorflow-cpu)."""
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def use_devices(setting: str | None = None) -> dict[str, Any]:
    """Set the process's training strategy and precision policy once; returns what was chosen.

    A second call with the same setting returns the first choice; with another
    it is an error, since models already built keep the strategy they were built under.
    """
    global _chosen
    setting = (setting or os.environ.get(DEVICES_ENV_VAR) or "auto").strip().lower()
    if setting not in SETTINGS:
        raise ValueError(f"unknown device setting {setting!r} (${DEVICES_ENV_VAR}): one of {', '.join(SETTINGS)}")
    if _chosen is not None:
        if _chosen["setting"] != setting:
            raise RuntimeError(f"devices already set up as {_chosen['setting']!r} in this process; "
                               f"restart the kernel to use {setting!r}")
        return dict(_chosen)
    found = gpus()
    mirrored = setting == "mirrored" or (setting == "auto" and bool(found))
    strategy = None
    if mirrored:
        # Every GPU, or the one CPU when there is none (the tested path).
        strategy = tf.distribute.MirroredStrategy(found or ["/cpu:0"])
        tf.distribute.experimental_set_strategy(strategy)
    mixed = mirrored and bool(found)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    _chosen = {"setting": setting, "gpus": found,
               "strategy": type(strategy).__name__ if strategy else "default (one device)",
               "replicas": strategy.num_replicas_in_sync if strategy else 1,
               "mixed_precision": mixed}
    return dict(_chosen)


def reset() -> None:
    """Back to TensorFlow's defaults (tests; a notebook restarts its kernel instead)."""
    global _chosen
    tf.distribute.experimental_set_strategy(None)
    keras.mixed_precision.set_global_policy("float32")
    _chosen = None


def describe(chosen: dict[str, Any]) -> str:
    """One line for the setup cell: where this notebook trains."""
    if chosen["strategy"].startswith("default"):
        return "devices: CPU" if not chosen["gpus"] else f"devices: TensorFlow's default ({len(chosen['gpus'])} GPU seen)"
    where = f"{len(chosen['gpus'])} GPU" if chosen["gpus"] else "the CPU"
    return (f"devices: {chosen['strategy']} over {where} ({chosen['replicas']} replica(s))"
            + ("; mixed precision" if chosen["mixed_precision"] else ""))
