"""Removing blob files nothing refers to any more (``ikz-gateway blobs prune``).

After ``db purge`` forgot finished processes, their content files stay in the
blob store. Removing them while a gateway runs is not safe: intake that finds a
file with identical content already there does not write it again, and commits a
message referring to it a moment later. So a prune runs only while no blob store
is open on the folder, in any process: every open store holds
``blobs.PRUNE_LOCK`` shared, the prune takes it exclusively (or refuses), and no
store opens until the prune has finished.

Every file under ``sha256/`` is looked up in the journal (messages and XTA box
entries) in batches; the ones nothing refers to are deleted. Staging folders are
left to ``BlobStore.clean_staging``.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gateway.blobs import take_prune_lock
from gateway.errors import GatewayError
from gateway.journal.store import Journal

_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Files looked up in the journal per query.
BATCH = 500


class BlobStoreInUse(GatewayError):
    """A blob store is open on the folder, so its files cannot be pruned now."""

    kind = "blob-store-in-use"


@dataclass
class PruneReport:
    """What a prune removed (or, in a dry run, would remove)."""

    dry_run: bool
    checked: int = 0
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0


async def prune(journal: Journal, root: Path, *, dry_run: bool = False) -> PruneReport:
    """Delete the files under ``root/sha256`` that no journal entry refers to.

    Raises:
        BlobStoreInUse: a gateway (or another command) has a store open on ``root``.
    """
    lock = _exclusive(root)
    try:
        report = PruneReport(dry_run=dry_run)
        for folder in await asyncio.to_thread(_subfolders, root / "sha256"):
            files = await asyncio.to_thread(_content_files, folder)
            for start in range(0, len(files), BATCH):
                await _prune_batch(journal, files[start : start + BATCH], report)
        return report
    finally:
        os.close(lock)


async def _prune_batch(journal: Journal, batch: list[Path], report: PruneReport) -> None:
    report.checked += len(batch)
    kept = await journal.referenced_contents([path.name for path in batch])
    for path in batch:
        if path.name in kept:
            continue
        size = await asyncio.to_thread(_size, path)
        if size is None:
            continue
        if not report.dry_run:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        report.removed.append(path.name)
        report.removed_bytes += size


def _exclusive(root: Path) -> int:
    """Hold the prune lock exclusively; its descriptor."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        fd = take_prune_lock(root, exclusive=True)
    except BlockingIOError:
        raise BlobStoreInUse(
            f"the blob store {root} is in use (a running gateway or command has it open); "
            "stop every 'serve' using it, then run 'ikz-gateway blobs prune' again"
        ) from None
    if fd is None:  # pragma: no cover - Windows
        raise BlobStoreInUse("pruning blob files needs flock, which this system lacks")
    return fd


def _subfolders(addressed: Path) -> list[Path]:
    """The ``sha256/ab`` folders (the store's first level)."""
    if not addressed.is_dir():
        return []
    return sorted(p for p in addressed.iterdir() if p.is_dir())


def _content_files(first: Path) -> list[Path]:
    """Every ``ab/cd/<digest>`` file below one first-level folder, by the store's layout."""
    found: list[Path] = []
    for second in sorted(first.iterdir()):
        if second.is_dir():
            found.extend(
                path
                for path in sorted(second.iterdir())
                if _SHA256.fullmatch(path.name) and path.is_file()
            )
    return found


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None
