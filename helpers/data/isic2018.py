"""The official ISIC 2018 Task 3 test set from the ISIC challenge archive: 1,512 dermoscopic images and their ground
truth (one-hot over MEL, NV, BCC, AKIEC, BKL, DF, VASC), laid out as target/images/ISIC_xxxxxxx.jpg and
target/labels.csv (image_id, dx in HAM10000's codes). An external test set: to report on, never to choose with.

No published checksum of the two archives was available offline (the public downloaders and dataset catalogues
searched pin none; the ISIC challenge site could not be consulted), so none is invented here. What can be checked is
checked: each archive is a readable zip (every member's CRC), the images number ISIC2018_TEST_IMAGES, the ground truth
has one row per image with the same ids, and every row is one-hot. The sha256 of each archive as downloaded is recorded
in target/checksums.json, so that another copy can be compared with this one.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from pathlib import Path

import pandas as pd

from ..core.io import atomic_open, write_json
from .archives import extract_archive
from .fetch import TIMEOUT_S, DownloadError, fetch_url, file_digest
from .source import ISIC2018_TEST_IMAGES_FOLDER, ISIC2018_TEST_LABELS

ISIC2018_URL = "https://isic-challenge-data.s3.amazonaws.com/2018"
ISIC2018_URL_ENV = "ISIC2018_TEST_BASE_URL"
INPUT_ARCHIVE = "ISIC2018_Task3_Test_Input.zip"
GROUND_TRUTH_ARCHIVE = "ISIC2018_Task3_Test_GroundTruth.zip"
ARCHIVES: tuple[str, ...] = (GROUND_TRUTH_ARCHIVE, INPUT_ARCHIVE)  # the small one first: a bad URL fails fast
ISIC2018_TEST_IMAGES = 1512  # the official Task 3 test set (Codella et al., arXiv:1902.03368, 2019)
CHECKSUMS_FILE = "checksums.json"
# The ground truth's one-hot columns and HAM10000's code for each.
GROUND_TRUTH_CLASSES: dict[str, str] = {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AKIEC": "akiec", "BKL": "bkl",
                                        "DF": "df", "VASC": "vasc"}
IMAGE_NAME = re.compile(r"ISIC_(\d{7})\.jpe?g", re.IGNORECASE)
IMAGE_ID = re.compile(r"ISIC_\d{7}")


def download_isic2018_test(target: Path, base_url: str | None = None, expected_images: int | None = None,
                           progress: bool = True, timeout: float = TIMEOUT_S) -> Path:
    """Fetch, check and lay out the ISIC 2018 Task 3 test set in target (images/, labels.csv, checksums.json).

    The archives come from base_url (default $ISIC2018_TEST_BASE_URL, else the ISIC challenge bucket); the images
    must number expected_images (default ISIC2018_TEST_IMAGES). A target already holding images/ and labels.csv is
    returned as it is. The folder is built beside target and renamed into place only when every check passed: a
    failure leaves target as it was (only an interrupted archive's .part file stays, for the next run to resume).
    No published checksum was available offline: the archives' sha256 is recorded in checksums.json, not verified.
    """
    target = Path(target).resolve()
    base_url = _checked_base_url(base_url or os.environ.get(ISIC2018_URL_ENV) or ISIC2018_URL)
    if _complete(target):
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DownloadError(f"{target} is not empty and holds no {ISIC2018_TEST_IMAGES_FOLDER}/ and "
                            f"{ISIC2018_TEST_LABELS}; refusing to replace it: remove it or choose another target")
    target.parent.mkdir(parents=True, exist_ok=True)
    downloads = target.parent / f".{target.name}.download"
    build = target.parent / f".{target.name}.build.tmp"
    shutil.rmtree(build, ignore_errors=True)
    try:
        archives = _fetch_archives(base_url, downloads, progress, timeout)
        expected = ISIC2018_TEST_IMAGES if expected_images is None else expected_images
        _build(archives, downloads, build, base_url, expected)
        if target.exists():
            target.rmdir()
        os.replace(build, target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
        _clear_downloads(downloads)
    return target


def read_ground_truth(path: Path) -> pd.DataFrame:
    """The one-hot ground truth CSV (image, MEL, NV, ...) as image_id, dx in HAM10000's codes; DownloadError if bad."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DownloadError(f"the ground truth {path.name} is not a readable CSV: {err}") from err
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in ("image", *GROUND_TRUTH_CLASSES) if column not in table.columns]
    if missing:
        raise DownloadError(f"the ground truth {path.name} has no column {', '.join(missing)}; "
                            f"its columns: {', '.join(table.columns) or 'none'}")
    ids = table["image"].str.strip()
    _check_ids(ids, path.name)
    onehot = table[list(GROUND_TRUTH_CLASSES)].apply(pd.to_numeric, errors="coerce")
    bad = ~(onehot.isin([0, 1]).all(axis=1) & (onehot.sum(axis=1) == 1))
    if bad.any():
        raise DownloadError(f"the ground truth {path.name} has {int(bad.sum())} row(s) that are not one-hot over "
                            f"{', '.join(GROUND_TRUTH_CLASSES)}, e.g. {ids[bad].iloc[0]}")
    dx = onehot.idxmax(axis=1).map(GROUND_TRUTH_CLASSES)
    return pd.DataFrame({"image_id": ids, "dx": dx}).sort_values("image_id").reset_index(drop=True)


def _checked_base_url(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url (${ISIC2018_URL_ENV}) must be an http(s) URL like {ISIC2018_URL!r}; "
                         f"got {base_url!r}")
    return base_url.rstrip("/")


def _complete(folder: Path) -> bool:
    return (folder / ISIC2018_TEST_IMAGES_FOLDER).is_dir() and (folder / ISIC2018_TEST_LABELS).is_file()


def _fetch_archives(base_url: str, downloads: Path, progress: bool, timeout: float) -> dict[str, Path]:
    downloads.mkdir(exist_ok=True)
    return {name: fetch_url(f"{base_url}/{name}", downloads / name, progress=progress, timeout=timeout)
            for name in ARCHIVES}


def _build(archives: dict[str, Path], downloads: Path, build: Path, base_url: str, expected_images: int) -> None:
    """Check the extracted archives against each other and write build/{images/, labels.csv, checksums.json}."""
    checksums = {name: {"url": f"{base_url}/{name}", "bytes": path.stat().st_size,
                        "sha256": file_digest(path, "sha256")} for name, path in archives.items()}
    labels = read_ground_truth(_ground_truth_csv(_extract(archives[GROUND_TRUTH_ARCHIVE], downloads, base_url)))
    images = _image_files(_extract(archives[INPUT_ARCHIVE], downloads, base_url))
    _check_match(labels, images, expected_images)
    (build / ISIC2018_TEST_IMAGES_FOLDER).mkdir(parents=True)
    for image_id, path in images.items():
        os.replace(path, build / ISIC2018_TEST_IMAGES_FOLDER / f"{image_id}.jpg")
    with atomic_open(build / ISIC2018_TEST_LABELS, "w", newline="") as handle:
        labels.to_csv(handle, index=False)
    write_json(checksums, build / CHECKSUMS_FILE)


def _extract(archive: Path, downloads: Path, base_url: str) -> Path:
    """Extract archive into downloads/<its stem>/ (every member's CRC checked); a bad one is named with its URL."""
    try:
        return extract_archive(archive, downloads)
    except DownloadError as err:
        why = str(err).removeprefix(f"{archive} is not a readable archive: ").removeprefix(f"{archive.name}: ")
        raise DownloadError(f"{archive.name} downloaded from {base_url}/{archive.name} is not a readable zip "
                            f"({why}); the bad file was deleted, run again to retry") from err


def _ground_truth_csv(folder: Path) -> Path:
    """The one CSV of the extracted ground-truth archive."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".csv")
    if len(found) != 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in found) or "none"
        raise DownloadError(f"{GROUND_TRUTH_ARCHIVE} should hold one ground-truth CSV; it holds {len(found)} ({names})")
    return found[0]


def _image_files(folder: Path) -> dict[str, Path]:
    """The images ISIC_xxxxxxx.jpg of the extracted input archive by id (its licence and text files left aside)."""
    images: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        match = IMAGE_NAME.fullmatch(path.name)
        if match is None:
            continue
        image_id = f"ISIC_{match.group(1)}"
        if image_id in images:
            raise DownloadError(f"{INPUT_ARCHIVE} holds image {image_id} twice "
                                f"({images[image_id].relative_to(folder)} and {path.relative_to(folder)})")
        images[image_id] = path
    return images


def _check_ids(ids: pd.Series, name: str) -> None:
    malformed = ids[~ids.str.fullmatch(IMAGE_ID.pattern)]
    if len(malformed):
        raise DownloadError(f"the ground truth {name} has {len(malformed)} image id(s) not like ISIC_0000000, "
                            f"e.g. {malformed.iloc[0]!r}")
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise DownloadError(f"the ground truth {name} lists {duplicated.nunique()} image id(s) more than once, "
                            f"e.g. {duplicated.iloc[0]}")


def _check_match(labels: pd.DataFrame, images: dict[str, Path], expected_images: int) -> None:
    """The images number expected_images and the ground truth has exactly one row per image."""
    if len(images) != expected_images:
        raise DownloadError(f"{INPUT_ARCHIVE} holds {len(images):,} image(s) ISIC_xxxxxxx.jpg, "
                            f"expected {expected_images:,}")
    if len(labels) != expected_images:
        raise DownloadError(f"{GROUND_TRUTH_ARCHIVE} has {len(labels):,} ground-truth row(s), "
                            f"expected {expected_images:,}")
    without_image = sorted(set(labels["image_id"]) - set(images))
    without_row = sorted(set(images) - set(labels["image_id"]))
    if without_image or without_row:
        example = (without_image or without_row)[0]
        raise DownloadError(f"the ground truth of {GROUND_TRUTH_ARCHIVE} and the images of {INPUT_ARCHIVE} disagree: "
                            f"{len(without_image)} id(s) without an image, {len(without_row)} image(s) without a row "
                            f"(e.g. {example})")


def _clear_downloads(downloads: Path) -> None:
    """Remove the downloads folder but for .part files, which an interrupted download resumes from."""
    if not downloads.is_dir():
        return
    for path in downloads.iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif not path.name.endswith(".part"):
            path.unlink(missing_ok=True)
    if not any(downloads.iterdir()):
        downloads.rmdir()
