"""Image-folder data sets in the {train,test}/{benign,malignant} layout (the reference notebook's melanoma data set)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from ..core.errors import DataError
from .images import image_suffixes
from .labels import BINARY_CLASSES


def load_image_folder(
    root: str | Path,
    splits: tuple[str, ...] = ("train", "test"),
    classes: tuple[str, ...] = BINARY_CLASSES,
) -> pd.DataFrame:
    """One row per image of root/<split>/<class>/: path, relpath, image_id, folder_split, label."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    rows, suffixes = [], image_suffixes()
    for split in splits:
        for label in classes:
            folder = root / split / label
            if not folder.is_dir():
                layout = f"{{{','.join(splits)}}}/{{{','.join(classes)}}}"
                raise DataError(f"expected the folder {folder} (layout {root}/{layout}/)")
            files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            others = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in suffixes)
            if others:
                warnings.warn(f"{folder}: {len(others)} file(s) skipped: not images — {', '.join(others)}", stacklevel=2)
            if not files:
                raise DataError(f"no images in {folder}")
            rows += [(str(p.resolve()), p.relative_to(root).as_posix(), p.stem, split, label) for p in files]
    table = pd.DataFrame(rows, columns=["path", "relpath", "image_id", "folder_split", "label"])
    table["label"] = pd.Categorical(table["label"], categories=list(classes))
    return table
