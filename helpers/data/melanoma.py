"""The reference notebook's binary data set, Kaggle's "Melanoma Skin Cancer Dataset of 10000 Images" ({train,test}/{benign,malignant}).

Resolution: the melanoma_dir parameter, then $MELANOMA10K_DIR, then data/melanoma10k/, else a small
synthetic stand-in in the same layout built from the synthetic HAM10000 demo set and announced loudly.
The set has no lesion ids, so its train folder can only be split by image (as the reference notebook did).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from .ham10000 import load_ham10000
from .labels import binary_label
from .source import SYNTHETIC_IMAGES, DataSource, data_home, describe, resolve_path
from .splits import check_fractions, lesion_split
from .synthetic import make_synthetic

MELANOMA10K_ENV = "MELANOMA10K_DIR"
FOLDER_NAME = "melanoma10k"
SYNTHETIC_FOLDER_NAME = "synthetic_melanoma10k"
MANIFEST_FILE = "synthetic_folder.json"
FOLDER_SPLITS: tuple[str, ...] = ("train", "val", "test", "official_test")
FOLDER_FRACTIONS: tuple[float, float, float] = (0.90, 0.05, 0.05)  # the reference notebook's split of the train folder


def resolve_melanoma_source(melanoma_dir: str | Path | None = None) -> DataSource:
    """Pick the melanoma10k folder: melanoma_dir, $MELANOMA10K_DIR, data/melanoma10k/, else the synthetic stand-in."""
    found = resolve_path(melanoma_dir, MELANOMA10K_ENV, data_home() / FOLDER_NAME, "melanoma_dir",
                         usable=lambda folder: any(folder.iterdir()))
    if found is not None:
        return DataSource(FOLDER_NAME, *found)
    ham = make_synthetic(data_home() / "synthetic", n_images=SYNTHETIC_IMAGES, progress=False)
    root = make_synthetic_folder(data_home() / SYNTHETIC_FOLDER_NAME, ham)
    return DataSource("synthetic", root, "synthetic stand-in built from the synthetic HAM10000 demo set")


def describe_melanoma(source: DataSource, n_images: int | None = None) -> str:
    """The banner line of the melanoma10k data in use; loud for the synthetic stand-in."""
    hint = f"Set {MELANOMA10K_ENV} or melanoma_dir to a melanoma10k folder ({{train,test}}/{{benign,malignant}})."
    return describe(source, n_images, hint=hint)


def make_synthetic_folder(out_dir: str | Path, ham_root: str | Path, seed: int = 0, test_share: float = 0.2,
                          planted_copies: int = 3) -> Path:
    """Copy a (synthetic) HAM10000-layout set into {train,test}/{benign,malignant} by lesion, mapping dx to benign/malignant.

    Like the real set, which has byte-identical images in train and test, the first planted_copies
    train images are also copied into test, so the duplicate checks have something to find.
    """
    out_dir = Path(out_dir)
    manifest = {"source": Path(ham_root).name, "seed": seed, "test_share": test_share, "planted_copies": planted_copies}
    if _manifest(out_dir) == manifest:
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and _manifest(out_dir) is None:
        raise DataError(f"{out_dir} is not empty and holds no {MANIFEST_FILE}; refusing to replace what may be real data")
    index = load_ham10000(ham_root)
    split = lesion_split(index, seed=seed, fractions=(1 - test_share, 0.0, test_share))
    label = index["dx"].astype(str).map(binary_label)
    jobs = [(path, f"{part}/{name}/{Path(path).name}") for path, part, name in zip(index["path"], split, label)]
    planted = [(path, relpath) for path, relpath in jobs if relpath.startswith("train/")][:planted_copies]
    jobs += [(path, f"test/{Path(relpath).parent.name}/{Path(path).stem}_copy{Path(path).suffix}") for path, relpath in planted]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        for source, relpath in jobs:
            (tmp / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp / relpath)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest) + "\n")
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def subsample_folder(table: pd.DataFrame, max_images: int | None, seed: int = 0, min_per_group: int = 4) -> pd.DataFrame:
    """About max_images rows, the same share of every (folder_split, label) group and at least min_per_group of each."""
    if max_images is None or len(table) <= max_images:
        return table
    rng = np.random.default_rng(seed)
    keep = []
    for _, rows in table.groupby(["folder_split", "label"], observed=True, sort=True):
        n = min(len(rows), max(min_per_group, round(max_images * len(rows) / len(table))))
        keep.append(rows.index[np.sort(rng.choice(len(rows), n, replace=False))])
    return table.loc[np.concatenate(keep)].sort_index().reset_index(drop=True)


def folder_split(table: pd.DataFrame, fractions: tuple[float, float, float] = FOLDER_FRACTIONS,
                 seed: int = 0) -> pd.Series:
    """Train-folder images to train/val/test by image, stratified by label and seeded; test-folder images to official_test."""
    check_fractions(fractions)
    rng = np.random.default_rng(seed)
    split = pd.Series("official_test", index=table.index, name="split", dtype=object)
    in_train = table["folder_split"] == "train"
    for _, rows in table[in_train].groupby("label", observed=True, sort=True):
        order = rows.index[rng.permutation(len(rows))]
        n_val, n_test = round(fractions[1] * len(rows)), round(fractions[2] * len(rows))
        split.loc[order] = "train"
        split.loc[order[:n_val]] = "val"
        split.loc[order[n_val:n_val + n_test]] = "test"
    return split
