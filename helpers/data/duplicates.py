"""Duplicate images: byte-identical files (SHA-256) and near-duplicates by a 256-bit difference hash (dHash).

dHash: the image in grayscale, resized to 17 x 16 pixels; each bit says whether a pixel is brighter
than its right-hand neighbour (16 x 16 = 256 bits). Re-encoded, rescaled or slightly recoloured copies
of one photo keep almost all bits; the data README counts two images within Hamming distance 10 as
near-duplicates. Distances between many hashes are one matrix product on the unpacked bits.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from ..core.errors import DataError

HASH_BITS = 256
NEAR_DUPLICATE_DISTANCE = 10


@dataclass(frozen=True)
class ImageHashes:
    """Per image: the SHA-256 of its file and its dHash packed into 32 bytes."""

    digests: np.ndarray
    dhashes: np.ndarray

    def __len__(self) -> int:
        return len(self.digests)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dhash(image: Image.Image) -> np.ndarray:
    """The 256-bit difference hash of an image as a (256,) bool array."""
    gray = np.asarray(image.convert("L").resize((17, 16), Image.Resampling.LANCZOS), dtype=np.int16)
    return (gray[:, 1:] > gray[:, :-1]).ravel()


def _hash_file(path: str | Path) -> tuple[str, np.ndarray]:
    try:
        with Image.open(path) as image:  # fully decoded: JPEG draft scaling would shift bits of small images
            bits = dhash(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"cannot decode image {path}: {err}") from err
    return file_digest(path), np.packbits(bits)


def hash_images(paths: Sequence[str | Path], workers: int | None = None, progress: bool = True) -> ImageHashes:
    """File digests and packed dHashes of the images, computed in parallel threads."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = list(tqdm(pool.map(_hash_file, paths), total=len(paths), desc="hash images", disable=not progress))
    digests = np.array([digest for digest, _ in results], dtype=object)
    packed = np.stack([bits for _, bits in results]) if results else np.zeros((0, HASH_BITS // 8), np.uint8)
    return ImageHashes(digests, packed)


def nearest(query: np.ndarray, reference: np.ndarray, exclude_same_index: bool = False,
            chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each packed query hash, the Hamming distance to its nearest reference hash and that hash's index.

    With exclude_same_index (query and reference the same array), an image is not its own neighbour.
    """
    if len(reference) == 0:
        raise ValueError("nearest needs at least one reference hash")
    ref_bits = np.unpackbits(reference, axis=1).astype(np.float32)
    ref_ones = ref_bits.sum(axis=1)
    distance = np.empty(len(query), np.int64)
    index = np.empty(len(query), np.int64)
    for start in range(0, len(query), chunk):
        bits = np.unpackbits(query[start:start + chunk], axis=1).astype(np.float32)
        # |a xor b| = |a| + |b| - 2 a.b, exact in float32 for 256 bits
        d = bits.sum(axis=1)[:, None] + ref_ones[None, :] - 2 * bits @ ref_bits.T
        if exclude_same_index:
            rows = np.arange(len(bits))
            d[rows, start + rows] = np.inf
        index[start:start + len(bits)] = d.argmin(axis=1)
        distance[start:start + len(bits)] = d[np.arange(len(bits)), index[start:start + len(bits)]]
    return distance, index


def identical_groups(digests: Sequence[str]) -> list[np.ndarray]:
    """Indices of each group of two or more byte-identical files."""
    codes, counts = np.unique(np.asarray(digests, dtype=object), return_inverse=True, return_counts=True)[1:]
    return [np.flatnonzero(codes == c) for c in np.flatnonzero(counts > 1)]


def duplicates_in_reference(hashes: ImageHashes, query: np.ndarray, reference: np.ndarray,
                            max_distance: int = NEAR_DUPLICATE_DISTANCE) -> pd.DataFrame:
    """For each query image (boolean mask or indices): identical copy in reference?, nearest distance, near-duplicate?"""
    query, reference = _indices(query, len(hashes)), _indices(reference, len(hashes))
    distance, nearest_at = nearest(hashes.dhashes[query], hashes.dhashes[reference])
    identical = np.isin(hashes.digests[query], hashes.digests[reference])
    return pd.DataFrame({"image": query, "identical": identical, "distance": distance,
                         "nearest": reference[nearest_at], "near_duplicate": identical | (distance <= max_distance)})


def _indices(selection: np.ndarray, n: int) -> np.ndarray:
    selection = np.asarray(selection)
    if selection.dtype == bool:
        if len(selection) != n:
            raise ValueError(f"a boolean mask must have one entry per image ({n}), got {len(selection)}")
        return np.flatnonzero(selection)
    return selection.astype(np.int64)


def duplicate_summary(hashes: ImageHashes, split: pd.Series, reference: str = "train",
                      max_distance: int = NEAR_DUPLICATE_DISTANCE) -> pd.DataFrame:
    """Per split other than reference: images, those with a byte-identical copy in reference, those with a near-duplicate."""
    split = pd.Series(np.asarray(split))
    in_reference = (split == reference).to_numpy()
    rows = {}
    for name in [s for s in split.unique() if s != reference]:
        found = duplicates_in_reference(hashes, (split == name).to_numpy(), in_reference, max_distance)
        rows[name] = {"images": len(found), f"byte-identical in {reference}": int(found["identical"].sum()),
                      f"near-duplicate in {reference} (dHash ≤ {max_distance})": int(found["near_duplicate"].sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


@dataclass(frozen=True)
class DuplicateReport:
    """A data set's duplicates: byte-identical groups, near-duplicates, and per evaluation split those in reference."""

    hashes: ImageHashes
    identical_groups: int
    identical_images: int
    identical_groups_across_folders: int
    images_with_near_duplicate: int
    table: pd.DataFrame  # duplicate_summary: per split other than reference
    clean: dict[str, np.ndarray]  # per split other than reference: True where no (near-)copy is in reference
    max_distance: int = NEAR_DUPLICATE_DISTANCE
    folders: tuple[str, ...] = ()

    def report(self) -> str:
        """Two printable lines: the byte-identical groups and the images with a near-duplicate."""
        folders = " and ".join(f"{name}/" for name in self.folders) or "the"
        return (f"{self.identical_groups} groups of byte-identical files ({self.identical_images} images), "
                f"{self.identical_groups_across_folders} of them across the {folders} folders\n"
                f"{self.images_with_near_duplicate} of {len(self.hashes):,} images have a near-duplicate "
                f"(dHash distance ≤ {self.max_distance}) elsewhere in the set")

    def to_dict(self) -> dict:
        """The counts and the per-split table as plain values, for the metrics JSON."""
        return {"byte_identical_groups": self.identical_groups,
                "byte_identical_groups_across_folders": self.identical_groups_across_folders,
                "images_with_near_duplicate": self.images_with_near_duplicate, "max_distance": self.max_distance,
                "per_split": self.table.to_dict(orient="index")}


def duplicate_report(index: pd.DataFrame, reference: str = "train", folder_column: str = "folder_split",
                     max_distance: int = NEAR_DUPLICATE_DISTANCE, progress: bool = True) -> DuplicateReport:
    """Hash every image of index (columns path, split and folder_column) and count its duplicates."""
    missing = [column for column in ("path", "split", folder_column) if column not in index]
    if missing:
        raise ValueError(f"duplicate_report: index lacks the column(s) {', '.join(missing)}")
    index = index.reset_index(drop=True)
    hashes = hash_images(index["path"].tolist(), progress=progress)
    groups = identical_groups(hashes.digests)
    spanning = sum(index[folder_column].iloc[g].nunique() > 1 for g in groups)
    distance, _ = nearest(hashes.dhashes, hashes.dhashes, exclude_same_index=True)
    split = index["split"].to_numpy()
    in_reference = split == reference
    clean = {name: ~duplicates_in_reference(hashes, split == name, in_reference, max_distance)["near_duplicate"].to_numpy()
             for name in pd.unique(split) if name != reference}
    return DuplicateReport(hashes, len(groups), int(sum(map(len, groups))), int(spanning),
                           int((distance <= max_distance).sum()),
                           duplicate_summary(hashes, index["split"], reference, max_distance), clean, max_distance,
                           tuple(sorted(map(str, index[folder_column].unique()))))
