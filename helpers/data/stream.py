"""Streaming input: a ``tf.data`` pipeline that decodes a split's images from their files.

Why: ``arrays.arrays_from_split`` decodes every image of a split into one NumPy
array, so memory grows with the number of images (9,000 images at 64 px take
1.1 GB as uint8, and 12 times that at 224 px). A stream holds only the batches
in flight and, when asked, a bounded shuffle buffer; images are decoded again
each epoch, or once into an optional on-disk cache. The notebooks and the chain
keep the in-memory path; this is the way to train on more images than fit in
memory, and ``apps/stream_benchmark.py`` measures what it costs.

* **The same pixels.** Every image goes through ``images._try_load``, the
  function the in-memory path (``load_images``) decodes with, wrapped in
  ``tf.numpy_function``. TensorFlow's own decoders would give other pixels: they
  ignore the EXIF orientation, cannot decode at a reduced JPEG DCT scale (PIL's
  ``draft``), resize with another filter, and handle CMYK, 16-bit and
  transparent images differently or not at all. With one decode function the
  streamed batches equal the arrays bit for bit (``tests/data/test_stream.py``).
  PIL releases the GIL while it decodes and resizes, so the parallel map
  (``num_parallel_calls=AUTOTUNE``) does use both cores.
* **Unreadable files** are found up front, before the first batch, so that the
  number of images and of steps per epoch is known and no epoch stops half way:
  each path is decoded once at 8 px with ``images.check_images`` (the check the
  data-set readers use), or taken from a list the caller already has
  (``skipped=``, e.g. ``SplitArrays.skipped`` or notebook 1's report, with
  ``check=False``). They are printed and left out, as the in-memory path does.
  The check is not free: a JPEG must be entropy-decoded whatever the scale, and
  on 224 px JPEGs it took about two thirds of the time of a decode pass at 64 px.
  A file that breaks after the check (deleted, overwritten) never stops an
  epoch: the decode returns a flag, the pipeline filters it out and
  ``ImageStream.skipped`` lists it.
* **Order.** Without shuffle, images come in the order of ``paths``
  (``deterministic=True``, the default, also keeps that order with parallel
  decoding; ``deterministic=False`` lets a faster decode overtake a slower one).
  With ``shuffle=True`` the *paths* are shuffled (a full shuffle costs only the
  strings), with ``seed`` reproducible; ``shuffle(n, seed)`` draws the same
  permutation whatever it shuffles, so a seeded, uncached, repeated float32
  stream yields exactly the batches of ``training.fitting.train_dataset`` on the
  in-memory arrays (tested).
* **Cache.** ``cache=folder`` keeps the decoded, resized uint8 images in a
  ``Dataset.cache`` file (written by the first complete pass, read by every later
  one). Its name holds a fingerprint of the image size, the labels and each
  file's path, size and modification time, so a changed file list, image or
  label never reads a stale cache. A cached stream is shuffled *after* the cache (a cache replays the
  order it recorded), within a buffer of at most ``SHUFFLE_BUFFER_BYTES`` of
  images: exact (the same order as uncached) when the whole split fits, a local
  shuffle when it does not. Two iterators must not write one cache at once.

Large images: ``load_images`` silences PIL's ``DecompressionBombWarning`` around
its thread pool; the stream's decodes run on TensorFlow's threads, where a
process-wide warning filter cannot be set and restored safely, so such an image
(over 89 million pixels) prints that warning once and still decodes to the same
pixels -- unless warnings are turned into errors (as under pytest), in which case
it is dropped and listed in ``skipped``. Images over twice that limit fail on
both paths.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from .images import _try_load, check_images

AUTOTUNE = tf.data.AUTOTUNE
# Most bytes of decoded images a cached stream keeps in its shuffle buffer (256 MiB:
# 21,000 images at 64 px, 1,700 at 224 px).
SHUFFLE_BUFFER_BYTES = 256 * 2**20


@dataclass
class ImageStream:
    """A batched ``tf.data.Dataset`` of one set of images, with what it left out.

    ``dataset`` yields ``images`` or ``(images, labels)`` batches, images
    (batch, S, S, 3) uint8 (or float32 0..255 with ``dtype="float32"``, the input
    ``fitting.eval_dataset`` gives a model). ``paths`` / ``labels``: the images it
    streams, in their unshuffled order; ``skipped``: ``(path, reason)`` of those
    left out (``skipped_up_front`` plus ``failed_while_streaming``, which the
    decode appends to as it meets them); ``cache_file``: the
    ``Dataset.cache`` prefix, if cached.
    """

    dataset: tf.data.Dataset
    paths: list[str]
    labels: np.ndarray | None
    image_size: int
    batch_size: int
    skipped_up_front: list[tuple[str, str]] = field(default_factory=list)
    failed_while_streaming: list[tuple[str, str]] = field(default_factory=list)
    cache_file: Path | None = None

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Every file left out: found up front, then any that failed while streaming."""
        return self.skipped_up_front + self.failed_while_streaming

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def steps(self) -> int:
        """Batches in one pass (``steps_per_epoch`` of a repeated stream)."""
        return math.ceil(len(self.paths) / self.batch_size)


def find_unreadable(paths: Sequence[str | os.PathLike], *, known: Sequence[tuple[str, str]] = (),
                    check: bool = True) -> list[tuple[str, str]]:
    """``(path, reason)`` of each path that will not decode: those in ``known`` and,
    with ``check``, each one ``images.check_images`` fails to decode at 8 px."""
    paths = [str(p) for p in paths]
    known_paths, wanted = {str(p) for p, _ in known}, set(paths)
    bad = [(str(p), reason) for p, reason in known if str(p) in wanted]
    if check:
        rest = [p for p in paths if p not in known_paths]
        bad += [(p, error) for p, error in zip(rest, check_images(rest)) if error is not None]
    order = {p: i for i, p in enumerate(paths)}
    return sorted(bad, key=lambda pe: order[pe[0]])


def cache_fingerprint(paths: Sequence[str], image_size: int, labels: np.ndarray | None = None) -> str:
    """A digest of the image size, the labels (the cache holds them too) and each
    file's path, size and modification time."""
    digest = hashlib.sha1(f"{image_size}\n".encode())
    if labels is not None:
        labels = np.ascontiguousarray(labels)
        digest.update(f"labels {labels.dtype.str} {labels.shape}\n".encode() + labels.tobytes())
    for p in paths:
        try:
            st = os.stat(p)
            digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{p}\0missing\n".encode())
    return digest.hexdigest()[:16]


def _report(skipped: list[tuple[str, str]]) -> None:
    if skipped:  # the same message as arrays_from_split: never silently
        print(f"{len(skipped)} image(s) could not be loaded and were left out:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")


def image_stream(paths: Sequence[str | os.PathLike], image_size: int, labels: np.ndarray | None = None, *,
                 batch_size: int = 32, shuffle: bool = False, seed: int | None = None,
                 deterministic: bool = True, repeat: bool = False, dtype: str = "uint8",
                 cache: str | os.PathLike | None = None, skipped: Sequence[tuple[str, str]] = (),
                 check: bool = True, shuffle_buffer: int | None = None) -> ImageStream:
    """Stream the images of ``paths`` (and their ``labels``) decoded at ``image_size``.

    ``shuffle``/``seed``: reshuffled every pass, reproducibly with a seed;
    ``deterministic``: keep the order with parallel decoding (evaluation);
    ``repeat``: endless (use ``steps`` as ``steps_per_epoch``); ``dtype``: "uint8"
    (as the arrays) or "float32" (cast, not scaled); ``cache``: a folder for the
    decoded images (see the module docstring); ``skipped`` / ``check``: unreadable
    files already known / whether to check the others up front;
    ``shuffle_buffer``: default all images uncached, ``SHUFFLE_BUFFER_BYTES`` cached.
    """
    paths = [str(p) for p in paths]
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} paths")
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"dtype must be 'uint8' or 'float32', not {dtype!r}")
    bad = find_unreadable(paths, known=skipped, check=check)
    _report(bad)
    if bad:
        keep = np.isin(paths, [p for p, _ in bad], invert=True)
        paths = [p for p, k in zip(paths, keep) if k]
        labels = None if labels is None else np.asarray(labels)[keep]
    failed_while_streaming: list[tuple[str, str]] = []

    def decode(path: bytes) -> tuple[np.ndarray, np.bool_]:
        # Runs on a tf.data thread; list.append is atomic under the GIL. A file that
        # fails every epoch is listed once.
        name = os.fsdecode(path)
        arr, error = _try_load(name, image_size)
        if error is not None:
            if all(name != p for p, _ in failed_while_streaming):
                failed_while_streaming.append((name, error))
            return np.zeros((image_size, image_size, 3), np.uint8), np.bool_(False)
        return arr, np.bool_(True)

    def decode_element(path, *label):
        # PIL, not tf.io.decode_image: the in-memory path's own decode function, so the
        # pixels are the same (EXIF orientation, JPEG draft, CMYK/16-bit/alpha, PIL's
        # antialiased resize of the centred square); see the module docstring.
        image, ok = tf.numpy_function(decode, [path], [tf.uint8, tf.bool], name="pil_decode")
        image.set_shape((image_size, image_size, 3))
        ok.set_shape(())
        return (image, ok, *label)

    n = len(paths)
    path_tensor = tf.constant(paths, dtype=tf.string, shape=(n,))
    elements = (path_tensor,) if labels is None else (path_tensor, np.asarray(labels))
    ds = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle and cache is None:
        ds = ds.shuffle(max(shuffle_buffer or n, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(decode_element, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.filter(lambda image, ok, *label: ok)
    ds = ds.map(lambda image, ok, *label: (image, *label))
    cache_file = None
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        cache_file = Path(cache) / f"stream-{image_size}px-{cache_fingerprint(paths, image_size, labels)}"
        ds = ds.cache(str(cache_file))
        if shuffle:
            buffer = shuffle_buffer or min(n, max(1, SHUFFLE_BUFFER_BYTES // (image_size * image_size * 3)))
            ds = ds.shuffle(max(buffer, 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if dtype == "float32":
        ds = ds.map(lambda image, *label: (tf.cast(image, tf.float32), *label))
    if labels is None:
        ds = ds.map(lambda image: image)  # 1-tuples become plain tensors
    ds = ds.batch(batch_size).prefetch(AUTOTUNE)
    return ImageStream(ds, paths, None if labels is None else np.asarray(labels), image_size, batch_size,
                       bad, failed_while_streaming, cache_file)


def split_stream(table: pd.DataFrame, split: str, image_size: int,
                 labels: Callable[[pd.DataFrame], np.ndarray] | None = None, *,
                 skipped: Sequence[tuple[str, str]] = (), check: bool = True, **options) -> ImageStream:
    """The images of one split of ``table`` (the table ``arrays.load_split_table``
    returns) as a stream, labelled as ``arrays.arrays_from_split`` labels them
    (``labels(part)``, default the ``label`` column) after leaving out the
    unreadable ones. ``options``: those of ``image_stream``."""
    part = table[table["split"] == split].reset_index(drop=True)
    bad = find_unreadable(part["path"].tolist(), known=skipped, check=check)
    part = part[~part["path"].isin({p for p, _ in bad})].reset_index(drop=True)
    y = labels(part) if labels else part["label"].to_numpy(dtype="int64")
    _report(bad)
    stream = image_stream(part["path"].tolist(), image_size, y, check=False, **options)
    stream.skipped_up_front = bad
    return stream
