"""HAM10000 from the Harvard Dataverse (doi:10.7910/DVN/DBW86T, no account needed): list the dataset's files through
the Dataverse API, pick the metadata CSV and the image archives, fetch each checksummed and extract it."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .archives import ARCHIVE_SUFFIXES, archive_stem, extract_archive, is_extracted
from .fetch import TIMEOUT_S, Checksum, DownloadError, fetch_url, get_json
from .ham10000 import IMAGE_FOLDERS, METADATA_NAME

DATAVERSE_URL = "https://dataverse.harvard.edu"
DATAVERSE_DOI = "doi:10.7910/DVN/DBW86T"
METADATA_STEM = "HAM10000_metadata"
SEGMENTATION_FOLDER = "HAM10000_segmentations_lesion_tschandl"


@dataclass(frozen=True)
class RemoteFile:
    """One file of the Dataverse dataset: where to fetch it, its local name, size and checksum."""

    url: str
    name: str
    size: int | None
    checksum: Checksum | None


def download_dataverse(
    target: Path,
    base_url: str = DATAVERSE_URL,
    include_segmentations: bool = False,
    progress: bool = True,
    keep_archives: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Fetch, verify and extract HAM10000 (metadata CSV, image zips) from Harvard Dataverse into target."""
    target = Path(target).resolve()
    base_url = _checked_base_url(base_url)
    target.mkdir(parents=True, exist_ok=True)
    entries = list_dataverse_files(base_url, DATAVERSE_DOI, timeout)
    metadata, archives = select_ham10000_files(entries, base_url, include_segmentations)
    for archive in archives:
        _fetch_and_extract(archive, target, progress, keep_archives, timeout)
    # The metadata comes last: its presence is what marks the folder as a usable HAM10000 copy.
    fetch_url(metadata.url, target / METADATA_NAME, metadata.checksum, metadata.size, progress, timeout)
    return target


def list_dataverse_files(base_url: str, persistent_id: str = DATAVERSE_DOI, timeout: float = TIMEOUT_S) -> list[dict]:
    """Return the file entries (label, dataFile{...}) of the latest version of a Dataverse dataset."""
    query = urllib.parse.urlencode({"persistentId": persistent_id})
    url = f"{base_url.rstrip('/')}/api/datasets/:persistentId/?{query}"
    payload = get_json(url, timeout)
    if payload.get("status") != "OK":
        raise DownloadError(f"{url} answered status {payload.get('status')!r}: {payload.get('message', '')}")
    data = payload.get("data")
    files = data if isinstance(data, list) else ((data or {}).get("latestVersion") or {}).get("files")
    if not isinstance(files, list):
        raise DownloadError(f"{url} answered without a data.latestVersion.files list")
    return files


def select_ham10000_files(
    entries: list[dict], base_url: str, include_segmentations: bool = False
) -> tuple[RemoteFile, list[RemoteFile]]:
    """Pick the metadata file and the image (and segmentation) archives from a Dataverse file listing."""
    by_key = {_name_key(name): entry for entry in entries for name in _entry_names(entry)}
    archive_names = [*IMAGE_FOLDERS, *([SEGMENTATION_FOLDER] if include_segmentations else [])]
    missing = [name for name in [*archive_names, METADATA_STEM] if _name_key(name) not in by_key]
    if missing:
        listed = sorted({name for entry in entries for name in _entry_names(entry)})
        raise DownloadError(
            f"the Dataverse dataset {DATAVERSE_DOI} at {base_url} lists no file like {', '.join(missing)}; "
            f"it lists: {', '.join(listed) or 'nothing'}"
        )
    metadata = _remote_file(by_key[_name_key(METADATA_STEM)], base_url, METADATA_NAME)
    archives = [_remote_file(by_key[_name_key(name)], base_url, None) for name in archive_names]
    return metadata, archives


def _checked_base_url(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL like {DATAVERSE_URL!r}; got {base_url!r}")
    return base_url.rstrip("/")


def _entry_names(entry: dict) -> list[str]:
    data_file = entry.get("dataFile") or {}
    names = (data_file.get("originalFileName"), data_file.get("filename"), entry.get("label"))
    return [name for name in names if isinstance(name, str) and name]


def _name_key(name: str) -> str:
    lowered = name.lower()
    for suffix in (*ARCHIVE_SUFFIXES, ".tab", ".csv"):
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
            break
    return re.sub(r"[^a-z0-9]", "", lowered)


def _remote_file(entry: dict, base_url: str, local_name: str | None) -> RemoteFile:
    data_file = entry.get("dataFile") or {}
    name = local_name or _plain_name(data_file.get("filename") or entry.get("label") or "")
    if "id" not in data_file:
        raise DownloadError(f"the Dataverse listing at {base_url} gives no dataFile.id for {name}")
    ingested = _is_ingested(data_file)
    url = f"{base_url}/api/access/datafile/{data_file['id']}" + ("?format=original" if ingested else "")
    size = data_file.get("originalFileSize") if ingested else data_file.get("filesize")
    return RemoteFile(url, name, size if isinstance(size, int) else None, _checksum_of(data_file, name))


def _plain_name(name: str) -> str:
    plain = PurePosixPath(name.replace("\\", "/")).name
    if plain in ("", ".", ".."):
        raise DownloadError(f"the Dataverse listing holds an unusable file name {name!r}")
    archive_stem(Path(plain))
    return plain


def _is_ingested(data_file: dict) -> bool:
    """Ingested tabular files are served as .tab unless ?format=original; their checksum is the original's."""
    original = data_file.get("originalFileName")
    return bool(data_file.get("originalFileFormat")) or bool(original and original != data_file.get("filename"))


def _checksum_of(data_file: dict, name: str) -> Checksum | None:
    legacy_md5 = {"type": "MD5", "value": data_file["md5"]} if data_file.get("md5") else None
    checksum = data_file.get("checksum") or legacy_md5
    if not checksum or not checksum.get("value"):
        warnings.warn(f"Dataverse gives no checksum for {name}; it will not be verified", stacklevel=2)
        return None
    algorithm = re.sub(r"[^a-z0-9]", "", str(checksum.get("type", "")).lower())
    if algorithm not in hashlib.algorithms_available:
        kind = checksum.get("type")
        warnings.warn(f"unknown checksum type {kind!r} for {name}; it will not be verified", stacklevel=2)
        return None
    return Checksum(algorithm, str(checksum["value"]).lower())


def _fetch_and_extract(remote: RemoteFile, target: Path, progress: bool, keep_archives: bool, timeout: float) -> None:
    stamp = str(remote.checksum) if remote.checksum else f"size:{remote.size}"
    if is_extracted(target, remote.name, stamp):
        return
    archive = fetch_url(remote.url, target / remote.name, remote.checksum, remote.size, progress, timeout)
    extract_archive(archive, target, stamp)
    if not keep_archives:
        archive.unlink()
