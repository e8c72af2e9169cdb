"""Predict image files with a saved checkpoint: python -m helpers.predict --checkpoint F --images DIR_OR_FILE --out preds.csv"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .classifier import load_checkpoint
from .data.ham10000 import IMAGE_SUFFIXES
from .errors import DataError
from .images import load_resized
from .io import atomic_open
from .train import predict


def image_files(target: str | Path) -> list[Path]:
    """The image file itself, or every image file under a folder, sorted."""
    target = Path(target)
    if target.is_file():
        return [target]
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    raise DataError(f"--images {target} is neither an image file nor a folder")


def predict_files(checkpoint: str | Path, files: list[Path], tta: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """One row per readable file (image, p_<class>…, predicted) and one message per unreadable file."""
    model, _ = load_checkpoint(checkpoint)
    arrays, names, problems = [], [], []
    for path in files:
        try:
            arrays.append(load_resized(path, model.image_size, model.resize_policy))
            names.append(str(path))
        except DataError as err:
            problems.append(str(err))
    columns = [f"p_{c}" for c in model.classes]
    if not arrays:
        return pd.DataFrame(columns=["image", *columns, "predicted"]), problems
    probs = predict(model, np.stack(arrays), tta=tta)
    table = pd.DataFrame(probs, columns=columns)
    table.insert(0, "image", names)
    table["predicted"] = [model.classes[i] for i in probs.argmax(1)]
    return table, problems


def main(argv: list[str] | None = None) -> int:
    """Write predictions to a CSV; unreadable images are reported by name and the rest still predicted."""
    parser = argparse.ArgumentParser(prog="python -m helpers.predict", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--out", required=True, type=Path, help="CSV to write")
    parser.add_argument("--tta", action="store_true", help="average over flips (test-time augmentation)")
    args = parser.parse_args(argv)
    try:
        table, problems = predict_files(args.checkpoint, image_files(args.images), args.tta)
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    with atomic_open(args.out, "w", newline="") as handle:
        table.to_csv(handle, index=False, float_format="%.6f")
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    print(f"wrote {len(table)} prediction(s) to {args.out}" + (f"; {len(problems)} image(s) unreadable" if problems else ""))
    return 1 if problems and table.empty else 0


if __name__ == "__main__":
    sys.exit(main())
