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


def fsync_dir(directory: Path) -> None:
    """Make the folder's entries (new names, renames, removals) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_exclusive(path: Path) -> io.FileIO:
    """Open a new file for writing; fail if it exists (``O_EXCL``: nobody shares it)."""
    return io.FileIO(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb")


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
