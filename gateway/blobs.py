"""Content-addressed blob store on the filesystem.

A blob is written to ``<root>/tmp/`` while its SHA-256 is computed, fsync'd, and
only then renamed to ``<root>/sha256/ab/cd/<digest>`` (and the folder fsync'd).
So a blob under its address is always complete, and identical content is stored
once. Intake stages a large upload, checks it, then commits it; a rejected upload
is discarded and leaves nothing behind. A small upload, held in memory, is checked
first and then written to its address in one go (``store``): a refused one was
never written.

Small messages need not be files here at all: the journal can keep their content
(``[storage] inline_max_bytes``), committed with the message. Whoever needs such
a message as a file asks ``file``, which writes the journal's copy to its
address the first time (durably, as ``store`` does).

File I/O is blocking; the async API hands it to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: a dead process's staging folder is not cleaned up
    fcntl = None  # type: ignore[assignment]

from gateway import foldersync
from gateway.blocking import file_chunks
from gateway.durable import write_new
from gateway.errors import GatewayError

_BUFFER = 1024 * 1024
#: A loose staged upload nobody wrote to for this long belongs to a process that died.
STALE_UPLOAD_SECONDS = 3600.0
_LOCK = ".lock"
#: In the root: held shared by every open store (all processes), exclusively by
#: ``gateway.blob_prune`` while it deletes. So files are pruned only while no store
#: is open on the root, and no store opens while they are.
PRUNE_LOCK = ".prune.lock"
#: Temporary names of ``store``: unique within the store's own staging folder, which
#: no other store writes to (cheaper than a random name per blob).
_STORE_NAMES = itertools.count()


class BlobTooLarge(GatewayError):
    """The content exceeds the configured size limit."""

    kind = "too-large"


class BlobStoreBusy(GatewayError):
    """The blob store is being pruned (``ikz-gateway blobs prune``), or is in use by a prune."""

    kind = "blob-store-busy"


class BlobCorrupted(GatewayError):
    """Content does not match the SHA-256 it is stored under."""

    kind = "blob-corrupted"


@dataclass(frozen=True)
class StagedBlob:
    """Content written and fsync'd under a temporary name, not yet addressable."""

    path: Path
    sha256: str
    size: int


class BlobStore:
    """Blobs under one root folder, addressed by SHA-256.

    Several processes may share the root. Each store stages its uploads in its own
    folder ``tmp/<random>/``, holding an exclusive ``flock`` on ``.lock`` in it for
    as long as it is open; the kernel drops the lock when the process dies. So a
    staging folder whose lock can be taken belongs to nobody alive, and
    ``clean_staging`` removes it, at once after a crash and never under a live
    upload.
    """

    def __init__(
        self, root: Path, *, inline: Callable[[str], Awaitable[bytes | None]] | None = None
    ) -> None:
        """A store under ``root``.

        Args:
            inline: where content kept in the journal is found by SHA-256
                (``Journal.inline_content``); without it ``file`` finds only files.
        """
        self.root = root
        self._inline = inline
        self._tmp = root / "tmp"
        self._addressed = root / "sha256"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._addressed.mkdir(exist_ok=True)
        shared = _share_prune_lock(root)
        self._staging = self._tmp / uuid.uuid4().hex
        try:
            self._staging.mkdir()
            fd = _hold_lock(self._staging / _LOCK)
        except BaseException:
            if shared is not None:
                os.close(shared)
            raise
        held = [f for f in (shared, fd) if f is not None]
        # A store dropped without close() still releases its locks when collected.
        self._release = weakref.finalize(self, _close_all, held) if held else None

    def close(self) -> None:
        """Release this store's staging folder (removed when no upload is left in it)."""
        if self._release is None or not self._release.alive:
            return
        _remove_if_unused(self._staging)
        self._release()

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        # One Path built from a string: this runs twice per message.
        return Path(f"{self._addressed}/{sha256[:2]}/{sha256[2:4]}/{sha256}")

    async def file(self, sha256: str, content: bytes | None = None) -> Path:
        """The file holding the blob with this digest, written first if only the journal has it.

        A small message's content may be kept only in the journal. The first
        reader that needs it as a file has it written here, durably; later
        readers find the file.

        Args:
            content: the content, when the caller holds it already (a claim
                carries it); otherwise it is looked up in the journal.

        Returns:
            Its path. If neither a file nor the journal has the blob, the path where
            it would be, and opening it raises ``FileNotFoundError``.

        Raises:
            BlobCorrupted: the journal's copy does not match its SHA-256.
        """
        path = self.path(sha256)
        if await asyncio.to_thread(path.is_file):
            return path
        if content is None and self._inline is not None:
            content = await self._inline(sha256)
        if content is None:
            return path
        if hashlib.sha256(content).hexdigest() != sha256:
            raise BlobCorrupted(
                f"the journal's copy of blob {sha256} does not match its SHA-256; "
                "restore the journal from a backup and replay the message"
            )
        return await self.store(content, sha256)

    def exists(self, sha256: str) -> bool:
        """Whether a committed blob with this digest exists."""
        return self.path(sha256).is_file()

    async def stage(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StagedBlob:
        """Write a stream to a temporary file, hashing it; fsync before returning.

        Content up to 1 MiB is collected in memory and written in one go (one hop to
        a thread instead of one per step: most messages are small); larger content
        is streamed in 1 MiB writes.

        Raises:
            BlobTooLarge: more than ``max_bytes`` arrived (nothing is left behind).
        """
        path = self._staging / f"{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        handle = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(f"content exceeds the limit of {max_bytes} bytes")
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= _BUFFER:
                    if handle is None:
                        handle = await asyncio.to_thread(path.open, "wb")
                    await asyncio.to_thread(handle.write, bytes(buffer))
                    buffer.clear()
            if handle is None:
                await asyncio.to_thread(_write_new, path, bytes(buffer))
            else:
                if buffer:
                    await asyncio.to_thread(handle.write, bytes(buffer))
                await asyncio.to_thread(_flush_and_sync, handle)
        except BaseException:
            if handle is not None:
                handle.close()
            path.unlink(missing_ok=True)
            raise
        if handle is not None:
            handle.close()
        return StagedBlob(path=path, sha256=digest.hexdigest(), size=size)

    async def stage_file(self, source: Path, *, max_bytes: int) -> StagedBlob:
        """Stage a local file (drop folder intake) by streaming it."""
        return await self.stage(file_chunks(source), max_bytes=max_bytes)

    async def commit(self, staged: StagedBlob) -> Path:
        """Move a staged blob to its address, durably; identical content is kept once."""
        return await asyncio.to_thread(self._commit, staged)

    def _commit(self, staged: StagedBlob) -> Path:
        target = self.path(staged.sha256)
        if target.is_file():
            staged.path.unlink(missing_ok=True)
            return target
        made = self._make_folders(target.parent)
        os.replace(staged.path, target)
        self._sync(target, made)
        return target

    async def store(self, data: bytes, sha256: str) -> Path:
        """Write content held in memory to its address, durably, in one hop to a thread.

        A temporary file in the staging folder is written and fsync'd, renamed to
        the address (its folders made when missing) and the folder fsync'd: when
        this returns, the blob is complete and durable under its address. The same
        content already there is replaced by identical bytes.

        Args:
            data: the content.
            sha256: its SHA-256 (hex), computed by the caller.
        """
        return await asyncio.to_thread(self._store, data, sha256)

    def _store(self, data: bytes, sha256: str) -> Path:
        target = self.path(sha256)
        temp = f"{self._staging}/{next(_STORE_NAMES)}.store.part"
        made: list[Path] = []
        try:
            write_new(temp, data)
            try:
                os.rename(temp, target)
            except FileNotFoundError:
                made = self._make_folders(target.parent)
                os.rename(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        self._sync(target, made)
        return target

    @staticmethod
    def _sync(target: Path, made: list[Path]) -> None:
        """Make the blob's new name durable, and the name of each folder made for it.

        The folders are synced in their parents only after the blob's folder: that
        fsync commits the file system's journal with the mkdirs in it, so these come
        almost free instead of costing a commit each before the rename.
        """
        foldersync.shared.sync(target.parent)
        for folder in reversed(made):
            foldersync.shared.sync(folder.parent)

    def _make_folders(self, folder: Path) -> list[Path]:
        """Create ``sha256/ab/cd`` as needed; the folders made, outermost first.

        The caller fsyncs the parent of each before the blob counts as stored:
        without that a crash could lose the new folder, and the blob with it,
        although the blob's own folder was fsync'd.
        """
        made = []
        for level in (folder.parent, folder):
            try:
                level.mkdir()
            except FileExistsError:
                continue
            made.append(level)
        return made

    def discard(self, staged: StagedBlob) -> None:
        """Remove a staged blob that will not be committed."""
        staged.path.unlink(missing_ok=True)

    def clean_staging(self, *, idle_seconds: float = STALE_UPLOAD_SECONDS) -> int:
        """Remove what stores of dead processes left in staging; returns how many uploads.

        A staging folder whose lock nobody holds is removed with its uploads. Loose
        ``.part`` files directly in ``tmp/`` (from older versions, or where the file
        system has no ``flock``) go only when nobody wrote to them for
        ``idle_seconds``.
        """
        removed = 0
        cutoff = time.time() - idle_seconds
        for entry in self._tmp.iterdir():
            if entry == self._staging:
                continue
            if entry.is_dir():
                removed += _remove_if_abandoned(entry)
            elif entry.name.endswith(".part"):
                try:
                    if entry.stat().st_mtime >= cutoff:
                        continue
                except FileNotFoundError:
                    continue  # committed or discarded meanwhile
                entry.unlink(missing_ok=True)
                removed += 1
        return removed


def take_prune_lock(root: Path, *, exclusive: bool) -> int | None:
    """Take ``root/PRUNE_LOCK`` without waiting; its descriptor (None without flock).

    Raises:
        BlockingIOError: it is held in a mode that conflicts.
    """
    fd = os.open(root / PRUNE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _share_prune_lock(root: Path) -> int | None:
    """Hold the prune lock shared, as every open store does.

    Raises:
        BlobStoreBusy: a prune holds it.
    """
    try:
        return take_prune_lock(root, exclusive=False)
    except BlockingIOError:
        raise BlobStoreBusy(
            f"the blob store {root} is being pruned (ikz-gateway blobs prune); "
            "start again once that has finished"
        ) from None


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _hold_lock(path: Path) -> int | None:
    """Open ``path`` and hold an exclusive lock on it; the descriptor (None without flock)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:
        os.close(fd)
        return None
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _remove_if_abandoned(folder: Path) -> int:
    """Remove a staging folder whose owner is gone; how many uploads it held (0: in use)."""
    if fcntl is None:
        return 0
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR)
    except FileNotFoundError:
        fd = None  # its owner died before taking the lock, or it is being removed
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # a live store stages here
        uploads = [p for p in folder.iterdir() if p.name != _LOCK]
        for path in uploads:
            path.unlink(missing_ok=True)
        (folder / _LOCK).unlink(missing_ok=True)
        folder.rmdir()
        return len(uploads)
    except FileNotFoundError:
        return 0  # another process cleaned it at the same moment
    finally:
        if fd is not None:
            os.close(fd)


def _remove_if_unused(folder: Path) -> None:
    """Remove our own staging folder on close, unless an upload is still in it."""
    if any(p.name != _LOCK for p in folder.iterdir()):
        return  # left for clean_staging once our lock is gone
    (folder / _LOCK).unlink(missing_ok=True)
    folder.rmdir()


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``, durably."""
    with path.open("wb") as handle:
        handle.write(data)
        _flush_and_sync(handle)


def _flush_and_sync(handle: object) -> None:
    handle.flush()  # type: ignore[attr-defined]
    os.fsync(handle.fileno())  # type: ignore[attr-defined]
