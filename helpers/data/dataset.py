"""From a data folder to train/val/test tensors in one call: index, split, image cache, labels (`load_split_data`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .folder import load_image_folder
from .ham10000 import load_ham10000
from .images import cache_path, cached_images
from .labels import BINARY_CLASSES, DX_CLASSES, binary_label
from .melanoma import (FOLDER_FRACTIONS, FOLDER_SPLITS, describe_melanoma, folder_split, resolve_melanoma_source,
                       subsample_folder)
from .source import DataSource, data_home
from .splits import SPLITS, dermamnist_split, image_level_split, load_or_make_split, subsample_lesions
from .tensors import ImageData, default_device

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


def lesion_index(root: str | Path, max_images: int | None = None, seed: int = 0) -> pd.DataFrame:
    """HAM10000's image index under root, cut to at most max_images images of whole lesions (None: all)."""
    return subsample_lesions(load_ham10000(root), max_images, seed=seed)


def load_split_data(root: str | Path, image_size: int, split: str = "lesion_disjoint", task: str = "dx", seed: int = 0,
                    max_images: int | None = None, policy: str = "center_crop", split_csv: str | Path | None = None,
                    device: str | torch.device | None = None, cache_dir: str | Path | None = None,
                    name: str = "ham10000", progress: bool = True) -> SplitData:
    """Load, split and cache a HAM10000-layout folder; each split's batches are built on device."""
    index = lesion_index(root, max_images, seed)
    index = index.assign(split=assign_split(index, split, seed, name, split_csv).to_numpy())
    images = cached_images(index["path"].tolist(), image_size, cache_dir or data_home() / "cache", policy,
                           name=f"{name}-{len(index)}img", progress=progress)
    labels, classes = labels_for(index, task)
    return SplitData(index, classes, image_size, split, split_parts(images, labels, index["split"], SPLITS, device))


def split_parts(images: np.ndarray, labels: np.ndarray, split: pd.Series, names: tuple[str, ...],
                device: str | torch.device | None = None) -> dict[str, ImageData]:
    """Each named split as ImageData for device: its images on device when they fit, else in pinned host memory."""
    device = device or default_device()
    where = {part: np.flatnonzero(split.to_numpy() == part) for part in names}
    return {part: ImageData.from_numpy(images[rows], labels[rows], device) for part, rows in where.items()}


def load_folder_split_data(root: str | Path, image_size: int, seed: int = 0, max_images: int | None = None,
                           fractions: tuple[float, float, float] = FOLDER_FRACTIONS, policy: str = "center_crop",
                           device: str | torch.device | None = None, cache_dir: str | Path | None = None,
                           name: str = "melanoma10k", progress: bool = True) -> SplitData:
    """Load a {train,test}/{benign,malignant} folder: its train folder split by image, its test folder as 'official_test'.

    Such a folder has no lesion ids, so each image is its own group (`lesion_id` is its relpath) and
    bootstrap intervals resample images.
    """
    index = subsample_folder(load_image_folder(root), max_images, seed=seed)
    index = index.assign(lesion_id=index["relpath"], split=folder_split(index, fractions, seed).to_numpy())
    images = cached_images(index["path"].tolist(), image_size, cache_dir or data_home() / "cache", policy,
                           name=f"{name}-{len(index)}img", progress=progress)
    labels = index["label"].cat.codes.to_numpy().astype(np.int64)
    parts = split_parts(images, labels, index["split"], FOLDER_SPLITS, device)
    return SplitData(index, list(index["label"].cat.categories), image_size, "image_level_90_5_5+official_test", parts)


@dataclass(frozen=True)
class MelanomaData:
    """melanoma10k (or its synthetic stand-in) split as the reference notebook did, and where it came from."""

    source: DataSource
    data: SplitData

    @property
    def synthetic(self) -> bool:
        """True for the synthetic stand-in."""
        return self.source.synthetic

    @property
    def description(self) -> str:
        """The banner line of this data (loud for the synthetic stand-in)."""
        return describe_melanoma(self.source, len(self.data.index))


def load_melanoma10k(melanoma_dir: str | Path | None, image_size: int, seed: int = 0, max_images: int | None = None,
                     progress: bool = True) -> MelanomaData:
    """Find melanoma10k (melanoma_dir, $MELANOMA10K_DIR, data/melanoma10k/, else the stand-in) and load its split."""
    source = resolve_melanoma_source(melanoma_dir)
    name = "synthetic-melanoma10k" if source.synthetic else source.kind
    data = load_folder_split_data(source.root, image_size, seed=seed, max_images=max_images, name=name, progress=progress)
    return MelanomaData(source, data)


@dataclass(frozen=True)
class CacheTiming:
    """What two calls of `cached_images` on the same sources cost: the array, its file, and the two wall times."""

    images: np.ndarray
    path: Path
    existed: bool
    first_s: float
    second_s: float
    reused: bool

    def report(self) -> str:
        """The timings as printable lines (file, shape and size, what each call did)."""
        first = ("the file was already there: mapped" if self.existed
                 else f"built: {len(self.images):,} images decoded and resized")
        return "\n".join([f"cache file: data/cache/{self.path.name}",
                          f"shape {self.images.shape}, dtype {self.images.dtype}, {self.images.nbytes / 2**20:,.1f} MiB",
                          f"first call:  {self.first_s:6.2f} s ({first})",
                          f"second call: {self.second_s:6.2f} s (same file reused: {self.reused})"])


def time_cache(paths: Sequence[str | Path], size: int, name: str, cache_dir: str | Path | None = None,
               policy: str = "center_crop") -> CacheTiming:
    """Call `cached_images` twice on the same sources (cache_dir: data/cache) and time each call."""
    cache_dir = Path(cache_dir) if cache_dir is not None else data_home() / "cache"
    target = cache_path(paths, size, cache_dir, policy, name)
    existed = target.exists()
    tick = time.perf_counter()
    images = cached_images(paths, size, cache_dir, policy, name=name, progress=False)
    first = time.perf_counter() - tick
    tick = time.perf_counter()
    again = cached_images(paths, size, cache_dir, policy, name=name, progress=False)
    second = time.perf_counter() - tick
    return CacheTiming(images, target, existed, first, second, Path(again.filename) == Path(images.filename))
