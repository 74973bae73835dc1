"""`python -m helpers serve`: a local web page to try the models, built with Gradio.

Upload one or several photos (or pick an example from the chain's test split)
and see, for each, the binary model's labels ranked with the decision at its
validation-chosen threshold (or a clinic's, when ``calibrate`` saved one), the
seven HAM10000 diagnoses ranked with their full names, and a Grad-CAM overlay
with its colour bar. A model card beside it comes from results.json: the data
the model was trained on, its numbers on each archive's test split, and the
shortcuts notebook 4 found.

The page decodes through ``data.images`` and scores through ``models.saved``,
exactly like ``predict``, so both give the same probabilities for one file.

Safe by default: it binds 127.0.0.1; uploads are limited in size, pixels and
number, and each is deleted once answered; Gradio's usage analytics are off;
the page's fonts and scripts come from the installed package (no CDN).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import html
import io
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

# Before gradio (and huggingface_hub) are imported: no usage analytics, no calls home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, UnidentifiedImageError

from .. import results
from ..config import OutputDirs, output_dirs
from ..data.arrays import load_split_table
from ..data.images import load_image
from ..data.labels import full_name
from ..explain.gradcam import GradCam
from ..models.saved import DISCLAIMER, Predictor, load_predictor
from ..report.tables import shortcut_lines
from .predict import _describe

HOST = "127.0.0.1"
PORT = 7860
MAX_FILES = 8  # images per request
MAX_FILE_MB = 20  # per file; Gradio refuses larger uploads before they reach the model
MAX_PIXELS = 40_000_000  # dermoscopy photos are at most a few megapixels; more is a scan or a decompression bomb
N_EXAMPLES = 4
OVERLAY_SIZE = 256  # pixels of the Grad-CAM overlay shown on the page

# Keras models are called from Gradio's worker threads one at a time; decoding
# and drawing run in parallel with them.
_MODEL_LOCK = threading.Lock()
# PIL's decompression-bomb check is a warning: checking it (inspect_upload) and
# decoding (load_image) change process-wide warning filters, so one thread at a time.
_OPEN_LOCK = threading.Lock()


UPLOAD_GRACE_S = 5.0  # an answered upload is deleted this long after its answer


class UploadRefused(ValueError):
    """An upload the page will not score; the message says why and what to do."""


class UploadJanitor:
    """Deletes uploaded files once they are answered, after a short grace.

    Gradio stores identical uploads at one path (named by content hash), so two
    visitors sending the same photo at once share a file: it is deleted only
    when no request holds it and ``grace`` seconds have passed since the last
    answer, so the second visitor's request, still in the queue, finds it.
    """

    def __init__(self, grace: float = UPLOAD_GRACE_S):
        self.grace = grace
        self._lock = threading.Lock()
        self._holding: dict[Path, int] = {}
        self._due: dict[Path, float] = {}

    def hold(self, paths: Sequence[Path]) -> None:
        with self._lock:
            for p in paths:
                self._holding[p] = self._holding.get(p, 0) + 1
                self._due.pop(p, None)

    def release(self, paths: Sequence[Path]) -> None:
        with self._lock:
            for p in paths:
                self._holding[p] -= 1
                if self._holding[p] <= 0:
                    del self._holding[p]
                    self._due[p] = time.monotonic() + self.grace
        self.sweep()

    def sweep(self) -> None:
        """Delete every released file whose grace has passed."""
        now = time.monotonic()
        with self._lock:
            for p, due in list(self._due.items()):
                if due <= now:
                    with contextlib.suppress(OSError):
                        p.unlink()
                    del self._due[p]

    def sweep_forever(self, every: float = 1.0) -> None:
        """Sweep in a daemon thread, so files are deleted when the page is idle too."""
        def loop():
            while True:
                time.sleep(every)
                self.sweep()
        threading.Thread(target=loop, name="upload-janitor", daemon=True).start()


# ---------------------------------------------------------------------------
# Models and the model card
# ---------------------------------------------------------------------------


@dataclass
class PageModels:
    """What the page serves: the binary model, its Grad-CAM, the seven-class model."""

    binary: Predictor
    gradcam: GradCam | None
    seven: Predictor | None
    seven_note: str
    saved: dict[str, Any]
    examples: dict[str, Path] = field(default_factory=dict)
    examples_note: str = ""
    uploads: UploadJanitor = field(default_factory=UploadJanitor)


def best_seven_class(saved: dict[str, Any], out: OutputDirs) -> tuple[str | None, str]:
    """The image-only seven-class model with the best validation balanced accuracy
    whose file is present, and a note when there is none."""
    records = {name: r for name, r in saved.get("multiclass", {}).items()
               if isinstance(r, dict) and r.get("task") == "multiclass" and r.get("inputs", "image") == "image"}
    present = {name: r for name, r in records.items()
               if "model_file" in r and (out.models / r["model_file"]).is_file()}
    if not present:
        why = ("no seven-class model is recorded in results.json" if not records else
               f"the file of {', '.join(sorted(records))} is not in {out.models.name}/")
        return None, f"Seven diagnoses: not shown, {why}; run notebook 5 (`make reproduce`)."
    name = max(present, key=lambda n: present[n].get("validation", {}).get("balanced_accuracy", -1.0))
    return name, ""


def pick_examples(out: OutputDirs, n: int = N_EXAMPLES, data_dir: str | None = None) -> tuple[dict[str, Path], str]:
    """A few test images of the chain's split, alternately benign and malignant
    (the data is read where it lies; none is copied into the repository)."""
    try:
        table = load_split_table(data_dir, out)
    except Exception as exc:  # noqa: BLE001 -- no data here means no examples, never a broken page
        return {}, f"No examples: the chain's test images were not found ({type(exc).__name__}: {str(exc)[:160]})."
    test = table[table["split"] == "test"]
    test = test[[Path(p).is_file() for p in test["path"]]].sort_values("path")
    # One benign and one malignant image of each archive in turn, until n.
    picks = [group[group["label"] == label].head(n) for _, group in test.groupby("dataset") for label in (0, 1)]
    rows_in_turn = [rows.iloc[i] for i in range(n) for rows in picks if i < len(rows)][:n]
    examples = {}
    for row in rows_in_turn:
        kind = "malignant" if row["label"] == 1 else "benign"
        dx = f", {row['dx']}" if isinstance(row.get("dx"), str) and row["dx"] else ""
        examples[f"{Path(row['path']).name} ({row['dataset']} test, {kind}{dx})"] = Path(row["path"])
    return examples, "" if examples else "No examples: the test split has no images on this machine."


def load_page_models(out: OutputDirs | None = None, *, model: str | None = None,
                     data_dir: str | None = None) -> PageModels:
    """The binary model (``model``, else the best on validation, with a clinic
    threshold when one is saved), its Grad-CAM and the best seven-class model."""
    out = out or output_dirs()
    binary = load_predictor(model, out)
    if not binary.binary:
        raise ValueError(f"Model '{binary.name}' is not a binary model: the page needs one for its decision; "
                         "choose a binary model with --model (the seven-class model is added by itself).")
    gradcam = GradCam(binary.model) if binary.backend == "keras" else None
    saved = results.load_results(out.results)
    seven_name, seven_note = best_seven_class(saved, out)
    seven = load_predictor(seven_name, out) if seven_name else None
    examples, examples_note = pick_examples(out, data_dir=data_dir)
    models = PageModels(binary, gradcam, seven, seven_note, saved, examples, examples_note)
    warm_up(models)
    return models


def warm_up(models: PageModels) -> None:
    """Run every model once on a grey image: the first call traces TensorFlow graphs
    (seconds), which should not fall on the first visitor."""
    for predictor in filter(None, (models.binary, models.seven)):
        predictor.probabilities(np.full((1, predictor.image_size, predictor.image_size, 3), 128, np.uint8))
    if models.gradcam is not None:
        for cls in (0, 1):
            models.gradcam(np.full((models.binary.image_size,) * 2 + (3,), 128, np.uint8), cls)


def _ci(values) -> str:
    return f" [{values[0]:.3f}, {values[1]:.3f}]" if values else ""


def model_card(models: PageModels) -> str:
    """Markdown: what the served models were trained on and how they scored, from results.json."""
    b = models.binary
    rec = b.record
    threshold, how = b.threshold
    trained = ", ".join(rec.get("trained_on") or ["isic-mvb"])
    lines = [f"### Model card: `{b.name}`",
             f"- **Binary model**: {rec.get('backbone', 'CNN')}, {b.image_size} px input, weights "
             f"{rec.get('weights', 'n/a')}; trained on **{trained}** (training split, lesion-grouped).",
             f"- **Decision**: malignant when P(malignant) >= {threshold:.3f} ({how})."]
    by = rec.get("by_dataset", {})
    for ds, r in by.items():
        t = r.get("test", {})
        if not t:
            continue
        where = "in-archive" if ds in (rec.get("trained_on") or ["isic-mvb"]) else "another archive, not trained on"
        lines.append(f"- **{ds} test** ({where}; n = {t['n']}, {t['n_pos']} malignant): AUC {t['auc']:.3f}"
                     f"{_ci(t.get('auc_ci95'))}, sensitivity {t['sensitivity']:.2f}, specificity "
                     f"{t['specificity']:.2f} at the threshold above.")
    if not by and "test" in rec:
        t = rec["test"]
        lines.append(f"- **Test** (n = {t['n']}): AUC {t['auc']:.3f}{_ci(t.get('auc_ci95'))}.")
    if models.seven is not None:
        s = models.seven.record
        t = s.get("test", {})
        mel = t.get("per_class", {}).get("mel", {})
        mel_p = "n/a" if mel.get("precision") is None else f"{mel['precision']:.2f}"
        lines.append(f"- **Seven diagnoses**: `{models.seven.name}` on the HAM10000 test split (n = {t.get('n')}): "
                     f"balanced accuracy {t.get('balanced_accuracy', float('nan')):.3f}"
                     f"{_ci(t.get('balanced_accuracy_ci95'))}; melanoma recall {mel.get('recall', float('nan')):.2f}, "
                     f"precision {mel_p}. The most probable diagnosis is shown; no threshold.")
    elif models.seven_note:
        lines.append(f"- {models.seven_note}")
    shortcuts = shortcut_lines(models.saved, models=(b.name,))
    if shortcuts:
        lines.append("- **Known shortcuts** (notebook 4): " + " ".join(shortcuts))
    lines.append("- Numbers hold for these archives' test splits at their own mix of benign and malignant; "
                 "at another clinic they can be lower (see notebook 7).")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# One upload
# ---------------------------------------------------------------------------


def inspect_upload(path: Path) -> list[str]:
    """Check an upload before decoding it; return notes on conversions.

    Raises ``UploadRefused`` with a message for a file that is too large, not
    an image, an animated image or one with too many pixels.
    """
    if not path.is_file():
        raise UploadRefused("the file is gone: uploads are deleted once answered, so upload it again.")
    size = path.stat().st_size
    if size > MAX_FILE_MB * 2 ** 20:
        raise UploadRefused(f"{size / 2 ** 20:.1f} MB is over the page's {MAX_FILE_MB} MB limit per file: "
                            "upload the photo as a JPEG.")
    if size == 0:
        raise UploadRefused("the file is empty: upload the photo again.")
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, mode, (width, height) = im.format, im.mode, im.size
                frames = getattr(im, "n_frames", 1)
                transparent = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadRefused(f"too many pixels to decode safely (over {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; "
                            "possibly a decompression bomb): upload a photo of a few megapixels.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UploadRefused(f"not an image this page can read ({type(exc).__name__}): upload a JPEG or PNG "
                            "photo of the lesion.") from None
    if width * height > MAX_PIXELS:
        raise UploadRefused(f"{width}x{height} pixels ({width * height / 1e6:.0f} megapixels) is over the page's "
                            f"{MAX_PIXELS / 1e6:.0f}-megapixel limit: downscale the photo to a few thousand pixels "
                            "a side.")
    if frames > 1:
        raise UploadRefused(f"an animated {fmt} with {frames} frames: upload one still photo of the lesion.")
    notes = []
    if mode == "CMYK":
        notes.append("CMYK image: converted to RGB.")
    elif mode.startswith("I;16") or mode in ("I", "F"):
        notes.append(f"16/32-bit greyscale image ({mode}): scaled to 8 bits.")
    if mode in ("L", "1", "LA", "I", "F") or mode.startswith("I;16"):
        notes.append("greyscale image: the models were trained on colour photos, so this result may mean little.")
    if transparent:
        notes.append("transparent areas are shown to the model as black.")
    return notes


def colour_bar(height: int, width: int = 18) -> np.ndarray:
    """A vertical jet colour bar (1 at the top), uint8 RGB."""
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(width, axis=1)
    return (colormaps["jet"](ramp)[..., :3] * 255).astype(np.uint8)


def overlay_with_bar(image: np.ndarray, cam: np.ndarray, size: int = OVERLAY_SIZE) -> np.ndarray:
    """The photo with its Grad-CAM map (jet, 45%) and a labelled colour bar beside it."""
    photo = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), np.float32)
    heat = np.asarray(Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR), np.float32) / 255.0
    mixed = (0.55 * photo + 0.45 * colormaps["jet"](heat)[..., :3] * 255).astype(np.uint8)
    margin, bar_w, label_w = 8, 18, 86
    canvas = Image.new("RGB", (size + margin + bar_w + label_w, size), "white")
    canvas.paste(Image.fromarray(mixed), (0, 0))
    canvas.paste(Image.fromarray(colour_bar(size, bar_w)), (size + margin, 0))
    draw = ImageDraw.Draw(canvas)
    x = size + margin + bar_w + 4
    draw.text((x, 0), "1: most", fill="black")
    draw.text((x, 12), "weight", fill="black")
    draw.text((x, size // 2 - 6), "0.5", fill="black")
    draw.text((x, size - 24), "0: none", fill="black")
    draw.text((x, size - 12), "(Grad-CAM)", fill="black")
    return np.asarray(canvas)


def analyse_file(models: PageModels, path: Path, name: str | None = None) -> dict[str, Any]:
    """Everything the page shows for one file; ``error`` instead when it is refused.

    The binary and seven-class entries are the dicts ``predict`` prints with
    ``--json`` (``predict._describe``), so page and command line agree.
    """
    name = name or path.name
    try:
        notes = inspect_upload(path)
        b, seven = models.binary, models.seven
        with _OPEN_LOCK:  # load_image also sets warning filters (see _OPEN_LOCK)
            image = load_image(path, b.image_size)
            seven_image = None if seven is None else image if seven.image_size == b.image_size else load_image(
                path, seven.image_size)
        with _MODEL_LOCK:
            probs = b.probabilities(image[None])
            decision = b.decide(probs)[0]
            # The map of the class decided: for a benign call, the evidence against malignant.
            cam = models.gradcam(image, cls=int(decision == "malignant")) if models.gradcam is not None else None
            seven_probs = None if seven is None else seven.probabilities(seven_image[None])
    except UploadRefused as exc:
        return {"file": name, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 -- a decoding error must become a message, never a trace
        return {"file": name, "error": f"could not be read as an image ({type(exc).__name__}): upload a JPEG "
                                       "or PNG photo of the lesion."}
    item: dict[str, Any] = {"file": name, "notes": notes,
                            "binary": _describe(b, path, probs[0], decision)}
    if seven_probs is not None:
        item["seven"] = _describe(models.seven, path, seven_probs[0], models.seven.decide(seven_probs)[0])
    if cam is not None:
        item["overlay"] = overlay_with_bar(image, cam)
    return item


def _rows(labels: Sequence[dict[str, Any]], kind: str) -> str:
    rows = "".join(
        f'<tr class="label" data-kind="{kind}" data-label="{html.escape(lab["label"])}" '
        f'data-probability="{lab["probability"]:.6f}"><td>{html.escape(lab["name"])}'
        f'{"" if lab["name"] == lab["label"] else " (" + html.escape(lab["label"]) + ")"}</td>'
        f'<td class="p">{lab["probability"]:.3f}</td>'
        f'<td><div class="bar" style="width:{100 * lab["probability"]:.0f}px"></div></td></tr>'
        for lab in labels)
    return f'<table class="{kind}">{rows}</table>'


def render(item: dict[str, Any]) -> str:
    """One file's result as HTML (escaped; data attributes for the browser test)."""
    name = html.escape(item["file"])
    if "error" in item:
        return (f'<div class="result refused" data-file="{name}"><h4>{name}</h4>'
                f'<p class="message">Not scored: {html.escape(item["error"])}</p></div>')
    b = item["binary"]
    sign = ">=" if b["p_malignant"] >= b["threshold"] else "<"
    parts = [f'<div class="result" data-file="{name}"><h4>{name}</h4><div class="row"><div>',
             f'<p class="decision" data-decision="{b["decision"]}"><b>{b["decision"]}</b>: P(malignant) '
             f'{b["p_malignant"]:.3f} {sign} threshold {b["threshold"]:.3f} ({html.escape(b["threshold_source"])}; '
             f'model {html.escape(b["model"])})</p>', _rows(b["labels"], "binary")]
    if "seven" in item:
        s = item["seven"]
        parts += [f'<p class="seven-title">Seven HAM10000 diagnoses (model {html.escape(s["model"])}; most '
                  f'probable: <b>{html.escape(full_name(s["decision"]))}</b>)</p>', _rows(s["labels"], "seven")]
    for note in item.get("notes", []) + ([b["note"]] if b.get("note") else []):
        parts.append(f'<p class="note">Note: {html.escape(note)}</p>')
    parts.append("</div>")
    if "overlay" in item:
        # Inline, so the answer is one response and no file of it is kept on the server.
        buffer = io.BytesIO()
        Image.fromarray(item["overlay"]).save(buffer, format="PNG")
        parts.append(f'<figure><img class="overlay" alt="Grad-CAM" src="data:image/png;base64,'
                     f'{base64.b64encode(buffer.getvalue()).decode()}"><figcaption>Grad-CAM of the evidence for '
                     f'{b["decision"]}: where the model\'s evidence lies, not proof that it reads the lesion '
                     "(notebook 4)</figcaption></figure>")
    parts.append("</div></div>")
    return "".join(parts)


def answer(models: PageModels, files: Sequence[str | Path] | None, *, keep: bool = False) -> str:
    """The page's handler: HTML for every file, its Grad-CAM overlay inline.

    Uploaded files are deleted once answered (``models.uploads``; ``keep`` for
    the examples, which are the data set's own files).
    """
    files = [Path(f) for f in (files or [])]
    if not keep:
        models.uploads.hold(files)
    try:
        if not files:
            return '<p class="message">Upload one or more photos, or pick an example.</p>'
        if len(files) > MAX_FILES:
            return (f'<p class="message">{len(files)} files: the page takes at most {MAX_FILES} at a time. '
                    "Upload fewer, or use `python -m helpers predict` for a folder.</p>")
        items = [analyse_file(models, f) for f in files]  # Gradio keeps the uploaded file's own name
        banner = f'<p class="disclaimer">{html.escape(DISCLAIMER)}</p>'
        return banner + "".join(render(it) for it in items)
    finally:
        if not keep:
            models.uploads.release(files)


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------

CSS = """
.result {border: 1px solid #ccc; border-radius: 6px; padding: 6px 10px; margin: 6px 0;}
.result.refused {border-color: #c0392b; background: #fdf2f0;}
.result table td {padding: 1px 8px 1px 0;}
.bar {height: 10px; background: #4c72b0;}
.disclaimer {font-weight: bold; color: #8a1c1c;}
.result .row {display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start;}
.result figure {margin: 0; max-width: 380px;}
.result figcaption {font-size: 0.8em; color: #555;}
"""


def build_page(models: PageModels):
    """The Gradio Blocks of the page (not launched)."""
    import gradio as gr  # about 4 s to import: only for the page

    with gr.Blocks(title="Skin-lesion classifier (research)", analytics_enabled=False,
                   delete_cache=(60, 60)) as page:
        gr.Markdown("# Dermoscopic skin-lesion classifier: try the research model\n"
                    f"**{DISCLAIMER}** Uploads are scored on this computer and deleted a few seconds after the answer; "
                    "nothing is sent anywhere.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label=f"Dermoscopic photos (at most {MAX_FILES}, {MAX_FILE_MB} MB each)",
                                 file_count="multiple", elem_id="upload")
                run = gr.Button("Classify", variant="primary", elem_id="classify")
                if models.examples:
                    example = gr.Dropdown(list(models.examples), label="Or an example from the test split",
                                          elem_id="example")
                    run_example = gr.Button("Classify the example", elem_id="classify-example")
                else:
                    gr.Markdown(models.examples_note)
                gr.Markdown(model_card(models), elem_id="model-card")
            with gr.Column(scale=2):
                results_html = gr.HTML(elem_id="results")
        run.click(lambda files: answer(models, files), inputs=upload, outputs=results_html,
                  api_name="classify", concurrency_limit=2)
        if models.examples:
            run_example.click(lambda key: answer(models, [models.examples[key]] if key else [], keep=True),
                              inputs=example, outputs=results_html, api_name="classify_example",
                              concurrency_limit=2)
    return page


def launch(models: PageModels, host: str = HOST, port: int = PORT, *, block: bool = True):
    """Serve the page; returns the Blocks (running in the background when ``block`` is False)."""
    import gradio as gr

    page = build_page(models)
    models.uploads.sweep_forever()
    page.queue(max_size=64)
    page.launch(server_name=host, server_port=port, share=False, max_file_size=f"{MAX_FILE_MB}mb",
                prevent_thread_lock=not block, quiet=True, ssr_mode=False, mcp_server=False,
                footer_links=["api"], css=CSS, theme=gr.themes.Default())
    return page


def run_serve(args: argparse.Namespace) -> int:
    """CLI entry: serve the page (or, with --load-test, measure it and stop)."""
    out = output_dirs()
    try:
        models = load_page_models(out, model=args.model, data_dir=args.data_dir)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    if args.load_test:
        from .serve_load import run_load_test  # it imports this module: imported when asked for

        return run_load_test(args, models, out)
    if args.host not in (HOST, "localhost"):
        print(f"serve: listening on {args.host}: anyone who can reach this machine can use the page.",
              file=sys.stderr)
    print(f"serve: model {models.binary.name}; open http://{args.host}:{args.port}/ (Ctrl-C stops)")
    launch(models, args.host, args.port, block=True)
    return 0


