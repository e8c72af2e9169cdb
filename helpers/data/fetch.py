"""Fetch one URL to a file over HTTP(S): resumed from a .part file with a Range request, checked against a
checksum (or the size), renamed into place only when complete; every failure is a DownloadError naming the URL."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from ..core.errors import DataError

USER_AGENT = "skin-lesion-course/0.1 (HAM10000 downloader; Python urllib)"
TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20


class DownloadError(DataError):
    """A download, checksum or extraction failure; the message names the URL, file or member at fault."""


@dataclass(frozen=True)
class Checksum:
    """An expected digest: a hashlib algorithm name and the lowercase hex value."""

    algorithm: str
    value: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"


class _RangeNotSatisfiableError(Exception):
    pass


def get_json(url: str, timeout: float = TIMEOUT_S) -> dict:
    """GET url and return its JSON object; DownloadError when the answer is not one."""
    with _open(url, timeout) as response:
        body = response.read()
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DownloadError(f"{url} did not answer JSON: {err}") from err
    if not isinstance(payload, dict):
        raise DownloadError(f"{url} answered JSON that is not an object")
    return payload


def fetch_url(url: str, dest: Path, checksum: Checksum | None = None, size: int | None = None,
              progress: bool = True, timeout: float = TIMEOUT_S) -> Path:
    """Stream url to dest via dest.part (resuming it with a Range request when possible); verify; rename."""
    dest = Path(dest)
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


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at path with hashlib's algorithm."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


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
        actual = file_digest(part, checksum.algorithm)
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
        return file_digest(path, checksum.algorithm) == checksum.value
    return size is None or path.stat().st_size == size
