"""Fetch the data sets: HAM10000 (Harvard Dataverse, checksummed and resumable, or Kaggle), Kaggle's
melanoma10k, and the official DermaMNIST split as HAM10000 image ids (from Abhishek et al.'s CSV)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

import pandas as pd
from tqdm import tqdm

from ..core.errors import DataError
from ..core.io import atomic_open
from .ham10000 import IMAGE_SUFFIXES, METADATA_NAME, find_metadata, read_metadata
from .labels import BINARY_CLASSES, DX_CLASSES
from .source import DERMAMNIST_FILE, HAM10000_ENV, data_home, resolve_path
from .splits import SPLITS

DATAVERSE_URL = "https://dataverse.harvard.edu"
DATAVERSE_DOI = "doi:10.7910/DVN/DBW86T"
KAGGLE_DATASET = "kmader/skin-cancer-mnist-ham10000"
METADATA_STEM = "HAM10000_metadata"
IMAGE_FOLDERS: tuple[str, ...] = ("HAM10000_images_part_1", "HAM10000_images_part_2")
SEGMENTATION_FOLDER = "HAM10000_segmentations_lesion_tschandl"
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".zip")
USER_AGENT = "skin-lesion-course/0.1 (HAM10000 downloader; Python urllib)"
TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20
KAGGLE_MARKER = ".kaggle.complete"


class DownloadError(DataError):
    """A download, checksum or extraction failure; the message names the URL, file or member at fault."""


@dataclass(frozen=True)
class Checksum:
    """An expected digest: a hashlib algorithm name and the lowercase hex value."""

    algorithm: str
    value: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"


@dataclass(frozen=True)
class RemoteFile:
    """One file of the Dataverse dataset: where to fetch it, its local name, size and checksum."""

    url: str
    name: str
    size: int | None
    checksum: Checksum | None


class _RangeNotSatisfiableError(Exception):
    pass


def download_ham10000(target: Path, source: str = "dataverse", **kwargs: Any) -> Path:
    """Download HAM10000 into target from source 'dataverse' or 'kaggle'; return target."""
    downloaders: dict[str, Callable[..., Path]] = {"dataverse": download_dataverse, "kaggle": download_kaggle}
    if source not in downloaders:
        raise ValueError(f"source must be one of {', '.join(map(repr, downloaders))}; got {source!r}")
    return downloaders[source](Path(target), **kwargs)


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
    _download(metadata.url, target / METADATA_NAME, metadata.checksum, metadata.size, progress, timeout)
    return target


def list_dataverse_files(base_url: str, persistent_id: str = DATAVERSE_DOI, timeout: float = TIMEOUT_S) -> list[dict]:
    """Return the file entries (label, dataFile{...}) of the latest version of a Dataverse dataset."""
    query = urllib.parse.urlencode({"persistentId": persistent_id})
    url = f"{base_url.rstrip('/')}/api/datasets/:persistentId/?{query}"
    payload = _get_json(url, timeout)
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
    _archive_stem(Path(plain))
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
    if _is_extracted(target, remote.name, stamp):
        return
    archive = _download(remote.url, target / remote.name, remote.checksum, remote.size, progress, timeout)
    extract_archive(archive, target, stamp)
    if not keep_archives:
        archive.unlink()


def _get_json(url: str, timeout: float) -> dict:
    with _open(url, timeout) as response:
        body = response.read()
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DownloadError(f"{url} did not answer JSON: {err}") from err
    if not isinstance(payload, dict):
        raise DownloadError(f"{url} answered JSON that is not an object")
    return payload


def _open(url: str, timeout: float, offset: int = 0) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            raise _RangeNotSatisfiableError() from err
        raise DownloadError(f"HTTP {err.code} {err.reason} for {url}") from err
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"cannot reach {url}: {getattr(err, 'reason', err)}") from err


def _download(
    url: str, dest: Path, checksum: Checksum | None, size: int | None, progress: bool, timeout: float
) -> Path:
    """Stream url to dest via dest.part (resuming it with a Range request when possible); verify; rename."""
    if dest.exists():
        if _matches(dest, checksum, size):
            return dest
        warnings.warn(f"{dest} does not match the expected checksum or size; downloading it again", stacklevel=2)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    offset = _resumable_offset(part, size)
    if offset and offset == size:
        return _finalize(part, dest, url, checksum, size)
    try:
        response = _open(url, timeout, offset)
    except _RangeNotSatisfiableError:
        part.unlink()
        offset = 0
        response = _open(url, timeout)
    with response:
        offset = _accepted_offset(response, offset, url, part)
        announced = _content_length(response, offset)
        _stream(response, part, offset, size if size is not None else announced, progress, url)
    _check_complete(part, announced if announced is not None else size, url)
    return _finalize(part, dest, url, checksum, size)


def _resumable_offset(part: Path, size: int | None) -> int:
    if not part.exists():
        return 0
    offset = part.stat().st_size
    if size is not None and offset > size:
        part.unlink()
        return 0
    return offset


def _accepted_offset(response: http.client.HTTPResponse, offset: int, url: str, part: Path) -> int:
    """The offset the server's answer continues from: offset on a matching 206, 0 when it sent everything."""
    if not offset or response.status != 206:
        return 0
    match = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    if match and int(match.group(1)) != offset:
        part.unlink()
        raise DownloadError(f"{url} answered a Range request for byte {offset} with "
                            f"{response.headers['Content-Range']!r}; the partial file was deleted, run again")
    return offset


def _content_length(response: http.client.HTTPResponse, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return int(length) + offset if length and length.isdigit() else None


def _stream(response: IO[bytes], part: Path, offset: int, total: int | None, progress: bool, url: str) -> None:
    name = part.name.removesuffix(".part")
    with part.open("ab" if offset else "wb") as out, tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress
    ) as bar:
        try:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise DownloadError(f"download of {name} from {url} broke off after {out.tell()} bytes ({err}); "
                                "run again to resume") from err


def _check_complete(part: Path, expected_end: int | None, url: str) -> None:
    """http.client ends a read silently when the connection drops early, so the length is checked here."""
    received = part.stat().st_size
    if expected_end is not None and received < expected_end:
        raise DownloadError(f"download of {part.name.removesuffix('.part')} from {url} broke off after "
                            f"{received} of {expected_end} bytes; run again to resume")


def _finalize(part: Path, dest: Path, url: str, checksum: Checksum | None, size: int | None) -> Path:
    if checksum is not None:
        actual = _file_digest(part, checksum.algorithm)
        if actual != checksum.value:
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {dest.name} downloaded from {url}: expected {checksum.algorithm} "
                f"{checksum.value}, got {actual}; the bad file was deleted, run again to retry"
            )
    elif size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        part.unlink()
        raise DownloadError(f"size mismatch for {dest.name} downloaded from {url}: expected {size} bytes, got {got}; "
                            "the bad file was deleted, run again to retry")
    os.replace(part, dest)
    return dest


def _matches(path: Path, checksum: Checksum | None, size: int | None) -> bool:
    if checksum is not None:
        return _file_digest(path, checksum.algorithm) == checksum.value
    return size is None or path.stat().st_size == size


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def extract_archive(archive: Path, target: Path, stamp: str | None = None) -> Path:
    """Safely extract a .zip/.tar/.tar.gz into target/<archive stem>/ once; return that folder."""
    archive, target = Path(archive), Path(target)
    stamp = stamp if stamp is not None else f"size:{archive.stat().st_size}"
    dest = target / _archive_stem(archive)
    if _is_extracted(target, archive.name, stamp):
        return dest
    _remove_leftovers(target, archive.name)
    scratch = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", suffix=".tmp", dir=target))
    try:
        _extract_members(archive, scratch)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(_content_root(scratch, dest.name), dest)
        _marker(target, archive.name).write_text(stamp + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dest


def _archive_stem(archive: Path) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if archive.name.lower().endswith(suffix) and len(archive.name) > len(suffix):
            return archive.name[: -len(suffix)]
    raise DownloadError(f"{archive.name} is not a supported archive ({', '.join(ARCHIVE_SUFFIXES)})")


def _marker(target: Path, archive_name: str) -> Path:
    return target / f".{archive_name}.extracted"


def _is_extracted(target: Path, archive_name: str, stamp: str) -> bool:
    marker = _marker(target, archive_name)
    dest = target / _archive_stem(Path(archive_name))
    return marker.is_file() and dest.is_dir() and marker.read_text().strip() == stamp


def _remove_leftovers(target: Path, archive_name: str) -> None:
    _marker(target, archive_name).unlink(missing_ok=True)
    for scratch in target.glob(f".{glob.escape(archive_name)}.*.tmp"):
        shutil.rmtree(scratch, ignore_errors=True)


def _content_root(scratch: Path, stem: str) -> Path:
    """The extracted tree, without the extra level when the archive holds one folder named like itself."""
    entries = list(scratch.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() == stem.lower():
        return entries[0]
    return scratch


def _extract_members(archive: Path, into: Path) -> None:
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, into)
        else:
            _extract_tar(archive, into)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise DownloadError(f"{archive} is not a readable archive: {err}") from err


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        plan = [(info, _safe_member_path(info.filename, _zip_kind(info), archive)) for info in zf.infolist()]
        for info, relative in plan:
            if relative is not None:
                _write_member(into / relative, info.is_dir(), lambda info=info: zf.open(info))


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        plan = [(member, _safe_member_path(member.name, _tar_kind(member), archive)) for member in tf.getmembers()]
        for member, relative in plan:
            if relative is not None:
                _write_member(into / relative, member.isdir(), lambda member=member: tf.extractfile(member))


def _zip_kind(info: zipfile.ZipInfo) -> str:
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symlink"
    return "dir" if info.is_dir() else "file"


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hard link"
    if member.isdir():
        return "dir"
    return "file" if member.isfile() else "special file"


def _safe_member_path(name: str, kind: str, archive: Path) -> PurePosixPath | None:
    """The member's path relative to the extraction folder, or DownloadError if it could escape it."""
    if kind not in ("file", "dir"):
        raise DownloadError(f"{archive.name}: member {name!r} is a {kind}; links and special files are refused")
    parts = re.split(r"[\\/]+", name)
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        raise DownloadError(f"{archive.name}: member {name!r} has an absolute path; refusing to extract")
    if ".." in parts:
        raise DownloadError(f"{archive.name}: member {name!r} climbs out of the target folder with '..'")
    kept = [part for part in parts if part not in ("", ".")]
    # macOS zips carry __MACOSX/._* resource forks that would look like extra images.
    if not kept or kept[0] == "__MACOSX":
        return None
    return PurePosixPath(*kept)


def _write_member(path: Path, is_dir: bool, opener: Callable[[], IO[bytes] | None]) -> None:
    if is_dir:
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    source = opener()
    if source is None:
        return
    with source, path.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK_BYTES)


def download_kaggle(target: Path, dataset: str = KAGGLE_DATASET) -> Path:
    """Fetch HAM10000 from Kaggle with opendatasets; leave the metadata CSV and image folders in target."""
    target = Path(target).resolve()
    marker = target / KAGGLE_MARKER
    if marker.is_file() and marker.read_text().strip() == dataset and (target / METADATA_NAME).is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.kaggle-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _run_opendatasets(dataset, staging)
        _arrange_kaggle_layout(staging, target, dataset)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(dataset + "\n")
    return target


def _run_opendatasets(dataset: str, staging: Path, help_text: str | None = None) -> None:
    import opendatasets

    help_text = KAGGLE_HELP if help_text is None else help_text
    url = f"https://www.kaggle.com/datasets/{dataset}"
    with _kaggle_credentials_in_cwd(help_text):
        try:
            opendatasets.download(url, data_dir=str(staging))
        except SystemExit as err:
            raise DownloadError(f"Kaggle refused the download of {url} (exit {err.code}): check that your "
                                f"credentials are valid. {help_text}") from err
        except Exception as err:
            raise DownloadError(f"downloading the Kaggle dataset {url} failed: {err}") from err


KAGGLE_TOKEN_HELP = (
    "Create a Kaggle API token at https://www.kaggle.com/settings (API > Create New Token) and either "
    "save the kaggle.json it gives you as ~/.kaggle/kaggle.json (chmod 600) or in the working folder, "
    "or set the environment variables KAGGLE_USERNAME and KAGGLE_KEY."
)
KAGGLE_HELP = KAGGLE_TOKEN_HELP + " Or use source='dataverse', which needs no account."


@contextlib.contextmanager
def _kaggle_credentials_in_cwd(help_text: str = KAGGLE_HELP) -> Iterator[None]:
    """Run the block where ./kaggle.json holds the credentials, the only place opendatasets looks before prompting."""
    env = _kaggle_env_credentials()
    config = _find_kaggle_json()
    if env is None and config is None:
        if not _stdin_can_prompt():
            raise DownloadError(f"no Kaggle credentials found, and opendatasets cannot prompt for them "
                                f"because stdin is not interactive. {help_text}")
        yield
        return
    if env is None:
        with _working_directory(config.parent):
            yield
        return
    with tempfile.TemporaryDirectory(prefix="kaggle-credentials-") as folder:
        credentials = Path(folder) / "kaggle.json"
        credentials.touch(mode=0o600)
        credentials.write_text(json.dumps({"username": env[0], "key": env[1]}))
        with _working_directory(Path(folder)):
            yield


def _kaggle_env_credentials() -> tuple[str, str] | None:
    username, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    return (username, key) if username and key else None


def _find_kaggle_json() -> Path | None:
    home = Path.home()
    folders = [Path.cwd(), *([Path(os.environ["KAGGLE_CONFIG_DIR"])] if os.environ.get("KAGGLE_CONFIG_DIR") else []),
               home / ".kaggle", Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"]
    for candidate in (folder / "kaggle.json" for folder in folders):
        if _valid_kaggle_json(candidate):
            return candidate
    return None


def _valid_kaggle_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("username")) and bool(data.get("key"))


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _stdin_can_prompt() -> bool:
    """True when a prompt can be answered: stdin is a terminal, or a Jupyter kernel that allows input()."""
    with contextlib.suppress(AttributeError, ValueError):
        if sys.stdin is not None and sys.stdin.isatty():
            return True
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return bool(getattr(getattr(shell, "kernel", None), "_allow_stdin", False))


def _arrange_kaggle_layout(staging: Path, target: Path, dataset: str) -> None:
    found = sorted(p for p in staging.rglob("*") if p.is_file() and p.name.lower() == METADATA_NAME.lower())
    if not found:
        raise DownloadError(f"the Kaggle dataset {dataset} holds no {METADATA_NAME}; "
                            f"got {', '.join(sorted(p.name for p in staging.iterdir())) or 'nothing'}")
    root = found[0].parent
    folders = _kaggle_image_folders(root)
    missing = [name for name in IMAGE_FOLDERS if name not in folders]
    if missing:
        raise DownloadError(f"the Kaggle dataset {dataset} lacks the image folder(s) {', '.join(missing)}; "
                            f"it holds {', '.join(sorted(p.name for p in root.iterdir()))}")
    for name, folder in folders.items():
        shutil.rmtree(target / name, ignore_errors=True)
        shutil.move(str(folder), str(target / name))
    shutil.move(str(found[0]), str(target / METADATA_NAME))


def _kaggle_image_folders(root: Path) -> dict[str, Path]:
    """Image folders by canonical name; lower-case duplicates that some Kaggle versions ship are dropped."""
    canonical = {name.lower(): name for name in IMAGE_FOLDERS}
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        name = canonical.get(child.name.lower())
        if child.is_dir() and name and (name not in found or child.name == name):
            found[name] = child
    return found


# --- melanoma10k: Kaggle's "Melanoma Skin Cancer Dataset of 10000 Images" -------------------------------------

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
        _run_opendatasets(dataset, staging, KAGGLE_TOKEN_HELP)
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


# --- the official DermaMNIST split as HAM10000 image ids ------------------------------------------------------

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
        downloaded = _download(url, Path(folder) / "dermamnist_split_info.csv", None, None, progress, timeout)
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


# --- one entry point for the command line ---------------------------------------------------------------------

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
