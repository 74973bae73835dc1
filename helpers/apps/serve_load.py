"""The web page's load test (``python -m helpers serve --load-test``): concurrent
clients upload one image through the page's HTTP API on 127.0.0.1; p50/p95
latency and errors, recorded in results.json under "web_page" by the chain."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import results
from ..config import OutputDirs
from .serve import HOST, PageModels, launch

RECORD_KEY = "web_page"  # results.json section written by ``--load-test --record``


def classify_over_http(client, url: str, image: str | Path) -> str:
    """One visit through the page's HTTP API, as its browser code makes it: upload the
    file, ask for ``classify``, read the answer from the event stream. Returns the HTML."""
    with open(image, "rb") as handle:
        uploaded = client.post(f"{url}gradio_api/upload", files={"files": (Path(image).name, handle)})
    uploaded.raise_for_status()
    payload = {"data": [[{"path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}]]}
    event = client.post(f"{url}gradio_api/call/classify", json=payload)
    event.raise_for_status()
    answer_stream = client.get(f"{url}gradio_api/call/classify/{event.json()['event_id']}")
    answer_stream.raise_for_status()
    kind, data = None, None
    for line in answer_stream.text.splitlines():
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: ") and kind == "complete":
            data = line[len("data: "):]
    if data is None:
        raise RuntimeError(f"no answer in the event stream: {answer_stream.text[-200:]}")
    return json.loads(data)[0]


def load_test(url: str, image: str | Path, *, clients: int = 8, requests: int = 200) -> dict[str, Any]:
    """``requests`` uploads of ``image`` through the page's API from ``clients`` threads
    at once; latency of each (upload, model, Grad-CAM, answer) and the errors.

    Each client keeps one HTTP connection (a browser does too); the load runs
    on the same two cores as the page, so the numbers include its own cost.
    """
    import httpx

    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(timeout=120) as client:
            for _ in range(n):
                start = time.perf_counter()
                try:
                    html_out = classify_over_http(client, url, image)
                    if 'class="result"' not in html_out or 'img class="overlay"' not in html_out:
                        raise RuntimeError(f"no result in the answer: {html_out[:200]}")
                    with lock:
                        latencies.append(time.perf_counter() - start)
                except Exception as exc:  # noqa: BLE001 -- counted and listed, the test goes on
                    with lock:
                        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, per_client))
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"clients": clients, "requests": requests, "ok": len(latencies), "errors": len(errors),
            "error_examples": errors[:5], "p50_seconds": round(q[49], 3) if q else None,
            "p95_seconds": round(q[94], 3) if q else None, "wall_seconds": round(wall, 2),
            "requests_per_second": round(len(latencies) / wall, 2),
            "image": Path(image).name}  # the file, not this machine's folders (results.json is committed)


def run_load_test(args: argparse.Namespace, models: PageModels, out: OutputDirs) -> int:
    image = args.load_test_image or (next(iter(models.examples.values()), None))
    if image is None:
        print(f"serve: no image for the load test: {models.examples_note} Pass --load-test-image.", file=sys.stderr)
        return 2
    launch(models, HOST, args.port, block=False)
    try:
        report = load_test(f"http://{HOST}:{args.port}/", image, clients=args.clients, requests=args.requests)
    finally:
        import gradio as gr
        gr.close_all()
    report.update(model=models.binary.name, seven_class_model=models.seven.name if models.seven else None,
                  gradcam=models.gradcam is not None, cpu_cores=os.cpu_count(),
                  date=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    print(f"serve: {report['ok']} of {report['requests']} requests answered from {report['clients']} clients; "
          f"p50 {report['p50_seconds']} s, p95 {report['p95_seconds']} s, {report['errors']} errors, "
          f"{report['requests_per_second']} requests/s")
    if args.record:
        results.update_results({RECORD_KEY: {"load_test": report}}, out.results)
        print(f"serve: recorded under '{RECORD_KEY}' in {out.results}")
    return 0 if report["errors"] == 0 else 1


