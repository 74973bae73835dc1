"""Command line: `python -m helpers reproduce | download | ...`."""
from __future__ import annotations

import argparse
import sys

from .config import NOTEBOOKS, DataNotFoundError, resolve_data_dir


def _reproduce(args: argparse.Namespace) -> int:
    from .pipeline import ChainError, reproduce

    try:
        # Fail before starting any kernel when there is no data at all.
        data_dir = resolve_data_dir(args.data_dir)
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    notebooks = [nb for nb in NOTEBOOKS if not args.notebooks or any(nb.startswith(k) for k in args.notebooks)]
    try:
        results = reproduce(quick=args.quick, data_dir=str(data_dir) if args.data_dir else None,
                            output_dir=args.output_dir, notebooks=notebooks)
    except ChainError as exc:
        print(f"[reproduce] FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"[reproduce] done in {results['run']['chain_seconds'] / 60:.1f} min")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .inference import evaluate_folder, format_evaluation

    try:
        report = evaluate_folder(args.model, args.data, n_resamples=args.resamples)
    except (FileNotFoundError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else format_evaluation(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="run the notebook chain with papermill")
    rep.add_argument("--quick", action="store_true", help="small subset and few epochs (class, CI)")
    rep.add_argument("--data-dir", help="data folder (default: $SKIN_DATA_DIR, else data/)")
    rep.add_argument("--output-dir", help="write everything here instead of into the repository")
    rep.add_argument("--notebooks", nargs="*", metavar="N",
                     help="only the notebooks whose names start with these (e.g. 3 4)")
    rep.set_defaults(func=_reproduce)

    ev = sub.add_parser("evaluate", help="score a saved model on a labelled image folder")
    ev.add_argument("--model", help="model name in results.json or a .keras file (default: best on validation)")
    ev.add_argument("--data", required=True, help="labelled images: a folder per class, HAM10000 or an isic-cli export")
    ev.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the AUC interval")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=_evaluate)

    from . import download

    dl = sub.add_parser("download", help="fetch a balanced benign/malignant set from the ISIC Archive")
    download.add_download_arguments(dl)
    dl.set_defaults(func=download.run_download)

    from . import predict, tflite_export

    pr = sub.add_parser("predict", help="ranked labels of a saved model for your own images")
    predict.add_predict_arguments(pr)
    pr.set_defaults(func=predict.run_predict)

    ex = sub.add_parser("export-tflite", help="write TFLite files of a saved model, checked against Keras")
    tflite_export.add_export_arguments(ex)
    ex.set_defaults(func=tflite_export.run_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
