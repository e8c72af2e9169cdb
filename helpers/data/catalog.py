"""The data sets `python -m helpers.data download` fetches, each from where and into which folder by default:
HAM10000 (Harvard Dataverse, or Kaggle), melanoma10k (Kaggle) and the official DermaMNIST split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .dataverse import download_dataverse
from .dermamnist import download_dermamnist_split
from .kaggle import download_kaggle
from .melanoma10k import download_melanoma10k
from .source import DERMAMNIST_FILE, data_home

DATASETS: tuple[str, ...] = ("ham10000", "melanoma10k", "dermamnist-split")
DEFAULT_TARGETS: dict[str, str] = {"ham10000": "ham10000", "melanoma10k": "melanoma10k",
                                   "dermamnist-split": DERMAMNIST_FILE}


def download_dataset(dataset: str, target: str | Path | None = None, source: str | None = None,
                     ham10000_dir: str | Path | None = None, split_info_url: str | None = None) -> Path:
    """Download one of DATASETS into target (default data/ham10000, data/melanoma10k, data/dermamnist_split.csv)."""
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
    if source is not None:
        raise ValueError(f"source {source!r}: the DermaMNIST split has no source choice (use split_info_url)")
    return download_dermamnist_split(target, ham10000_dir=ham10000_dir, url=split_info_url)


def download_ham10000(target: Path, source: str = "dataverse", **kwargs: Any) -> Path:
    """Download HAM10000 into target from source 'dataverse' or 'kaggle'; return target."""
    downloaders: dict[str, Callable[..., Path]] = {"dataverse": download_dataverse, "kaggle": download_kaggle}
    if source not in downloaders:
        raise ValueError(f"source must be one of {', '.join(map(repr, downloaders))}; got {source!r}")
    return downloaders[source](Path(target), **kwargs)
