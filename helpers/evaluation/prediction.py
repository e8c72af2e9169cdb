"""Predictions for a user's image files, one row each, read as the course reads every image (helpers.predict is the command line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.images import list_images, read_image
from ..core.errors import DataError
from ..training.inference import predict
from ..models import load_checkpoint


def find_files(target: str | Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files): the file itself, or every file under a folder, sorted."""
    target = Path(target)
    if target.is_file():
        return [target], []
    if target.is_dir():
        return list_images(target)
    raise DataError(f"--images {target} is neither an image file nor a folder")


def not_images_line(others: list[Path], folder: str | Path) -> str:
    """'2 files skipped: not images — notes.txt, scan.pdf' (names relative to folder), or '' when there are none."""
    if not others:
        return ""
    names = [str(p.relative_to(folder)) if p.is_relative_to(folder) else str(p) for p in others]
    return f"{len(others)} file{'s' if len(others) > 1 else ''} skipped: not images — {', '.join(names)}"


def predict_files(checkpoint: str | Path, files: list[Path], tta: bool = False) -> pd.DataFrame:
    """One row per file, in order: image, p_<class>…, predicted, and error (empty, why it was skipped, or warnings)."""
    model, _ = load_checkpoint(checkpoint)
    arrays, errors = {}, {}
    for i, path in enumerate(files):
        try:
            arrays[i], warnings = read_image(path, model.image_size, model.resize_policy)
        except DataError as err:
            errors[i] = str(err)
            continue
        if warnings:
            errors[i] = "; ".join(warnings)
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
