"""Predict image files with a saved checkpoint: python -m helpers.predict --checkpoint F --images DIR_OR_FILE --out preds.csv

Every format Pillow reads is read (JPEG, PNG, BMP, TIFF, WebP, GIF's first frame, ...), upright as its EXIF
orientation says, 16-bit and float images scaled to 8 bits by their range, transparency composited on white.
The CSV has one row per image file: its path, a probability per class, the predicted class and an
`error` column: empty; or why the file could not be read (then the rest of the row is empty); or a
`warning: …` when the image is nearly uniform or much smaller than the model's input (the prediction is
kept but unreliable). Files that are not images (by suffix) are counted and named in the summary line.
Exit status: 0 when every file was an image and was predicted without a warning; 3 when some were
skipped, flagged or not images; 1 when none could be predicted (then --out is not written, and an
existing one is kept as it was).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.cli import EXIT_OK, EXIT_PARTIAL, add_debug_argument, run
from .core.errors import DataError
from .core.io import atomic_open
from .evaluation.prediction import find_files, not_images_line, predict_files


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--out", required=True, type=Path, help="CSV to write")
    parser.add_argument("--tta", action="store_true", help="average over flips (test-time augmentation)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    files, others = find_files(args.images)
    kept = f"{args.out} kept as it was" if args.out.exists() else f"{args.out} not written"
    if not files:
        found = f" ({not_images_line(others, args.images)})" if others else ""
        raise DataError(f"--images {args.images} holds no image files (no format Pillow reads){found}; {kept}")
    table = predict_files(args.checkpoint, files, args.tta)
    flagged = table["error"].str.startswith("warning: ")
    skipped = (table["error"] != "") & ~flagged
    for problem in table.loc[skipped, "error"]:
        print(f"skipped: {problem}", file=sys.stderr)
    for problem in table.loc[flagged, "error"]:
        print(problem, file=sys.stderr)
    if skipped.all():
        raise DataError(f"none of the {len(table)} image file(s) in --images {args.images} could be read; {kept}")
    with atomic_open(args.out, "w", newline="") as handle:
        table.to_csv(handle, index=False, float_format="%.6f")
    partial = bool(skipped.any() or flagged.any() or others)
    parts = [f"{int((~skipped).sum())} predicted"]
    if flagged.any():
        parts.append(f"{int(flagged.sum())} of them flagged unreliable (a warning in their error column)")
    if skipped.any():
        parts.append(f"{int(skipped.sum())} skipped (see their error column)")
    if others:
        parts.append(not_images_line(others, args.images))
    print(f"wrote {len(table)} row(s) to {args.out}: {', '.join(parts)}"
          + (f"; exit status {EXIT_PARTIAL}" if partial else ""))
    return EXIT_PARTIAL if partial else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Write predictions to a CSV: exit 0 when all were predicted, 3 when some were skipped or flagged, 1 when none."""
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
