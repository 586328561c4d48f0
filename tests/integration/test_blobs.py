"""The content-addressed blob store: staging, committing, and cleaning up after crashes."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.blobs import BlobStore, BlobTooLarge

MIB = 1024 * 1024


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``data`` as an upload arrives: in chunks."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [0, 2_000, MIB - 1, MIB, 3 * MIB + 5])
async def test_committed_content_lies_under_its_sha256(tmp_path: Path, size: int) -> None:
    """Small uploads (one write) and large ones (streamed) end up identical under their hash."""
    blobs = BlobStore(tmp_path)
    data = os.urandom(size)

    staged = await blobs.stage(chunks_of(data), max_bytes=10 * MIB)
    path = await blobs.commit(staged)

    digest = hashlib.sha256(data).hexdigest()
    assert (staged.sha256, staged.size) == (digest, size)
    assert path == blobs.path(digest)
    assert path.read_bytes() == data
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_an_upload_over_the_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    """Refused content is removed from staging."""
    blobs = BlobStore(tmp_path)

    with pytest.raises(BlobTooLarge):
        await blobs.stage(chunks_of(os.urandom(2 * MIB)), max_bytes=MIB)

    assert list((tmp_path / "tmp").iterdir()) == []


def test_staging_leftovers_of_a_dead_process_are_removed(tmp_path: Path) -> None:
    """An upload nobody wrote to for longer than the idle limit is a crash's leftover."""
    blobs = BlobStore(tmp_path)
    leftover = tmp_path / "tmp" / "dead.part"
    leftover.write_bytes(b"half an upload")
    an_hour_ago = time.time() - 3601
    os.utime(leftover, (an_hour_ago, an_hour_ago))

    assert blobs.clean_staging() == 1
    assert not leftover.exists()


def test_an_upload_still_being_written_survives_a_starting_process(tmp_path: Path) -> None:
    """Processes share the blob store: one starting must not delete another's live upload."""
    blobs = BlobStore(tmp_path)
    live = tmp_path / "tmp" / "live.part"
    live.write_bytes(b"arriving right now")

    assert BlobStore(tmp_path).clean_staging() == 0
    assert live.exists()
    assert blobs.clean_staging(idle_seconds=0) == 1
