"""helpers.data.stream: the tf.data stream gives the in-memory path's pixels, order,
skipped files and training batches; its cache is written once and reused; and the
benchmark (helpers.apps.stream_benchmark) runs end to end on a few images."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.data import arrays, images, stream
import image_factory as factory

SIZE = 24


def _concat(ds):
    """All batches of a dataset of (images, labels) or images, as NumPy arrays."""
    batches = list(ds)
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate([b[k].numpy() for b in batches]) for k in range(len(batches[0])))
    return np.concatenate([b.numpy() for b in batches])


@pytest.fixture(scope="module")
def mixed_images(tmp_path_factory):
    """20 images of every mode and shape the decoder converts: RGB, greyscale (8 and
    16 bit), RGBA and LA on black, palette with transparency, CMYK, an EXIF-rotated
    JPEG, a large JPEG (decoded at a reduced DCT scale), one smaller than SIZE,
    non-square ones and several file formats."""
    root = tmp_path_factory.mktemp("mixed")
    t = [factory.textured(seed, 48) for seed in range(20)]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: exif_transpose must turn it
    grey16 = Image.fromarray(np.asarray(t[5].convert("L"), dtype=np.uint16) * 257)  # mode I;16
    palette = t[7].convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    rgba = t[2].convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (48, 1))))
    files = [
        (t[0], "rgb.jpg"), (t[1].convert("L"), "grey.jpg"), (rgba, "rgba.png"),
        (t[3].convert("LA"), "la.png"), (t[4].convert("CMYK"), "cmyk.jpg"), (grey16, "grey16.png"),
        (t[6].resize((2400, 1700)), "large.jpg"), (palette, "palette.png"), (t[8].resize((12, 10)), "tiny.png"),
        (t[9].resize((80, 40)), "wide.jpg"), (t[10].resize((30, 90)), "tall.png"), (t[11], "rgb.bmp"),
        (t[12], "rgb.webp"), (t[13], "rgb.tif"), (t[14].convert("P"), "plain.gif"), (t[15], "rgb.png"),
        (t[16].convert("1"), "bilevel.png"), (t[17].resize((64, 48)), "exif.jpg"), (t[18], "q50.jpg"),
        (t[19].convert("YCbCr"), "ycbcr.jpg"),
    ]
    paths = []
    for image, name in files:
        kwargs = {"exif": exif} if name == "exif.jpg" else {"quality": 50} if name == "q50.jpg" else {}
        paths.append(str(factory.save(image, root / name, **kwargs)))
    return paths


def test_streamed_pixels_equal_the_in_memory_arrays_exactly(mixed_images):
    # Exact, not approximate: both paths decode with the same function (images._try_load).
    expected, bad = images.load_images(mixed_images, SIZE)
    assert bad == [] and len(expected) == 20
    labels = np.arange(20) % 2
    s = stream.image_stream(mixed_images, SIZE, labels, batch_size=6)
    x, y = _concat(s.dataset)
    assert x.dtype == np.uint8 and x.shape == (20, SIZE, SIZE, 3) and s.steps == 4
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, labels)
    # float32 is a cast, not a rescaling (what fitting.eval_dataset feeds a model)
    as_float = _concat(stream.image_stream(mixed_images, SIZE, batch_size=8, dtype="float32").dataset)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, expected.astype(np.float32))


def test_split_stream_leaves_out_what_arrays_from_split_leaves_out(tmp_path, mixed_images, capsys):
    bad_jpg = factory.truncated_jpeg(tmp_path / "broken.jpg")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")
    paths = mixed_images[:8] + [str(bad_jpg)] + mixed_images[8:12] + [str(not_image)]
    table = pd.DataFrame({"path": paths, "split": ["train"] * 9 + ["val"] * 5,
                          "dx": ["mel" if i % 3 == 0 else "nv" for i in range(14)]})

    def labels(part):
        return (part["dx"] == "mel").to_numpy(dtype=int)

    in_memory = arrays.arrays_from_split(table, SIZE, labels)
    capsys.readouterr()
    for name in ("train", "val"):
        s = stream.split_stream(table, name, SIZE, labels, batch_size=4)
        x, y = _concat(s.dataset)
        np.testing.assert_array_equal(x, in_memory.x[name])
        np.testing.assert_array_equal(y, in_memory.y[name])
        assert s.paths == in_memory.tables[name]["path"].tolist()
        assert s.skipped == [item for item in in_memory.skipped if item[0] in set(table.path[table.split == name])]
    printed = capsys.readouterr().out
    assert "broken.jpg" in printed and "notes.jpg" in printed and "could not be loaded" in printed


def test_unreadable_files_are_listed_and_never_stop_a_pass(tmp_path, mixed_images, capsys):
    bad_jpg = factory.truncated_jpeg(tmp_path / "broken.jpg")
    not_image = tmp_path / "readme.txt"
    not_image.write_text("not an image")
    paths = [mixed_images[0], str(bad_jpg), mixed_images[1], str(not_image), mixed_images[2]]
    expected, bad = images.load_images(paths, SIZE)
    # checked up front: the same list, with the same reasons, as the in-memory path
    s = stream.image_stream(paths, SIZE, np.arange(5), batch_size=2)
    assert s.skipped_up_front == bad and len(s) == 3 and s.failed_while_streaming == []
    x, y = _concat(s.dataset)
    np.testing.assert_array_equal(x, expected)
    assert y.tolist() == [0, 2, 4]
    # not checked (check=False): the decode flags them, the pipeline filters them out
    unchecked = stream.image_stream(paths, SIZE, np.arange(5), batch_size=2, check=False, repeat=True)
    _, y2 = _concat(unchecked.dataset.take(4))  # two passes: no crash, and each file listed once
    assert y2.tolist() == [0, 2, 4, 0, 2, 4, 0, 2]
    assert sorted(unchecked.failed_while_streaming) == sorted(bad)
    # a file that breaks after the check (deleted) is dropped and listed, not fatal
    gone = tmp_path / "gone.png"
    factory.save(factory.textured(50, 30), gone)
    late = stream.image_stream([mixed_images[3], str(gone), mixed_images[4]], SIZE, batch_size=8)
    gone.unlink()
    assert len(_concat(late.dataset)) == 2 and [p for p, _ in late.skipped] == [str(gone)]
    # a list the caller already has is used as given, without decoding those files
    known = stream.image_stream(paths, SIZE, batch_size=8, skipped=bad, check=False)
    np.testing.assert_array_equal(_concat(known.dataset), expected)
    assert known.failed_while_streaming == [] and known.skipped == bad
    assert "could not be loaded" in capsys.readouterr().out


def test_order_is_deterministic_and_the_seeded_shuffle_reproducible(mixed_images):
    labels = np.arange(20)
    ordered = stream.image_stream(mixed_images, SIZE, labels, batch_size=5)
    first, second = _concat(ordered.dataset), _concat(ordered.dataset)
    assert first[1].tolist() == list(range(20)) and second[1].tolist() == list(range(20))
    np.testing.assert_array_equal(first[0], second[0])

    def order(seed, passes=1):
        s = stream.image_stream(mixed_images, SIZE, labels, batch_size=20, shuffle=True, seed=seed)
        return [_concat(s.dataset)[1].tolist() for _ in range(passes)]

    a, b = order(7, passes=2), order(7, passes=2)
    assert a == b  # the same seed: the same orders, pass after pass
    assert a[0] != a[1] and sorted(a[0]) == sorted(a[1]) == list(range(20))  # reshuffled each pass
    assert order(8)[0] != a[0]
    # images stay with their labels under the shuffle
    s = stream.image_stream(mixed_images, SIZE, labels, batch_size=20, shuffle=True, seed=7)
    x, y = _concat(s.dataset)
    np.testing.assert_array_equal(x, first[0][y])


def test_a_seeded_stream_gives_train_datasets_batches(mixed_images):
    """shuffle(n, seed) draws the same permutation of paths as of arrays: a seeded,
    repeated float32 stream reproduces fitting.train_dataset's batches exactly."""
    from helpers.training.fitting import train_dataset

    x, _ = images.load_images(mixed_images, SIZE)
    y = (np.arange(20) % 3 == 0).astype("float32")
    ds, steps = train_dataset(x, y, 8, seed=3, augment=None)
    s = stream.image_stream(mixed_images, SIZE, y, batch_size=8, shuffle=True, seed=3, repeat=True,
                            dtype="float32")
    assert s.steps == steps == 3
    for (xa, ya), (xb, yb) in zip(ds.take(2 * steps), s.dataset.take(2 * steps)):  # two epochs
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_cache_is_written_once_and_reused(tmp_path):
    src = tmp_path / "src"
    paths = [str(factory.save(factory.textured(100 + i, 40), src / f"{i}.png")) for i in range(9)]
    expected, _ = images.load_images(paths, SIZE)
    s = stream.image_stream(paths, SIZE, np.arange(9), batch_size=4, cache=tmp_path / "cache")
    first = _concat(s.dataset)
    assert s.cache_file.parent == tmp_path / "cache"
    assert s.cache_file.with_name(s.cache_file.name + ".index").is_file()
    np.testing.assert_array_equal(first[0], expected)
    for p in paths:  # without their files, a second pass can only come from the cache
        (src / p.rsplit("/", 1)[-1]).unlink()
    second = _concat(s.dataset)
    np.testing.assert_array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[1], first[1])
    assert s.failed_while_streaming == []
    # a changed image changes the fingerprint: never a stale cache
    changed = [str(factory.save(factory.textured(200 + i, 40), src / f"{i}.png")) for i in range(9)]
    again = stream.image_stream(changed, SIZE, batch_size=4, cache=tmp_path / "cache")
    assert again.cache_file != s.cache_file
    np.testing.assert_array_equal(_concat(again.dataset), images.load_images(changed, SIZE)[0])
    # labels are cached with the images, so they are part of the fingerprint too
    options = {"batch_size": 9, "shuffle": True, "seed": 1}
    shuffled = stream.image_stream(changed, SIZE, np.arange(9), cache=tmp_path / "cache", **options)
    assert shuffled.cache_file != again.cache_file
    # cached and shuffled: shuffled after the cache, within a buffer that here holds all
    # 9 images, so in the order of the uncached stream, and reshuffled each pass
    uncached = stream.image_stream(changed, SIZE, np.arange(9), **options)
    a, b = _concat(shuffled.dataset)[1], _concat(shuffled.dataset)[1]
    assert a.tolist() == _concat(uncached.dataset)[1].tolist()
    assert sorted(b) == list(range(9)) and a.tolist() != b.tolist()


def test_benchmark_measures_both_paths(tmp_path):
    """The script, on 30 linked images: the streamed decode pass in a fresh process,
    JSON and PNG written. Two more configurations through ``measure`` in this process
    (each child costs a TensorFlow import, seconds); the in-memory epoch is left out
    for time (its input, fitting.train_dataset, is tested with the seeded stream above)."""
    from helpers.apps import stream_benchmark
    from helpers.figures.data import input_benchmark

    factory.folder_dataset(tmp_path / "src", {(None, "benign"): 8, (None, "malignant"): 7}, size=48)
    out = tmp_path / "bench" / "stream.json"
    proc = subprocess.run([sys.executable, "-m", "helpers.apps.stream_benchmark", "--images", "30",
                           "--source", str(tmp_path / "src"), "--out", str(out), "--tasks", "decode",
                           "--paths", "stream", "--work-dir", str(tmp_path), "--images-dir", str(tmp_path / "figs")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_count"] >= 1 and report["images"] == [30] and report["date"]
    [row] = report["results"]
    assert (row["path"], row["task"], row["n"], row["images"]) == ("stream", "decode", 30, 30)
    assert row["images_per_s"] > 0 and row["peak_rss_mb"] >= row["rss_after_import_mb"] > 0
    assert report["plot"] == "stream.png" and (tmp_path / "figs" / "stream.png").stat().st_size > 0
    assert report["source"] == "src"  # the folder's name, not this machine's path
    assert not list(tmp_path.glob("stream-bench-*"))  # the linked images are gone

    paths, labels = stream_benchmark.make_images(tmp_path / "src", 20, tmp_path / "links")
    assert len(paths) == 20 and sum(labels) == 7  # cycled over 15 files (8 benign, then 7 malignant)
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps({"paths": paths, "labels": labels}))
    rows = [stream_benchmark.measure({"path": path, "task": task, "listing": str(listing), "image_size": 16,
                                      "batch_size": 8, "seed": 0})
            for path, task in (("memory", "decode"), ("stream", "epoch"))]  # an epoch: ~3 s
    for row in rows:
        assert row["images"] == 20 and row["images_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert rows[1]["epoch_seconds"] > 0
    fig = input_benchmark(report["results"] + rows)
    assert [ax.get_title() for ax in fig.axes] == ["peak memory", "throughput"]
    assert len(fig.axes[1].get_lines()) == 3  # one line per (path, task)


def test_a_decompression_bomb_warning_as_error_drops_the_image_while_streaming(tmp_path, monkeypatch):
    """The one documented difference: load_images silences PIL's bomb warning around its
    thread pool; the stream's decodes run on TensorFlow's threads, where that cannot be
    done safely. With warnings as errors (as here, under pytest) such an image is dropped
    and listed, never a crash; with the default filters it decodes to the same pixels."""
    from PIL import Image as PILImage

    paths = [str(factory.save(factory.textured(300 + i, 60), tmp_path / f"{i}.png")) for i in range(2)]
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 2000)  # 3,600 pixels: a "bomb", under 2x the limit
    expected, bad = images.load_images(paths, SIZE)
    assert bad == [] and len(expected) == 2
    s = stream.image_stream(paths, SIZE, batch_size=2)  # the up-front check passes them, as load_images does
    assert s.skipped_up_front == [] and len(s) == 2
    assert list(s.dataset) == []
    assert sorted(p for p, _ in s.failed_while_streaming) == paths  # decoded in parallel: any order
    assert all(reason.startswith("DecompressionBombWarning") for _, reason in s.failed_while_streaming)
