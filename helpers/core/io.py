"""Atomic file writes: a failed or interrupted write never replaces the last good file, nor leaves its temporary.

A write goes to a temporary `.<name>.<pid>.<random>.tmp` beside the file, renamed over it on success and
removed on any exception. Only a process killed outright (SIGKILL, power loss) leaves one behind; the next
atomic write of that file (and the next image-cache build, for its older versions) removes such stale
temporaries: older than this process and written by a process that is no longer running.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)
PROCESS_STARTED = time.time()  # every temporary this process writes is younger than this


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, glob.escape(path.name))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing that replaces `path` only when closed without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_json(data: Any, path: str | Path) -> Path:
    """Write `data` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")
    return Path(path)


def temporaries(folder: str | Path, name_pattern: str = "*") -> list[Path]:
    """The temporaries of atomic writes in folder to files whose names match the glob name_pattern."""
    return sorted(Path(folder).glob(f".{name_pattern}.*.tmp"))


def remove_stale_temporaries(folder: str | Path, name_pattern: str = "*") -> list[Path]:
    """Remove the temporaries that killed processes left for files matching name_pattern in folder; those removed."""
    removed = []
    for tmp in temporaries(folder, name_pattern):
        if _is_stale(tmp):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _is_stale(tmp: Path) -> bool:
    try:
        modified = tmp.stat().st_mtime
    except FileNotFoundError:
        return False
    if modified >= PROCESS_STARTED:
        return False  # possibly another process's write in progress
    pid = _writer_pid(tmp)
    return pid is None or not _running(pid)


def _writer_pid(tmp: Path) -> int | None:
    parts = tmp.name.split(".")  # "", name…, pid, random, "tmp"
    return int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":
        return False  # os.kill would terminate it; the age test alone decides there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True
