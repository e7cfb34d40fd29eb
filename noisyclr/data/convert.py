"""Convert a reference noise file (JSON list in the ORIGINAL dataset order) into a ``path,label`` CSV.

Usage::

    python -m noisyclr.data.convert NOISE_JSON ORDER_CSV OUT_CSV [--overwrite]

``ORDER_CSV`` has ``path`` and ``index`` columns: the image path relative to the dataset root and its position in
the original order (e.g. ``/work/shared/data/cifar10n/labels.csv`` for the CIFAR-10 JPEG folder). The output has
one ``path,label`` row per row of ``ORDER_CSV`` and can be used directly as ``noise.kind=file noise.file=OUT_CSV``
(equivalently, keep the JSON and set ``noise.order_file=ORDER_CSV``). The write is atomic and an existing output is
kept unless ``--overwrite`` is given. Errors print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from .noise import convert_noise_to_csv


def main(argv: list[str] | None = None) -> int:
    """Run the converter; returns the process exit code (0, or 2 on a :class:`UserError`)."""
    parser = argparse.ArgumentParser(
        prog="python -m noisyclr.data.convert",
        description="Write path,label rows for a JSON noise list given in the original dataset order.",
    )
    parser.add_argument("noise_json", help="JSON list of labels in the original dataset order")
    parser.add_argument("order_csv", help="CSV with path,index columns (e.g. cifar10n/labels.csv)")
    parser.add_argument("out_csv", help="output CSV (path,label)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_CSV if it exists")
    args = parser.parse_args(argv)
    try:
        rows = convert_noise_to_csv(args.noise_json, args.order_csv, args.out_csv, overwrite=args.overwrite)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    print(f"wrote {rows} rows to {args.out_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
