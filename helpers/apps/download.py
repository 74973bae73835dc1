"""`python -m helpers download`: fetch a balanced benign/malignant set from the ISIC
Archive with ``isic-cli`` (the work is in ``helpers.data.download``)."""
from __future__ import annotations

import argparse
import sys

from ..data.download import DownloadError, download_isic


def run_download(args: argparse.Namespace) -> int:
    """Download, print a one-line summary; exit code 0 on success, 1 on failure."""
    try:
        result = download_isic(args.out, args.limit, args.seed)
    except DownloadError as error:
        print(f"download failed: {error}", file=sys.stderr)
        return 1
    print(f"Downloaded {result['n_images']} images with metadata to {result['out_dir']} "
          f"(read it with SKIN_DATA_DIR={result['out_dir']}).")
    return 0
