"""From a HAM10000 folder to train/val/test tensors: index, split, image cache, labels, in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data.ham10000 import load_ham10000
from .data.labels import BINARY_CLASSES, DX_CLASSES, binary_label
from .data.source import data_home
from .data.splits import SPLITS, dermamnist_split, image_level_split, load_or_make_split, subsample_lesions
from .images import cached_images
from .train import ImageData, default_device

SPLIT_KINDS = ("lesion_disjoint", "image_level", "dermamnist_official")


@dataclass
class SplitData:
    """An indexed data set with its split and the images of each split as ImageData."""

    index: pd.DataFrame
    classes: list[str]
    image_size: int
    split_kind: str
    parts: dict[str, ImageData]

    @property
    def train(self) -> ImageData:
        """The training images."""
        return self.parts["train"]

    @property
    def val(self) -> ImageData:
        """The validation images."""
        return self.parts["val"]

    @property
    def test(self) -> ImageData:
        """The test images."""
        return self.parts["test"]

    def rows(self, split: str) -> pd.DataFrame:
        """The index rows of one split, in the order of its ImageData."""
        return self.index[self.index["split"] == split].reset_index(drop=True)


def labels_for(index: pd.DataFrame, task: str) -> tuple[np.ndarray, list[str]]:
    """Integer labels and class names for task 'dx' (7 classes) or 'binary' (benign/malignant)."""
    if task == "dx":
        return index["dx"].cat.codes.to_numpy().astype(np.int64), list(DX_CLASSES)
    if task == "binary":
        names = index["dx"].astype(str).map(binary_label)
        return (names == "malignant").to_numpy().astype(np.int64), list(BINARY_CLASSES)
    raise ValueError(f"task must be 'dx' or 'binary'; got {task!r}")


def assign_split(index: pd.DataFrame, kind: str, seed: int, name: str, split_csv: str | Path | None = None) -> pd.Series:
    """The split column for kind: the saved lesion-disjoint split, an image-level one, or DermaMNIST's."""
    if kind == "lesion_disjoint":
        return load_or_make_split(index, seed=seed, name=name)
    if kind == "image_level":
        return image_level_split(index, seed=seed)
    if kind == "dermamnist_official":
        if split_csv is None:
            raise ValueError("split 'dermamnist_official' needs split_csv (a CSV like dermamnist_split.csv)")
        return dermamnist_split(index, split_csv)
    raise ValueError(f"split must be one of {', '.join(SPLIT_KINDS)}; got {kind!r}")


def load_split_data(root: str | Path, image_size: int, split: str = "lesion_disjoint", task: str = "dx", seed: int = 0,
                    max_images: int | None = None, policy: str = "center_crop", split_csv: str | Path | None = None,
                    device: str | torch.device | None = None, cache_dir: str | Path | None = None,
                    name: str = "ham10000", progress: bool = True) -> SplitData:
    """Load, split and cache a HAM10000-layout folder; images of every split land on device."""
    index = subsample_lesions(load_ham10000(root), max_images, seed=seed)
    index = index.assign(split=assign_split(index, split, seed, name, split_csv).to_numpy())
    images = cached_images(index["path"].tolist(), image_size, cache_dir or data_home() / "cache", policy,
                           name=f"{name}-{len(index)}img", progress=progress)
    labels, classes = labels_for(index, task)
    device = device or default_device()
    parts = {}
    for part in SPLITS:
        where = np.flatnonzero(index["split"].to_numpy() == part)
        parts[part] = ImageData.from_numpy(images[where], labels[where], device)
    return SplitData(index, classes, image_size, split, parts)
