"""Score a checkpoint on labelled images it never saw:
python -m helpers.evaluate --checkpoint F --images DIR --labels CSV --out metrics.json

The labels CSV names each image by its id (file name without suffix, e.g. ISIC_0024306) or file name, in a
column `image_id`, `image`, `file` or `filename`, and gives its diagnosis in HAM10000's codes: a column `dx`
(akiec, bcc, bkl, df, mel, nv, vasc), or one-hot columns MEL, NV, BCC, AKIEC, BKL, DF, VASC as in the ISIC 2018
Task 3 ground truth. An optional `lesion_id` column makes the bootstrap resample lesions (else images). A binary
(benign/malignant) checkpoint is scored on dx mapped to malignant (mel, bcc, akiec) or benign.

The JSON and the printed table hold accuracy, balanced accuracy, macro AUC, per-class recall and the
malignant-vs-benign AUC, with bootstrap 95% intervals. The checkpoint's own test-time augmentation, temperature
and decision rule (its `extra`: "tta", "temperature", "decision" with "tau" and "priors", "threshold") are applied.
Images are read as helpers.predict reads them (every format Pillow reads, EXIF orientation applied). Images without
labels, labels without images, unknown dx codes, unreadable files and files that are not images are each reported and
counted under "excluded"; the rest is scored. Images that are nearly uniform or much smaller than the model's input
are scored but reported and counted under "flagged". Exit status: 0 when every file and label was used and none was
flagged, 3 when some were excluded or flagged, 1 when nothing could be scored (then --out is not written, and an
existing one is kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.cli import EXIT_OK, EXIT_PARTIAL, add_debug_argument, positive_int, run
from .core.errors import DataError
from .core.io import write_json
from .evaluation.external import evaluate_checkpoint, result_table


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path, help="a folder of images (searched recursively)")
    parser.add_argument("--labels", required=True, type=Path, help="CSV: image id or file name, and dx (or one-hot)")
    parser.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="flip test-time augmentation (default: as the checkpoint says)")
    parser.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    kept = f"{args.out} kept as it was" if args.out.exists() else f"{args.out} not written"
    try:
        result = evaluate_checkpoint(args.checkpoint, args.images, args.labels, args.tta, args.n_boot, args.seed)
    except DataError as err:
        raise DataError(f"{err}; {kept}") from err
    for kind, found in result["excluded"].items():
        if found["count"]:
            print(f"excluded: {found['count']} {kind}, e.g. {', '.join(found['examples'])}", file=sys.stderr)
    for warning in result["flagged"]["examples"]:
        print(f"flagged (scored): {warning.removeprefix('warning: ')}", file=sys.stderr)
    write_json(result, args.out)
    print(result_table(result))
    print(f"wrote {args.out}")
    partial = result["flagged"]["count"] or any(found["count"] for found in result["excluded"].values())
    return EXIT_PARTIAL if partial else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Score a checkpoint on labelled images: exit 0 when all were used, 3 when some were excluded or flagged, 1 when none."""
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
