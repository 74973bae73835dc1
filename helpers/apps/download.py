"""`python -m helpers download`: fetch a balanced benign/malignant set from the ISIC
Archive with ``isic-cli``, or check one fetched earlier (``--verify``); the work is
in ``helpers.data.download``."""
from __future__ import annotations

import argparse
import sys

from ..data.collection import DEFAULT_HAM_OUT, HAM10000, download_collection
from ..data.download import CHECKSUMS, DEFAULT_OUT, DownloadError, download_isic, verify_checksums

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run_download(args: argparse.Namespace) -> int:
    """Download (or with --verify, check), print a summary; exit code 0 on success, 1 on failure."""
    collection = getattr(args, "collection", None)
    if args.out is None:
        args.out = DEFAULT_HAM_OUT if collection and collection.casefold() == HAM10000.casefold() else \
            DEFAULT_OUT if not collection else DEFAULT_OUT.with_name(collection.replace(" ", "-").lower())
    if getattr(args, "verify", False):
        return run_verify(args)
    if collection:
        return run_collection(args)
    try:
        result = download_isic(args.out, args.limit, args.seed)
    except DownloadError as error:
        print(f"download failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    if result["reused"]:
        return EXIT_OK
    per_class = ", ".join(f"{label} {n}" for label, n in result["per_class"].items())
    licences = ", ".join(f"{name} {n}" for name, n in result["licenses"].items()) or "none recorded"
    print(f"Downloaded {result['n_images']} images ({per_class}; licences: {licences}) with metadata to "
          f"{result['out_dir']}; SHA-256 of each in {CHECKSUMS} (check them with --verify). "
          f"Read it with SKIN_DATA_DIR={result['out_dir']}.")
    return EXIT_OK


def run_collection(args: argparse.Namespace) -> int:
    """Every image of one ISIC Archive collection (``data.collection``)."""
    try:
        manifest = download_collection(args.collection, args.out)
    except DownloadError as error:
        print(f"download failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{manifest['collection']['name']}: {manifest['n_images']} images with metadata in {args.out}; SHA-256 "
          f"of each in {CHECKSUMS} (check them with --verify --out {args.out}).")
    return EXIT_OK


def _listed(what: str, names: list[str], limit: int = 20) -> list[str]:
    """Report lines for one kind of difference: the count, then up to ``limit`` names."""
    if not names:
        return []
    more = [f"  ... and {len(names) - limit} more"] if len(names) > limit else []
    return [f"{what} ({len(names)}):"] + [f"  {name}" for name in names[:limit]] + more


def run_verify(args: argparse.Namespace) -> int:
    """Hash the images again: 0 when all match, 1 when some are missing or changed, 2 without checksums."""
    try:
        report = verify_checksums(args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"verify: {error}", file=sys.stderr)
        return EXIT_USAGE
    bad = report["missing"] + report["changed"]
    if not bad:
        print(f"verify: all {report['n_files']} files in {report['checksums']} are present and unchanged")
        return EXIT_OK
    lines = [f"verify: {len(bad)} of {report['n_files']} files differ from {report['checksums']}"]
    lines += _listed("missing", report["missing"]) + _listed("changed", report["changed"])
    lines.append(f"To fetch them again, delete them and {report['out_dir']}/download.json, then run "
                 f"`python -m helpers download --out {report['out_dir']}` with the same --limit "
                 "(this fetches the whole set again).")
    print("\n".join(lines), file=sys.stderr)
    return EXIT_FAILED
