"""Small file-system steps that make writes durable, shared by everything that writes.

A file is durable once its bytes are fsync'd; a name (a new file, a rename) is
durable once its folder is fsync'd. Blob store, containers, transfer folders, drop
folders and the filesystem DMS all write that way.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

_CHUNK = 1024 * 1024


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make the folder's entries (new names, renames, removals) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_exclusive(path: Path) -> io.FileIO:
    """Open a new file for writing; fail if it exists (``O_EXCL``: nobody shares it)."""
    return io.FileIO(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb")


def write_new(path: str | os.PathLike[str], data: bytes) -> None:
    """Create ``path`` exclusively (``O_EXCL``) holding ``data``, fsync'd before it returns.

    The fewest system calls for small content: open, write, fsync, close. On
    failure the file may be left partly written; the caller removes it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_small(path: str | os.PathLike[str], size: int) -> bytes:
    """Read a file expected to hold ``size`` bytes: at most ``size + 1``, so longer shows.

    Raises:
        FileNotFoundError: there is no such file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts: list[bytes] = []
        left = size + 1
        while left > 0 and (part := os.read(fd, left)):
            parts.append(part)
            left -= len(part)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
