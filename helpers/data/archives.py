"""Extract a downloaded .zip/.tar/.tar.gz once into target/<archive stem>/, behind the standard library's guards.

The writing is the standard library's: tar through tarfile's "data" filter (`tarfile.data_filter`: nothing outside
the folder, no absolute links or device files, safe permission bits), zip through `ZipFile.extract` (inside the
folder only: it drops "..", drives and leading slashes). A member either guard had to rename (a leading "/"), or
refuses, is refused, and so is what they let through: any link or special file, any ".." and any backslash (a
Windows path). Extraction goes into a hidden scratch folder renamed into place when complete, so a refused or
interrupted archive leaves nothing behind; a marker file records which archive (by checksum) is extracted.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .fetch import DownloadError

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".zip")


def extract_archive(archive: Path, target: Path, stamp: str | None = None) -> Path:
    """Safely extract a .zip/.tar/.tar.gz into target/<archive stem>/ once; return that folder."""
    archive, target = Path(archive), Path(target)
    stamp = stamp if stamp is not None else f"size:{archive.stat().st_size}"
    dest = target / archive_stem(archive)
    if is_extracted(target, archive.name, stamp):
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


def archive_stem(archive: Path) -> str:
    """The archive's name without its archive suffix; DownloadError for an unsupported kind."""
    for suffix in ARCHIVE_SUFFIXES:
        if archive.name.lower().endswith(suffix) and len(archive.name) > len(suffix):
            return archive.name[: -len(suffix)]
    raise DownloadError(f"{archive.name} is not a supported archive ({', '.join(ARCHIVE_SUFFIXES)})")


def is_extracted(target: Path, archive_name: str, stamp: str) -> bool:
    """True when target holds the archive's folder and a marker saying it was extracted from the stamped archive."""
    marker = _marker(target, archive_name)
    dest = target / archive_stem(Path(archive_name))
    return marker.is_file() and dest.is_dir() and marker.read_text().strip() == stamp


def _marker(target: Path, archive_name: str) -> Path:
    return target / f".{archive_name}.extracted"


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
        members = zf.infolist()
        for info in members:
            _check_member(archive, info.filename, "symlink" if stat.S_ISLNK(info.external_attr >> 16) else "file")
        for info in members:
            if _is_resource_fork(info.filename):
                continue
            written = Path(zf.extract(info, into))
            if written != Path(os.path.normpath(os.path.join(into, info.filename))):
                raise DownloadError(f"{archive.name}: member {info.filename!r} has an absolute path (zipfile would "
                                    f"write it as {written.relative_to(into).as_posix()!r}); refusing to extract")


def _extract_tar(archive: Path, into: Path) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise DownloadError(f"{archive.name}: extracting a tar archive safely needs tarfile's data filter "
                            "(Python 3.10.12+ or 3.11.4+)")

    def keep(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        _check_member(archive, member.name, _tar_kind(member))
        if _is_resource_fork(member.name):
            return None
        try:
            safe = tarfile.data_filter(member, dest)
        except tarfile.FilterError as err:
            raise DownloadError(f"{archive.name}: member {member.name!r} is refused by tarfile's data filter "
                                f"({err}); refusing to extract") from err
        if safe.name != member.name:
            raise DownloadError(f"{archive.name}: member {member.name!r} has an absolute path; refusing to extract")
        return safe

    with tarfile.open(archive, "r:*") as tf:
        tf.extractall(into, filter=keep)


def _tar_kind(member: tarfile.TarInfo) -> str:
    """"file" for a regular file or a folder (the kinds extracted), else what the member is."""
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hard link"
    return "file" if member.isfile() or member.isdir() else "special file"


def _check_member(archive: Path, name: str, kind: str) -> None:
    """Refuse what the guards let through: links and special files, Windows separators, and any '..' (which
    zipfile drops silently, and which tarfile follows while it stays inside, or fails on with an OSError)."""
    if kind != "file":
        raise DownloadError(f"{archive.name}: member {name!r} is a {kind}; links and special files are refused")
    if "\\" in name:
        raise DownloadError(f"{archive.name}: member {name!r} has a Windows path (backslashes); refusing to extract")
    if ".." in name.split("/"):
        raise DownloadError(f"{archive.name}: member {name!r} climbs out of the target folder with '..'; "
                            "refusing to extract")


def _is_resource_fork(name: str) -> bool:
    """macOS zips carry __MACOSX/._* resource forks that would look like extra images."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return not parts or parts[0] == "__MACOSX"
