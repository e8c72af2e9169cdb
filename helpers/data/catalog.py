"""The data sets `python -m helpers.data download` fetches, each from where and into which folder by default:
HAM10000 (Harvard Dataverse, or Kaggle), melanoma10k (Kaggle), the official DermaMNIST split and the ISIC 2018
Task 3 test set (the ISIC challenge archive)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .dataverse import download_dataverse
from .dermamnist import download_dermamnist_split
from .isic2018 import ISIC2018_URL_ENV, download_isic2018_test
from .kaggle import download_kaggle
from .melanoma10k import download_melanoma10k
from .source import DERMAMNIST_FILE, ISIC2018_TEST_FOLDER, data_home

DATASETS: tuple[str, ...] = ("ham10000", "melanoma10k", "dermamnist-split", "isic2018-test")
DEFAULT_TARGETS: dict[str, str] = {"ham10000": "ham10000", "melanoma10k": "melanoma10k",
                                   "dermamnist-split": DERMAMNIST_FILE, "isic2018-test": ISIC2018_TEST_FOLDER}


def download_dataset(dataset: str, target: str | Path | None = None, source: str | None = None,
                     ham10000_dir: str | Path | None = None, split_info_url: str | None = None) -> Path:
    """Download one of DATASETS into target (default: data/ + DEFAULT_TARGETS[dataset], e.g. data/isic2018_test)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    target = Path(target) if target is not None else data_home() / DEFAULT_TARGETS[dataset]
    if dataset != "dermamnist-split" and (ham10000_dir is not None or split_info_url is not None):
        raise ValueError("ham10000_dir (--ham10000-dir) and split_info_url (--split-info-url) "
                         "apply to dataset 'dermamnist-split' only")
    if dataset == "ham10000":
        return download_ham10000(target, source=source or "dataverse")
    if dataset == "melanoma10k":
        if source not in (None, "kaggle"):
            raise ValueError(f"source {source!r}: melanoma10k comes from Kaggle only (source 'kaggle')")
        return download_melanoma10k(target)
    if dataset == "isic2018-test":
        if source is not None:
            raise ValueError(f"source {source!r}: the ISIC 2018 test set comes from the ISIC archive only "
                             f"(its URL: ${ISIC2018_URL_ENV})")
        return download_isic2018_test(target)
    if source is not None:
        raise ValueError(f"source {source!r}: the DermaMNIST split has no source choice (use split_info_url)")
    return download_dermamnist_split(target, ham10000_dir=ham10000_dir, url=split_info_url)


def download_ham10000(target: Path, source: str = "dataverse", **kwargs: Any) -> Path:
    """Download HAM10000 into target from source 'dataverse' or 'kaggle'; return target."""
    downloaders: dict[str, Callable[..., Path]] = {"dataverse": download_dataverse, "kaggle": download_kaggle}
    if source not in downloaders:
        raise ValueError(f"source must be one of {', '.join(map(repr, downloaders))}; got {source!r}")
    return downloaders[source](Path(target), **kwargs)
