"""Predict image files with a saved checkpoint: python -m helpers.predict --checkpoint F --images DIR_OR_FILE --out preds.csv

The CSV has one row per image file: its path, a probability per class, the predicted class and an
`error` column, empty unless the file could not be read (then it says why and the rest of the row is
empty). Exit status: 0 when every image was predicted, 3 when some were skipped (their rows say why),
1 when none could be (then --out is not written, and an existing one is kept as it was).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .cli import EXIT_OK, EXIT_PARTIAL, add_debug_argument, run
from .data.ham10000 import IMAGE_SUFFIXES
from .data.images import load_resized
from .errors import DataError
from .inference import predict
from .io import atomic_open
from .models import load_checkpoint


def image_files(target: str | Path) -> list[Path]:
    """The image file itself, or every image file under a folder, sorted."""
    target = Path(target)
    if target.is_file():
        return [target]
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    raise DataError(f"--images {target} is neither an image file nor a folder")


def predict_files(checkpoint: str | Path, files: list[Path], tta: bool = False) -> pd.DataFrame:
    """One row per file, in order: image, p_<class>…, predicted, and error (empty, or why the file was skipped)."""
    model, _ = load_checkpoint(checkpoint)
    arrays, errors = {}, {}
    for i, path in enumerate(files):
        try:
            arrays[i] = load_resized(path, model.image_size, model.resize_policy)
        except DataError as err:
            errors[i] = str(err)
    columns = [f"p_{c}" for c in model.classes]
    probs = np.full((len(files), len(columns)), np.nan)
    read = sorted(arrays)
    if read:
        probs[read] = predict(model, np.stack([arrays[i] for i in read]), tta=tta)
    table = pd.DataFrame(probs, columns=columns)
    table.insert(0, "image", [str(p) for p in files])
    table["predicted"] = [model.classes[row.argmax()] if i in arrays else "" for i, row in enumerate(probs)]
    table["error"] = [errors.get(i, "") for i in range(len(files))]
    return table


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--out", required=True, type=Path, help="CSV to write")
    parser.add_argument("--tta", action="store_true", help="average over flips (test-time augmentation)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    files = image_files(args.images)
    kept = f"{args.out} kept as it was" if args.out.exists() else f"{args.out} not written"
    if not files:
        raise DataError(f"--images {args.images} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); {kept}")
    table = predict_files(args.checkpoint, files, args.tta)
    skipped = table["error"] != ""
    for problem in table.loc[skipped, "error"]:
        print(f"skipped: {problem}", file=sys.stderr)
    if skipped.all():
        raise DataError(f"none of the {len(table)} image file(s) in --images {args.images} could be read; {kept}")
    with atomic_open(args.out, "w", newline="") as handle:
        table.to_csv(handle, index=False, float_format="%.6f")
    print(f"wrote {len(table)} row(s) to {args.out}: {int((~skipped).sum())} predicted"
          + (f", {int(skipped.sum())} skipped (see their error column; exit status {EXIT_PARTIAL})" if skipped.any() else ""))
    return EXIT_PARTIAL if skipped.any() else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Write predictions to a CSV: exit 0 when all images were predicted, 3 when some were skipped, 1 when none could be."""
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
