"""The official DermaMNIST split as HAM10000 image ids: Abhishek et al.'s split-info CSV joined with HAM10000's
metadata (lesion_id, dx), checked against the published images per split and class, written atomically.
(Reading the written file into a split: `helpers.data.splits.dermamnist_split`.)"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..core.errors import DataError
from ..core.io import atomic_open
from .fetch import TIMEOUT_S, DownloadError, fetch_url
from .ham10000 import find_metadata, read_metadata
from .labels import DX_CLASSES
from .source import HAM10000_ENV, data_home, resolve_path
from .splits import SPLITS

# Abhishek et al., "Investigating the Quality of DermaMNIST and Fitzpatrick17k Dermatological Image Datasets"
# (github.com/kakumarabhishek/Corrected-Skin-Image-Datasets, Apache-2.0): DermaMNIST's split and npz index per ISIC id.
DERMAMNIST_INFO_URL = ("https://raw.githubusercontent.com/kakumarabhishek/Corrected-Skin-Image-Datasets/main/"
                       "DermaMNIST/DermaMNIST_Analysis/dermamnist_split_info.csv")
DERMAMNIST_INFO_ENV = "DERMAMNIST_SPLIT_INFO_URL"
DERMAMNIST_COLUMNS: tuple[str, ...] = ("image_id", "lesion_id", "dx", "dermamnist_split", "dermamnist_index")

# Images per split and class of the official DermaMNIST split (Yang et al., "MedMNIST v2", Sci. Data 10, 41, 2023).
# MedMNIST publishes the split sizes (medmnist.INFO["dermamnist"]["n_samples"]: train 7007, val 1003, test 2005;
# label k is DX_CLASSES[k]); the per-class numbers are that split's images counted by HAM10000 dx.
DERMAMNIST_COUNTS: dict[str, dict[str, int]] = {
    "train": {"akiec": 228, "bcc": 359, "bkl": 769, "df": 80, "mel": 779, "nv": 4693, "vasc": 99},
    "val": {"akiec": 33, "bcc": 52, "bkl": 110, "df": 12, "mel": 111, "nv": 671, "vasc": 14},
    "test": {"akiec": 66, "bcc": 103, "bkl": 220, "df": 23, "mel": 223, "nv": 1341, "vasc": 29},
}

# Column names accepted in the split-info CSV, after lower-casing and turning other characters into "_".
SPLIT_INFO_COLUMNS: dict[str, tuple[str, ...]] = {
    "image_id": ("image_id", "image", "isic_id", "image_name", "imageid"),
    "split": ("split", "dermamnist_split", "partition", "subset", "fold"),
    "index": ("index", "dermamnist_index", "idx", "npz_index"),
    "label": ("label", "dx", "diagnosis", "class"),
}
SPLIT_ALIASES = {"training": "train", "valid": "val", "validation": "val", "testing": "test"}


def download_dermamnist_split(
    target: Path,
    ham10000_dir: str | Path | None = None,
    url: str | None = None,
    expected: Mapping[str, Mapping[str, int]] | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Write DermaMNIST's official split as HAM10000 ids (image_id, lesion_id, dx, dermamnist_split, dermamnist_index).

    The split comes from url (default $DERMAMNIST_SPLIT_INFO_URL, else Abhishek et al.'s CSV on GitHub), lesion_id
    and dx from the HAM10000 metadata; the images per split and class must equal expected (default DERMAMNIST_COUNTS).
    Nothing is written unless every check passes, and then atomically.
    """
    url = url or os.environ.get(DERMAMNIST_INFO_ENV) or DERMAMNIST_INFO_URL
    metadata_csv = find_metadata(_ham10000_root(ham10000_dir))
    with tempfile.TemporaryDirectory(prefix="dermamnist-split-info-") as folder:
        downloaded = fetch_url(url, Path(folder) / "dermamnist_split_info.csv", progress=progress, timeout=timeout)
        info = read_split_info(downloaded, url)
    table = join_split_info(info, read_metadata(metadata_csv), url, metadata_csv)
    check_split_counts(table, DERMAMNIST_COUNTS if expected is None else expected, url)
    with atomic_open(target, "w", newline="") as handle:
        table.to_csv(handle, index=False)
    return Path(target)


def _ham10000_root(ham10000_dir: str | Path | None) -> Path:
    """The HAM10000 folder: ham10000_dir, else $HAM10000_DIR, else data/ham10000/ (never the synthetic set)."""
    default = data_home() / "ham10000"
    found = resolve_path(ham10000_dir, HAM10000_ENV, default, "ham10000_dir (--ham10000-dir)")
    if found is None:
        raise DataError(f"the DermaMNIST split takes lesion_id and dx from HAM10000's metadata: pass --ham10000-dir, "
                        f"set ${HAM10000_ENV}, or download HAM10000 into {default} (python -m helpers.data download)")
    return found[0]


def read_split_info(path: str | Path, source: str | None = None) -> pd.DataFrame:
    """Read a DermaMNIST split-info CSV into columns image_id, split (train/val/test), index and label (when given)."""
    source = source or str(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DownloadError(f"{source} is not a readable CSV: {err}") from err
    found = {re.sub(r"[^a-z0-9]+", "_", str(c).strip().lower()).strip("_"): c for c in raw.columns}
    names = {role: next((found[alias] for alias in aliases if alias in found), None)
             for role, aliases in SPLIT_INFO_COLUMNS.items()}
    for role in ("image_id", "split"):
        if names[role] is None:
            raise DownloadError(f"{source} has no {role} column (looked for {', '.join(SPLIT_INFO_COLUMNS[role])}); "
                                f"its columns: {', '.join(map(str, raw.columns))}")
    info = pd.DataFrame({role: raw[column].str.strip() for role, column in names.items() if column is not None})
    info["image_id"] = info["image_id"].str.replace(r"\.(jpe?g|png)$", "", regex=True, flags=re.IGNORECASE)
    _check_split_info(info, names, source)
    return info


def _check_split_info(info: pd.DataFrame, names: dict[str, str | None], source: str) -> None:
    """Normalise split names in place and refuse empty or duplicated ids, unknown splits and non-integer indices."""
    for role in ("image_id", "split"):
        empty = info.index[info[role] == ""]
        if len(empty):
            raise DownloadError(f"{source}: column {names[role]!r} is empty in {len(empty)} row(s), "
                                f"first at row {empty[0] + 2}")
    duplicated = info["image_id"][info["image_id"].duplicated()].unique()
    if len(duplicated):
        raise DownloadError(f"{source}: {len(duplicated)} duplicated image id(s), e.g. {', '.join(duplicated[:5])}")
    info["split"] = info["split"].str.lower().replace(SPLIT_ALIASES)
    unknown = sorted(set(info["split"]) - set(SPLITS))
    if unknown:
        raise DownloadError(f"{source}: unknown value(s) {', '.join(map(repr, unknown))} in column {names['split']!r}; "
                            f"expected {', '.join(SPLITS)}")
    if "index" in info and not info["index"].str.fullmatch(r"\d+").all():
        row = info.index[~info["index"].str.fullmatch(r"\d+")][0]
        raise DownloadError(f"{source}: column {names['index']!r} holds a non-integer {info.loc[row, 'index']!r} "
                            f"at row {row + 2}")


def join_split_info(info: pd.DataFrame, metadata: pd.DataFrame, source: str, metadata_csv: str | Path) -> pd.DataFrame:
    """The split file's rows: info's ids with HAM10000's lesion_id and dx, ordered train, val, test by index."""
    meta = metadata.assign(dx=metadata["dx"].astype(str)).set_index("image_id")
    unknown = info.loc[~info["image_id"].isin(meta.index), "image_id"].tolist()
    if unknown:
        raise DownloadError(f"{len(unknown)} image id(s) of {source} are not in {metadata_csv}, "
                            f"e.g. {', '.join(unknown[:5])}; is that the complete HAM10000 metadata?")
    no_index = pd.Series(pd.NA, index=info.index, dtype="Int64")
    table = pd.DataFrame({
        "image_id": info["image_id"],
        "lesion_id": info["image_id"].map(meta["lesion_id"]),
        "dx": info["image_id"].map(meta["dx"]),
        "dermamnist_split": info["split"],
        "dermamnist_index": info["index"].astype(int) if "index" in info else no_index,
    })
    if "label" in info:
        _check_labels(info["label"], table, source)
    order = table["dermamnist_split"].map({name: i for i, name in enumerate(SPLITS)})
    table = table.assign(_order=order).sort_values(["_order", "dermamnist_index"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)[list(DERMAMNIST_COLUMNS)]


def _check_labels(labels: pd.Series, table: pd.DataFrame, source: str) -> None:
    """A label column (MedMNIST's 0..6 or dx codes) must agree with HAM10000's dx."""
    names = labels.map(lambda v: DX_CLASSES[int(v)] if v.isdigit() and int(v) < len(DX_CLASSES) else v.lower())
    wrong = table.index[names != table["dx"]]
    if len(wrong):
        first = wrong[0]
        raise DownloadError(f"{source}: {len(wrong)} label(s) disagree with HAM10000's dx, e.g. "
                            f"{table.loc[first, 'image_id']} is {labels[first]!r} there "
                            f"and {table.loc[first, 'dx']!r} in HAM10000")


def check_split_counts(table: pd.DataFrame, expected: Mapping[str, Mapping[str, int]], source: str) -> None:
    """DownloadError naming the first split and class whose number of images differs from expected."""
    counts = table.groupby(["dermamnist_split", "dx"]).size().to_dict()
    for split in dict.fromkeys([*expected, *sorted(set(table["dermamnist_split"]))]):
        wanted = expected.get(split, {})
        for dx in dict.fromkeys([*DX_CLASSES, *wanted]):
            got, want = counts.get((split, dx), 0), wanted.get(dx, 0)
            if got != want:
                raise DownloadError(f"{source}: split {split!r}, class {dx!r} has {got} image(s), expected {want}; "
                                    "the split file was not written")
