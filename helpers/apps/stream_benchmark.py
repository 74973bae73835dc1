"""What streaming input costs: peak memory and images/s of the in-memory path against
``data.stream``, for growing numbers of images.

    python -m helpers.apps.stream_benchmark --images 3000 10000 30000 --out bench/stream.json \\
        [--source DATA_FOLDER] [--image-size 64] [--tasks decode epoch]

Not a command of ``python -m helpers``: a measurement to run by hand on an idle
machine (numbers taken while another job runs say little).

The N images are symbolic links to the source data set's files (cycled when N
exceeds it) in a temporary folder, so every image is decoded again but nothing
is written beside the data. Each (path, task, N) runs in a fresh Python process,
so one configuration's memory never counts for another: the process reports its
own peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``: a parent's
``RUSAGE_CHILDREN`` would be the maximum over *all* its children so far, not this
one's) and its peak right after importing TensorFlow, Keras and the project's
modules (``rss_after_import_mb``), which both paths pay.

Tasks:

* ``decode``: one pass of decode + resize. In memory: ``images.load_images``
  (two threads) into one array; streamed: the up-front check of unreadable files
  (``check_seconds``), building the pipeline (``build_seconds``) and one pass over
  ``image_stream`` (parallel decode), the batches thrown away.
* ``epoch``: one epoch of the small CNN of notebook 2 (batch 32), after a two-batch
  warm-up so tracing is not timed. In memory: decode everything, then
  ``fitting.train_dataset`` (the chain's input); streamed: a seeded, shuffled,
  repeated float32 stream that decodes while the model trains. ``images_per_s``
  counts everything from the files to the end of the epoch; later epochs cost the
  in-memory path only ``epoch_seconds`` (``epoch_only_images_per_s``), while the
  stream (uncached) decodes again, but does not check again.

Writes the JSON (machine, date, settings, one row per configuration) and a plot
beside it (``figures.data.input_benchmark``), the PNG with the JSON's name.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

DEFAULT_IMAGES = (3000, 10000, 30000)
PATHS = ("memory", "stream")
TASKS = ("decode", "epoch")
_MARK = "STREAM_BENCHMARK_RESULT "


def make_images(source: str | os.PathLike, n: int, folder: str | os.PathLike) -> tuple[list[str], list[int]]:
    """``n`` images in ``folder``: links to the files of ``source`` (cycled), labelled 1
    when a folder on the way is called ``malignant``. Returns (paths, labels)."""
    from ..data.images import IMAGE_SUFFIXES

    source, folder = Path(source), Path(folder)
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images under {source}")
    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for i in range(n):
        src = files[i % len(files)]
        dst = folder / f"{i:06d}{src.suffix.lower()}"
        if not dst.exists():
            dst.symlink_to(src.resolve())
        paths.append(str(dst))
        labels.append(int("malignant" in (part.lower() for part in src.relative_to(source).parts[:-1])))
    return paths, labels


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process (the child's side); returns its numbers."""
    start = time.perf_counter()
    import keras
    import numpy as np
    import tensorflow as tf

    from ..data.images import load_images
    from ..data.stream import find_unreadable, image_stream
    from ..models.baselines import build_small_cnn
    from ..training.fitting import train_dataset

    # Both paths pay for these imports: the baseline under each path's peak.
    result = dict(config, import_seconds=time.perf_counter() - start, rss_after_import_mb=_rss_mb())
    listing = json.loads(Path(config["listing"]).read_text())
    paths, labels = listing["paths"], np.asarray(listing["labels"])
    size, batch, seed, n = config["image_size"], config["batch_size"], config["seed"], len(paths)
    result.pop("listing")
    result["n"] = n

    def checked_stream(**options):
        """``image_stream(paths, ...)`` as by default, its up-front check timed apart."""
        t = time.perf_counter()
        bad = find_unreadable(paths)
        check = time.perf_counter() - t
        stream = image_stream(paths, size, **options, skipped=bad, check=False)
        return stream, check, time.perf_counter() - t - check

    if config["task"] == "decode":
        t0 = time.perf_counter()
        if config["path"] == "memory":
            x, _ = load_images(paths, size)
            count, check, build = len(x), 0.0, 0.0
        else:
            stream, check, build = checked_stream(batch_size=64)
            count = sum(int(b.shape[0]) for b in stream.dataset)
        seconds = time.perf_counter() - t0
        result.update(images=count, check_seconds=check, build_seconds=build, seconds=seconds,
                      images_per_s=count / seconds)
    else:
        keras.utils.set_random_seed(seed)
        model = build_small_cnn(size)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        warm = tf.data.Dataset.from_tensors((np.zeros((batch, size, size, 3), "float32"),
                                             np.zeros(batch, "float32"))).repeat(2)
        model.fit(warm, epochs=1, verbose=0, shuffle=False)
        t0 = time.perf_counter()
        if config["path"] == "memory":
            x, _ = load_images(paths, size)
            decode, check, build = time.perf_counter() - t0, 0.0, 0.0
            ds, steps = train_dataset(x, labels, batch, seed, None)
        else:
            stream, check, build = checked_stream(labels=labels.astype("float32"), batch_size=batch,
                                                  shuffle=True, seed=seed, repeat=True, dtype="float32")
            decode, (ds, steps) = 0.0, (stream.dataset, stream.steps)
        t1 = time.perf_counter()
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        end = time.perf_counter()
        result.update(images=n, decode_seconds=decode, check_seconds=check, build_seconds=build,
                      epoch_seconds=end - t1, seconds=end - t0, images_per_s=n / (end - t0),
                      epoch_only_images_per_s=n / (end - t1))
    result["peak_rss_mb"] = _rss_mb()
    return result


def _run_child(config: dict[str, Any]) -> dict[str, Any]:
    """``measure(config)`` in a fresh interpreter (its own peak memory)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, "-m", "helpers.apps.stream_benchmark", "--child", json.dumps(config)],
                          capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child {config['path']}/{config['task']} failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    return json.loads(lines[-1][len(_MARK):])


def machine_info() -> dict[str, Any]:
    """CPU count, memory, load and versions: what the numbers depend on."""
    import numpy as np
    import PIL

    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                            "platform": platform.platform(), "python": platform.python_version(),
                            "numpy": np.__version__, "pillow": PIL.__version__,
                            "load_average": list(os.getloadavg()), "niceness": os.nice(0)}
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        info["memory_total_mb"] = int(meminfo[0].split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        from importlib.metadata import version

        info["tensorflow"] = version("tensorflow-cpu")
    except Exception:  # noqa: BLE001 -- a version is nice to have, not needed
        pass
    return info


def benchmark(images: Sequence[int] = DEFAULT_IMAGES, *, source: str | os.PathLike,
              out: str | os.PathLike, image_size: int = 64, batch_size: int = 32, seed: int = 42,
              paths: Sequence[str] = PATHS, tasks: Sequence[str] = TASKS,
              work_dir: str | os.PathLike | None = None, images_dir: str | os.PathLike | None = None,
              verbose: bool = True) -> dict[str, Any]:
    """Measure every (N, path, task) in a fresh process; write ``out`` (JSON) and its PNG
    (named after it, in ``images_dir``, else beside it)."""
    from ..atomic import write_json
    from ..figures import save_fig
    from ..figures.data import input_benchmark

    out = Path(out)
    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
        "source": Path(source).resolve().name,  # the folder's name: the file is committed
        "images": list(images), "image_size": image_size,
        "batch_size": batch_size, "seed": seed, "results": []}
    with tempfile.TemporaryDirectory(prefix="stream-bench-", dir=work_dir) as tmp:
        for n in images:
            image_paths, labels = make_images(source, n, Path(tmp) / "images")
            listing = Path(tmp) / f"listing-{n}.json"
            listing.write_text(json.dumps({"paths": image_paths, "labels": labels}))
            for task in tasks:
                for path in paths:
                    row = _run_child({"path": path, "task": task, "listing": str(listing),
                                      "image_size": image_size, "batch_size": batch_size, "seed": seed})
                    report["results"].append(row)
                    if verbose:
                        print(f"N={n:>6} {task:<6} {path:<6} {row['images_per_s']:8.1f} images/s  "
                              f"peak RSS {row['peak_rss_mb']:7.0f} MB "
                              f"(after the imports {row['rss_after_import_mb']:.0f} MB)", flush=True)
    report["machine"]["load_average_after"] = list(os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = input_benchmark(report["results"])
    report["plot"] = save_fig(out.stem, fig, images_dir=Path(images_dir or out.parent)).name
    write_json(out, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.apps.stream_benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=list(DEFAULT_IMAGES), help="numbers of images N")
    parser.add_argument("--out", required=False, help="the JSON to write (the PNG goes beside it)")
    parser.add_argument("--images-dir", help="where the PNG goes instead (e.g. images)")
    parser.add_argument("--readme", help="rewrite this README's stream-benchmark block from the JSON "
                        "(with --from-json: without measuring again)")
    parser.add_argument("--from-json", action="store_true", help="read --out instead of measuring")
    parser.add_argument("--source", help="data folder to take images from (default: the project's data folder)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--work-dir", help="where the temporary folder of links goes (default: the system's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(_MARK + json.dumps(measure(json.loads(args.child))), flush=True)
        return 0
    if not args.out:
        parser.error("--out is required")
    if args.from_json:
        if not args.readme:
            parser.error("--from-json only rewrites a README: give --readme")
        _write_readme(args.readme, json.loads(Path(args.out).read_text()))
        return 0
    if args.source is None:
        from ..config import resolve_data_dir

        args.source = resolve_data_dir()
    benchmark(args.images, source=args.source, out=args.out, image_size=args.image_size,
              batch_size=args.batch_size, seed=args.seed, paths=args.paths, tasks=args.tasks,
              work_dir=args.work_dir, images_dir=args.images_dir)
    print(f"wrote {args.out} and {Path(args.images_dir or Path(args.out).parent) / Path(args.out).with_suffix('.png').name}")
    if args.readme:
        _write_readme(args.readme, json.loads(Path(args.out).read_text()))
    return 0


def _write_readme(readme: str | os.PathLike, report: dict[str, Any]) -> None:
    from ..report.tables import input_benchmark_block, replace_readme_block

    replace_readme_block(readme, "stream-benchmark", input_benchmark_block(report))
    print(f"rewrote the stream-benchmark block of {readme}")


if __name__ == "__main__":
    raise SystemExit(main())
