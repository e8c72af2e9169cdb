"""Kaggle's "Melanoma Skin Cancer Dataset of 10000 Images" (melanoma10k, the reference notebook's binary set),
downloaded with opendatasets into the project layout target/{train,test}/{benign,malignant}/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .fetch import DownloadError
from .ham10000 import IMAGE_SUFFIXES
from .kaggle import KAGGLE_MARKER, KAGGLE_TOKEN_HELP, run_opendatasets
from .labels import BINARY_CLASSES

MELANOMA10K_DATASET = "hasnainjaved/melanoma-skin-cancer-dataset-of-10000-images"
MELANOMA10K_FOLDERS: tuple[str, ...] = ("train", "test")  # its top-level folders, each with benign/ and malignant/


def download_melanoma10k(target: Path, dataset: str = MELANOMA10K_DATASET) -> Path:
    """Fetch melanoma10k from Kaggle with opendatasets into target/{train,test}/{benign,malignant}/; return target.

    The archive is unpacked into a hidden staging folder beside target and the final tree is built in
    another one, renamed to target only when complete: an interrupted run leaves target as it was.
    """
    target = Path(target).resolve()
    if _kaggle_complete(target, dataset) and _folder_layout_complete(target):
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DownloadError(f"{target} is not empty and holds no complete download of the Kaggle dataset {dataset}; "
                            "refusing to replace it: remove it or choose another target")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.kaggle-staging"
    build = target.parent / f".{target.name}.build.tmp"
    for leftover in (staging, build):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        staging.mkdir()
        run_opendatasets(dataset, staging, KAGGLE_TOKEN_HELP)
        _arrange_folder_layout(staging, build, dataset)
        (build / KAGGLE_MARKER).write_text(dataset + "\n")
        if target.exists():
            target.rmdir()
        os.replace(build, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(build, ignore_errors=True)
    return target


def _kaggle_complete(target: Path, dataset: str) -> bool:
    marker = target / KAGGLE_MARKER
    return marker.is_file() and marker.read_text().strip() == dataset


def _folder_layout_complete(root: Path) -> bool:
    return all(any((root / split / label).glob("*")) for split in MELANOMA10K_FOLDERS for label in BINARY_CLASSES)


def _arrange_folder_layout(staging: Path, build: Path, dataset: str) -> None:
    """Move the images of <any nesting>/{train,test}/{benign,malignant}/ into build/{train,test}/{benign,malignant}/."""
    for split in MELANOMA10K_FOLDERS:
        source = _find_split_folder(staging, split, dataset)
        for label in BINARY_CLASSES:
            folder = _child_folder(source, label)
            images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise DownloadError(f"the Kaggle dataset {dataset} has no images in {folder.relative_to(staging)}")
            dest = build / split / label
            dest.mkdir(parents=True)
            for image in images:
                os.replace(image, dest / image.name)


def _find_split_folder(staging: Path, split: str, dataset: str) -> Path:
    """The shallowest folder named split (any case) holding benign/ and malignant/, however deep the archive nests it."""
    candidates = [p for p in staging.rglob("*") if p.is_dir() and p.name.lower() == split
                  and all(_child_folder(p, label) is not None for label in BINARY_CLASSES)]
    if not candidates:
        folders = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                         if p.is_dir() and len(p.relative_to(staging).parts) <= 3)
        raise DownloadError(f"the Kaggle dataset {dataset} holds no {split}/ folder with "
                            f"{' and '.join(f'{c}/' for c in BINARY_CLASSES)} inside; its folders: "
                            f"{', '.join(folders[:12]) or 'none'}")
    return min(candidates, key=lambda p: (len(p.parts), p.as_posix()))


def _child_folder(folder: Path, name: str) -> Path | None:
    return next((p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower() == name), None)
