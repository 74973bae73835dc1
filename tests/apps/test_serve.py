"""`python -m helpers serve`: the local web page.

The handler is checked on tiny untrained models (32 px) and generated images:
that it answers like ``predict``, refuses bad uploads with a message and keeps
nothing. The page itself is driven in a real headless browser (Debian's
chromium through Playwright), with the repository's saved models and a real
image from ../shared/data.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from image_factory import save, textured
from model_factory import HAM_CLASSES, image_folder, save_binary_model, save_multiclass_models
from PIL import Image

from helpers.apps import serve
from helpers.apps.predict import predict_paths
from helpers.config import REPO_ROOT, output_dirs
from helpers.data.arrays import load_split_table
from helpers.explain import gradcam
from helpers.models import baselines, saved, transfer
from helpers import seeding

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO_ROOT / "images" / "web_page.png"


@pytest.fixture
def page_models(out_dir):
    save_binary_model(out_dir)
    save_multiclass_models(out_dir)
    models = serve.load_page_models(out_dir)
    models.uploads = serve.UploadJanitor(grace=0)  # delete at once: the tests look right after the answer
    return models


def _copies(files, folder: Path) -> list[Path]:
    """Fresh copies (the page deletes what it answers)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(f, folder / Path(f).name)) for f in files]


def test_traced_grad_cam_equals_the_notebook_grad_cam():
    seeding.set_seed(0)
    rng = np.random.default_rng(5)
    image = rng.integers(100, 200, (32, 32, 3), dtype=np.uint8)
    image[10:22, 10:22] = 30
    for model in (baselines.build_small_cnn(32), transfer.build_vgg16_transfer(32, try_imagenet=False).model):
        traced = gradcam.GradCam(model)
        for cls in (0, 1):
            np.testing.assert_allclose(traced(image, cls), gradcam.grad_cam(model, image, cls), atol=1e-5)


def test_the_page_answers_like_predict_and_keeps_no_upload(page_models, tmp_path):
    files = image_folder(tmp_path / "mine")
    assert page_models.seven.name == "ham_cnn"  # the metadata model cannot be served from an image alone
    assert "no examples" in page_models.examples_note.lower()
    expected, _ = predict_paths(page_models.binary, [files["rgb"], files["grey"]])
    expected7, _ = predict_paths(page_models.seven, [files["rgb"]])
    uploads = _copies([files["rgb"], files["grey"], files["broken"], files["text"]], tmp_path / "upload")
    html_out = serve.answer(page_models, uploads)
    assert not any(u.exists() for u in uploads), "an upload was kept after the answer"
    items = [serve.analyse_file(page_models, u) for u in _copies([files["rgb"], files["grey"]], tmp_path / "again")]
    for item, exp in zip(items, expected):
        assert [(lab["label"], round(lab["probability"], 9)) for lab in item["binary"]["labels"]] == \
               [(lab["label"], round(lab["probability"], 9)) for lab in exp["labels"]]
        assert item["binary"]["decision"] == exp["decision"]
        assert f'data-label="{exp["labels"][0]["label"]}" data-probability="{exp["labels"][0]["probability"]:.6f}"' \
            in html_out
    assert [lab["label"] for lab in items[0]["seven"]["labels"]] == [lab["label"] for lab in expected7[0]["labels"]]
    assert sorted(lab["label"] for lab in items[0]["seven"]["labels"]) == sorted(HAM_CLASSES)
    assert any("greyscale" in note for note in items[1]["notes"])
    assert html_out.count('class="result refused"') == 2 and "not an image this page can read" in html_out
    assert html_out.count('<img class="overlay"') == 2 and items[0]["overlay"].shape[0] == serve.OVERLAY_SIZE
    assert serve.DISCLAIMER in html_out


def test_bad_uploads_get_a_message_not_a_trace(page_models, tmp_path, monkeypatch):
    im = textured(7, 48)
    frames = [im, im.rotate(90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    cases = {
        "anim.gif": "animated GIF with 2 frames",
        save(im.convert("CMYK"), tmp_path / "cmyk.jpg").name: None,
        save(Image.fromarray((np.asarray(im.convert("L")).astype(np.uint16) * 257)), tmp_path / "g16.png").name: None,
        save(im.convert("RGBA"), tmp_path / "alpha.png").name: None,
        save(textured(8, 300), tmp_path / "big.png").name: "megapixel limit",
        save(textured(9, 40), tmp_path / "<i>x&y.png").name: None,
    }
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases["empty.jpg"] = "the file is empty"
    monkeypatch.setattr(serve, "MAX_PIXELS", 200 * 200)
    notes = {"cmyk.jpg": "CMYK", "g16.png": "16/32-bit", "alpha.png": "transparent"}
    for name, message in cases.items():
        item = serve.analyse_file(page_models, tmp_path / name)
        if message:
            assert message in item["error"], (name, item)
        else:
            assert "error" not in item, (name, item)
            assert not notes.get(name) or any(notes[name] in n for n in item["notes"]), (name, item["notes"])
    assert "&lt;i&gt;x&amp;y.png" in serve.render(serve.analyse_file(page_models, tmp_path / "<i>x&y.png"))
    assert "gone" in serve.analyse_file(page_models, tmp_path / "deleted.png")["error"]
    # A decompression bomb is refused from the header, before any pixel is decoded.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20 * 20)
    assert "decompression bomb" in serve.analyse_file(page_models, tmp_path / "cmyk.jpg")["error"]
    monkeypatch.setattr(serve, "MAX_FILE_MB", 1e-4)
    assert "MB limit" in serve.analyse_file(page_models, tmp_path / "alpha.png")["error"]
    too_many = [save(textured(k, 32), tmp_path / "many" / f"{k}.png") for k in range(serve.MAX_FILES + 1)]
    html_out = serve.answer(page_models, too_many)
    assert f"at most {serve.MAX_FILES}" in html_out and "<img" not in html_out
    assert "Upload one or more photos" in serve.answer(page_models, [])


def test_model_card_gives_each_archive_with_n_and_ci(page_models):
    page_models.binary.record.update(trained_on=["isic-mvb"], by_dataset={
        "isic-mvb": {"test": {"n": 600, "n_pos": 264, "auc": 0.941, "auc_ci95": [0.92, 0.96],
                              "sensitivity": 0.9, "specificity": 0.8}},
        "ham10000": {"test": {"n": 900, "n_pos": 150, "auc": 0.83, "auc_ci95": [0.79, 0.87],
                              "sensitivity": 0.7, "specificity": 0.75}}})
    card = serve.model_card(page_models)
    assert "isic-mvb test** (in-archive; n = 600, 264 malignant): AUC 0.941 [0.920, 0.960]" in card
    assert "ham10000 test** (another archive, not trained on; n = 900" in card
    assert "threshold" in card and "ham_cnn" in card


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict[str, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **extra}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def test_load_test_records_latency_and_errors(out_dir, tmp_path):
    save_binary_model(out_dir)
    save_multiclass_models(out_dir)
    image = save(textured(3, 64), tmp_path / "lesion.jpg")
    done = subprocess.run([sys.executable, "-m", "helpers", "serve", "--load-test", "--clients", "2", "--requests",
                           "6", "--record", "--port", str(_free_port()), "--load-test-image", str(image)],
                          env=_env(SKIN_OUTPUT_DIR=str(out_dir.root), GRADIO_TEMP_DIR=str(tmp_path / "g")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out_dir.results.read_text())["web_page"]["load_test"]
    assert report["ok"] == 6 and report["errors"] == 0 and report["clients"] == 2
    assert 0 < report["p50_seconds"] <= report["p95_seconds"]
    assert image.exists()  # the load test's own image is the user's file: never deleted


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    """The page on the repository's saved models, served by the CLI as a user starts it."""
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; .ci/run does it)")
    from conftest import real_data_dir

    data = real_data_dir("isic-mvb")
    if data is None:
        pytest.skip("real data not found: set SKIN_DATA_DIR or put ../shared/data/isic-mvb beside the repo")
    port = _free_port()
    temp = tmp_path_factory.mktemp("gradio")
    log = temp / "serve.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "helpers", "serve", "--port", str(port), "--data-dir",
                                 str(data)], env=_env(GRADIO_TEMP_DIR=str(temp / "uploads")),
                                stdout=handle, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"the page did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(1)
        yield url, data, temp / "uploads"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_page_in_a_real_browser(page_url, tmp_path):
    from playwright.sync_api import sync_playwright

    url, data, uploads = page_url
    table = load_split_table(str(data))
    row = table[(table["split"] == "test") & (table["dataset"] == "isic-mvb") & (table["label"] == 1)].iloc[0]
    image = Path(row["path"])
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 20)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.wait_for_selector("#classify", timeout=60_000)
            page.set_input_files("#upload input[type=file]", [str(image), str(corrupt)])
            page.locator("#upload").get_by_text(corrupt.stem, exact=True).wait_for(timeout=30_000)  # name shown: uploaded
            page.click("#classify")
            page.wait_for_selector("#results .result", timeout=60_000)
            page.wait_for_selector("#results img.overlay", timeout=30_000)
            shown = {kind: [(r.get_attribute("data-label"), float(r.get_attribute("data-probability")))
                            for r in page.locator(f"#results tr.label[data-kind={kind}]").all()]
                     for kind in ("binary", "seven")}
            refused = page.locator("#results .refused .message").all_inner_texts()
            decision = page.locator("#results .decision").first.get_attribute("data-decision")
            card = page.locator("#model-card").inner_text()
            disclaimer_shown = page.get_by_text("Research model, not a diagnosis").first.is_visible()
            shot = SCREENSHOT if os.environ.get("SKIN_UPDATE_SCREENSHOT") == "1" else tmp_path / "web_page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    out = output_dirs(REPO_ROOT)
    binary = saved.load_predictor(None, out)
    (expected,), _ = predict_paths(binary, [image])
    assert [lab for lab, _ in shown["binary"]] == [lab["label"] for lab in expected["labels"]]
    np.testing.assert_allclose([p for _, p in shown["binary"]],
                               [lab["probability"] for lab in expected["labels"]], atol=2e-6)
    assert decision == expected["decision"]
    seven_name, _ = serve.best_seven_class(json.loads(out.results.read_text()), out)
    if seven_name:
        (expected7,), _ = predict_paths(saved.load_predictor(seven_name, out), [image])
        assert [lab for lab, _ in shown["seven"]] == [lab["label"] for lab in expected7["labels"]]
        np.testing.assert_allclose([p for _, p in shown["seven"]],
                                   [lab["probability"] for lab in expected7["labels"]], atol=2e-6)
    assert len(refused) == 1 and "not an image this page can read" in refused[0]
    assert disclaimer_shown and f"Model card: {binary.name}" in card
    foreign = [u for u in requests if not u.startswith(url) and not u.startswith(("data:", "blob:"))]
    assert not foreign, f"the page fetched from elsewhere: {foreign[:5]}"
    deadline = time.time() + serve.UPLOAD_GRACE_S + 10
    while (kept := [f for f in uploads.rglob("*") if f.name in (image.name, corrupt.name)]) and time.time() < deadline:
        time.sleep(0.5)
    assert not kept, f"uploads kept after the answer: {kept}"


def test_identical_uploads_in_flight_share_a_file_that_outlives_the_first_answer(tmp_path):
    janitor = serve.UploadJanitor(grace=0.3)
    shared = save(textured(4, 32), tmp_path / "same.png")
    janitor.hold([shared])   # visitor A
    janitor.hold([shared])   # visitor B, same photo, same cached file
    janitor.release([shared])
    assert shared.exists()   # B still holds it
    janitor.release([shared])
    janitor.sweep()
    assert shared.exists()   # within the grace a queued third request still finds it
    time.sleep(0.4)
    janitor.sweep()
    assert not shared.exists()
