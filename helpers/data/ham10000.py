"""Load and validate HAM10000 from a folder: metadata CSV plus images found by image_id."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ..core.errors import DataError
from .images import open_rgb
from .labels import DX_CLASSES

METADATA_NAME = "HAM10000_metadata.csv"
IMAGE_FOLDERS: tuple[str, ...] = ("HAM10000_images_part_1", "HAM10000_images_part_2")  # as published
REQUIRED_COLUMNS: tuple[str, ...] = ("lesion_id", "image_id", "dx")
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})


def find_metadata(root: str | Path) -> Path:
    """Return the one HAM10000 metadata CSV found anywhere under root."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder")
    found = sorted(p for p in root.rglob(METADATA_NAME) if p.is_file())
    if not found:
        raise DataError(f"no metadata file {METADATA_NAME} anywhere under {root}")
    if len(found) > 1:
        raise DataError(f"several metadata files under {root}: {', '.join(map(str, found))}; keep one")
    return found[0]


def read_metadata(csv_path: str | Path) -> pd.DataFrame:
    """Read and validate a HAM10000 metadata CSV into a typed DataFrame."""
    csv_path = Path(csv_path)
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{csv_path} is not a readable CSV: {err}") from err
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{csv_path} lacks the column(s) {', '.join(missing)}; found {', '.join(table.columns)}")
    if table.empty:
        raise DataError(f"{csv_path} has a header but no rows: it lists no images")
    table = table.apply(lambda col: col.str.strip())
    _check_values(table, csv_path)
    return _typed(table)


def _check_values(table: pd.DataFrame, csv_path: Path) -> None:
    for column in REQUIRED_COLUMNS:
        empty = table.index[table[column] == ""]
        if len(empty):
            raise DataError(f"{csv_path}: column {column!r} is empty in {len(empty)} row(s), first at row {empty[0] + 2}")
    unknown = sorted(set(table["dx"]) - set(DX_CLASSES))
    if unknown:
        row = table.index[table["dx"].isin(unknown)][0] + 2
        raise DataError(
            f"{csv_path}: unknown dx value(s) {', '.join(map(repr, unknown))} (first at row {row}); "
            f"expected one of {', '.join(DX_CLASSES)}"
        )
    duplicated = table["image_id"][table["image_id"].duplicated()].unique()
    if len(duplicated):
        raise DataError(f"{csv_path}: {len(duplicated)} duplicated image_id(s), e.g. {', '.join(duplicated[:5])}")


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["dx"] = pd.Categorical(table["dx"], categories=list(DX_CLASSES))
    if "age" in table:
        table["age"] = pd.to_numeric(table["age"].replace("", None), errors="coerce").astype("Float64")
    for column in ("dx_type", "sex", "localization", "dataset"):
        if column in table:
            table[column] = table[column].replace("", "unknown").astype("category")
    return table


def find_images(root: str | Path) -> dict[str, Path]:
    """Map image_id (file stem) to path for every image file anywhere under root."""
    images: dict[str, Path] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES and not stem.endswith("_segmentation"):
                images.setdefault(stem, Path(dirpath) / name)
    return images


def load_ham10000(root: str | Path, verify_images: bool = False, progress: bool = True) -> pd.DataFrame:
    """Return one row per image (path + metadata) for the HAM10000-layout folder root."""
    root = Path(root).resolve()
    table = read_metadata(find_metadata(root))
    images = find_images(root)
    paths = table["image_id"].map(images)
    absent = table.loc[paths.isna(), "image_id"].tolist()
    if absent:
        raise DataError(
            f"{len(absent)} of {len(table)} images listed in the metadata are not under {root}: "
            f"{', '.join(absent[:5])}{' …' if len(absent) > 5 else ''}"
        )
    table.insert(2, "path", paths.map(str))
    if verify_images:
        verify_decodable(table["path"].tolist(), progress=progress)
    return table.reset_index(drop=True)


def undecodable(paths: list[str], progress: bool = True) -> list[str]:
    """Fully decode every image in parallel; return one error message per file that fails."""
    def problem(path: str) -> str | None:
        try:
            open_rgb(path)
        except DataError as err:
            return str(err)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(tqdm(pool.map(problem, paths, chunksize=64), total=len(paths),
                            desc="verify images", disable=not progress))
    return [r for r in results if r]


def verify_decodable(paths: list[str], progress: bool = True) -> None:
    """Raise DataError naming the image files that do not decode."""
    errors = undecodable(paths, progress)
    if errors:
        raise DataError(f"{len(errors)} image(s) do not decode: " + "; ".join(errors[:5]))


def check_ham10000(root: str | Path, progress: bool = True) -> tuple[pd.DataFrame | None, list[str], list[str]]:
    """Validate a folder completely: (index or None, problems, notes on tolerated quirks)."""
    try:
        table = read_metadata(find_metadata(root))
    except DataError as err:
        return None, [str(err)], []
    try:
        index = load_ham10000(root)
        problems = []
    except DataError as err:
        index, problems = None, [str(err)]
    present = table["image_id"].map(find_images(root)).dropna().map(str).tolist()
    problems += undecodable(present, progress)
    notes = []
    if "age" in table and table["age"].isna().any():
        notes.append(f"{int(table['age'].isna().sum())} empty age(s), kept as missing")
    if "sex" in table and (table["sex"] == "unknown").any():
        notes.append(f"{int((table['sex'] == 'unknown').sum())} row(s) with sex 'unknown'")
    return (index if not problems else None), problems, notes


def index_counts(index: pd.DataFrame) -> dict:
    """Counts of images, lesions and images per class of a loaded index (what `python -m helpers.data check` prints)."""
    return {
        "images": len(index),
        "lesions": int(index["lesion_id"].nunique()),
        "per_class": {dx: int(n) for dx, n in index["dx"].value_counts().reindex(DX_CLASSES).items()},
    }
