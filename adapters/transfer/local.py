"""A transfer directory on a local disk or a mounted share (``contracts.transfer``).

Uploads are copied to a hidden ``.<name>.<random>.part`` beside the target,
fsync'd and then published under the final name by ``publish`` (hard link, so an
existing file is never replaced; a rename where the filesystem has no links), and
the folder is fsync'd (one fsync shared by whoever publishes into it at the same
time, ``gateway.foldersync``). Sub-folders are never created: a missing one is almost
always a share that is not mounted, and creating it would fill the local disk
underneath the mount point.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from contracts.transfer import FolderEntry, LocalFolderConfig
from gateway import foldersync
from gateway.durable import create_exclusive, file_sha256, fsync_dir
from gateway.errors import PermanentDeliveryError, TransientDeliveryError

_CHUNK = 1024 * 1024

#: errno values meaning "this filesystem cannot hard-link", not "something is wrong".
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK})


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a hidden or temporary name nobody should read yet."""
    return name.startswith(".") or name.endswith((".part", ".tmp", ".partial", "~"))


def publish(temp: Path, target: Path, *, size: int, sha256: str) -> None:
    """Give the complete, fsync'd ``temp`` its final name without replacing anything.

    The same bytes already under ``target`` count as published (a redelivery).

    Raises:
        TransientDeliveryError: ``target`` holds different bytes (not taken away yet).
        OSError: the folder cannot be written.
    """
    if link_new(temp, target, size=size, sha256=sha256):
        # Deliveries publishing into the same folder at once share its fsyncs.
        foldersync.shared.sync(target.parent)


def link_new(temp: Path, target: Path, *, size: int, sha256: str) -> bool:
    """``publish`` without the folder fsync: whether a new name was made.

    A caller publishing several files into one folder links them all, then
    fsyncs the folder once (``foldersync.shared.sync``) before any counts as
    published. False means ``target`` already held these bytes.

    Raises:
        TransientDeliveryError: ``target`` holds different bytes (not taken away yet).
        OSError: the folder cannot be written.
    """
    try:
        os.link(temp, target)
    except FileExistsError:
        _require_same(target, size, sha256)
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if target.exists():
            _require_same(target, size, sha256)
            return False
        os.replace(temp, target)
    return True


def _require_same(target: Path, size: int, sha256: str) -> None:
    if target.stat().st_size == size and file_sha256(target) == sha256:
        return
    raise TransientDeliveryError(
        f"{target} already holds a different file that has not been taken away yet; "
        "delivery waits until the other side has read it"
    )


class LocalTransferFolder:
    """``TransferFolder`` over a directory of this machine."""

    def __init__(self, config: LocalFolderConfig) -> None:
        self.root = config.path

    def _dir(self, folder: str) -> Path:
        parts = [p for p in folder.split("/") if p]
        if any(p in (".", "..") or "\\" in p for p in parts):
            raise ValueError(f"sub-folder {folder!r} must not contain '.', '..' or '\\'")
        return self.root.joinpath(*parts)

    def _file(self, folder: str, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"{name!r} is not a plain file name")
        return self._dir(folder) / name

    async def list(self, folder: str) -> list[FolderEntry]:
        """The complete-looking files in ``folder``, by name."""
        directory = self._dir(folder)
        try:
            return await asyncio.to_thread(_list, directory)
        except OSError as exc:
            raise _unreachable(directory, exc) from exc

    async def download(self, folder: str, name: str, target: Path) -> str:
        """Copy one file into ``target`` (fsync'd); its SHA-256."""
        source = self._file(folder, name)
        try:
            return await asyncio.to_thread(_copy, source, target)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _unreachable(source.parent, exc) from exc

    async def upload(self, folder: str, name: str, source: Path, sha256: str) -> None:
        """Publish a copy of ``source`` as ``folder/name`` (temp name, fsync, link)."""
        target = self._file(folder, name)
        try:
            await asyncio.to_thread(_upload, source, target, sha256)
        except OSError as exc:
            raise _unreachable(target.parent, exc) from exc

    async def remove(self, folder: str, name: str) -> None:
        """Delete one file (gone already is fine) and make that durable."""
        target = self._file(folder, name)
        try:
            await asyncio.to_thread(_remove, target)
        except OSError as exc:
            raise _unreachable(target.parent, exc) from exc

    async def close(self) -> None:
        """Nothing to release."""


def _list(directory: Path) -> list[FolderEntry]:
    entries = []
    for entry in os.scandir(directory):
        if is_temporary(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        stat = entry.stat(follow_symlinks=False)
        entries.append(
            FolderEntry(
                name=entry.name,
                size=stat.st_size,
                modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            )
        )
    return sorted(entries, key=lambda e: e.name)


def _copy(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as reader:
        try:
            with create_exclusive(target) as sink:
                while chunk := reader.read(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return digest.hexdigest()


def _upload(source: Path, target: Path, sha256: str) -> None:
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        actual = _copy(source, temp)
        if actual != sha256:
            raise PermanentDeliveryError(
                f"{source} has SHA-256 {actual}, expected {sha256}: the local copy is "
                "damaged; restore it and replay the message"
            )
        publish(temp, target, size=temp.stat().st_size, sha256=sha256)
    finally:
        temp.unlink(missing_ok=True)


def _remove(target: Path) -> None:
    try:
        target.unlink()
    except FileNotFoundError:
        return
    fsync_dir(target.parent)


def _unreachable(directory: Path, exc: OSError) -> TransientDeliveryError:
    return TransientDeliveryError(
        f"cannot use transfer folder {directory}: {exc.strerror or exc}; "
        "check that it exists, is mounted and writable"
    )
