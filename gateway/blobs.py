"""Content-addressed blob store on the filesystem.

A blob is written to ``<root>/tmp/`` while its SHA-256 is computed, fsync'd, and
only then renamed to ``<root>/sha256/ab/cd/<digest>`` (and the folder fsync'd).
So a blob under its address is always complete, and identical content is stored
once. Intake stages a blob, checks it, then commits it; a rejected upload is
discarded and leaves nothing behind.

File I/O is blocking; the async API hands it to a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError

_BUFFER = 1024 * 1024
#: A staged upload nobody wrote to for this long belongs to a process that died.
STALE_UPLOAD_SECONDS = 3600.0


class BlobTooLarge(GatewayError):
    """The content exceeds the configured size limit."""

    kind = "too-large"


@dataclass(frozen=True)
class StagedBlob:
    """Content written and fsync'd under a temporary name, not yet addressable."""

    path: Path
    sha256: str
    size: int


class BlobStore:
    """Blobs under one root folder, addressed by SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._addressed = root / "sha256"
        self._tmp.mkdir(parents=True, exist_ok=True)
        (root / "sha256").mkdir(exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        # One Path built from a string: this runs twice per message.
        return Path(f"{self._addressed}/{sha256[:2]}/{sha256[2:4]}/{sha256}")

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
        path = self._tmp / f"{uuid.uuid4().hex}.part"
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

        async def chunks() -> AsyncIterator[bytes]:
            handle = await asyncio.to_thread(source.open, "rb")
            try:
                while chunk := await asyncio.to_thread(handle.read, _BUFFER):
                    yield chunk
            finally:
                handle.close()

        return await self.stage(chunks(), max_bytes=max_bytes)

    async def commit(self, staged: StagedBlob) -> Path:
        """Move a staged blob to its address, durably; identical content is kept once."""
        return await asyncio.to_thread(self._commit, staged)

    def _commit(self, staged: StagedBlob) -> Path:
        target = self.path(staged.sha256)
        if target.is_file():
            staged.path.unlink(missing_ok=True)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        _fsync_dir(target.parent)
        return target

    def discard(self, staged: StagedBlob) -> None:
        """Remove a staged blob that will not be committed."""
        staged.path.unlink(missing_ok=True)

    def clean_staging(self, *, idle_seconds: float = STALE_UPLOAD_SECONDS) -> int:
        """Remove leftovers of uploads interrupted by a crash; returns how many.

        Several gateway processes may share one blob store, so an upload is a
        leftover only when nobody has written to it for ``idle_seconds``: a
        starting process must not delete what a running one is still receiving.
        """
        removed = 0
        cutoff = time.time() - idle_seconds
        for leftover in self._tmp.glob("*.part"):
            try:
                if leftover.stat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue  # committed or discarded meanwhile
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``, durably."""
    with path.open("wb") as handle:
        handle.write(data)
        _flush_and_sync(handle)


def _flush_and_sync(handle: object) -> None:
    handle.flush()  # type: ignore[attr-defined]
    os.fsync(handle.fileno())  # type: ignore[attr-defined]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
