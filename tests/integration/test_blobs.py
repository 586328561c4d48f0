"""The content-addressed blob store: staging, committing, and cleaning up after crashes."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway import foldersync
from gateway.blobs import BlobCorrupted, BlobStore, BlobTooLarge

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
    assert list((tmp_path / "tmp").rglob("*.part")) == []


async def test_an_upload_over_the_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    """Refused content is removed from staging."""
    blobs = BlobStore(tmp_path)

    with pytest.raises(BlobTooLarge):
        await blobs.stage(chunks_of(os.urandom(2 * MIB)), max_bytes=MIB)

    assert list((tmp_path / "tmp").rglob("*.part")) == []


def test_the_staging_folder_of_a_dead_process_is_removed_at_once(tmp_path: Path) -> None:
    """A staging folder nobody holds the lock of (its process died) goes with its uploads."""
    dead = BlobStore(tmp_path)
    upload = next(tmp_path.joinpath("tmp").iterdir()) / "half.part"
    upload.write_bytes(b"half an upload")
    del dead  # its lock is released, as the kernel does when a process is killed

    assert BlobStore(tmp_path).clean_staging() == 1
    assert not upload.exists()
    assert not upload.parent.exists()


def test_an_upload_of_a_live_process_survives_another_starting(tmp_path: Path) -> None:
    """Processes share the blob store: one starting must not delete another's live upload."""
    live = BlobStore(tmp_path)
    upload = next(tmp_path.joinpath("tmp").iterdir()) / "arriving.part"
    upload.write_bytes(b"arriving right now")

    assert BlobStore(tmp_path).clean_staging() == 0
    assert upload.exists()
    live.close()


def test_a_loose_old_upload_is_removed_and_a_fresh_one_kept(tmp_path: Path) -> None:
    """Uploads directly in tmp/ (older versions) go only after an hour without writes."""
    blobs = BlobStore(tmp_path)
    old, fresh = tmp_path / "tmp" / "old.part", tmp_path / "tmp" / "fresh.part"
    old.write_bytes(b"old")
    fresh.write_bytes(b"fresh")
    an_hour_ago = time.time() - 3601
    os.utime(old, (an_hour_ago, an_hour_ago))

    assert blobs.clean_staging() == 1
    assert (old.exists(), fresh.exists()) == (False, True)


def test_closing_a_store_removes_its_empty_staging_folder(tmp_path: Path) -> None:
    """A cleanly stopped process leaves no staging folder behind."""
    BlobStore(tmp_path).close()

    assert list((tmp_path / "tmp").iterdir()) == []


async def test_stored_content_lies_under_its_sha256_without_leftovers(tmp_path: Path) -> None:
    """``store`` writes content held in memory to its address and leaves no temporary file."""
    blobs = BlobStore(tmp_path)
    data = os.urandom(2_000)
    digest = hashlib.sha256(data).hexdigest()

    path = await blobs.store(data, digest)

    assert path == blobs.path(digest)
    assert path.read_bytes() == data
    assert list((tmp_path / "tmp").rglob("*.part")) == []


async def test_storing_the_same_content_twice_keeps_one_blob(tmp_path: Path) -> None:
    """Storing content that is already there leaves one complete blob under its address."""
    blobs = BlobStore(tmp_path)
    data = b"the same bytes"
    digest = hashlib.sha256(data).hexdigest()

    await blobs.store(data, digest)
    await blobs.store(data, digest)

    assert [p for p in (tmp_path / "sha256").rglob("*") if p.is_file()] == [blobs.path(digest)]
    assert blobs.path(digest).read_bytes() == data


async def test_a_failed_store_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (a full disk) removes its temporary file and publishes nothing."""
    blobs = BlobStore(tmp_path)
    data = b"never complete"
    digest = hashlib.sha256(data).hexdigest()

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        await blobs.store(data, digest)

    assert not blobs.path(digest).exists()
    assert list((tmp_path / "tmp").rglob("*.part")) == []


async def test_a_blob_in_new_folders_makes_each_new_folder_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blob's folder is fsync'd, then each folder made for it in its parent, innermost first."""
    synced: list[str] = []
    monkeypatch.setattr(foldersync, "shared", foldersync.FolderSync(synced.append))
    blobs = BlobStore(tmp_path)
    data = b"first of its prefix"
    digest = hashlib.sha256(data).hexdigest()

    await blobs.store(data, digest)

    addressed = tmp_path / "sha256"
    assert synced == [
        str(addressed / digest[:2] / digest[2:4]),
        str(addressed / digest[:2]),
        str(addressed),
    ]


def journal_copy(content: bytes) -> Callable[[str], Awaitable[bytes | None]]:
    """A stand-in for ``Journal.inline_content`` keeping just ``content``, under any digest."""

    async def lookup(sha256: str) -> bytes | None:
        return content

    return lookup


async def test_file_writes_the_journals_copy_to_its_address_once(tmp_path: Path) -> None:
    """The first reader gets the journal's bytes as a file; later ones find that file."""
    data = b"small message"
    digest = hashlib.sha256(data).hexdigest()
    store = BlobStore(tmp_path / "blobs", inline=journal_copy(data))

    first = await store.file(digest)
    again = await BlobStore(tmp_path / "blobs").file(digest)

    assert first == again == store.path(digest)
    assert first.read_bytes() == data


async def test_file_of_content_nobody_holds_is_its_address_without_a_file(tmp_path: Path) -> None:
    """Readers then fail with FileNotFoundError, which they report as a missing blob."""
    store = BlobStore(tmp_path / "blobs", inline=journal_copy_missing)

    path = await store.file("e" * 64)

    assert path == store.path("e" * 64) and not path.exists()


async def journal_copy_missing(sha256: str) -> bytes | None:
    """``Journal.inline_content`` for a blob the journal does not keep."""
    return None


async def test_file_refuses_a_journal_copy_that_does_not_match_its_sha256(tmp_path: Path) -> None:
    """Corrupted bytes never reach the blob's address."""
    store = BlobStore(tmp_path / "blobs", inline=journal_copy(b"other bytes"))
    digest = hashlib.sha256(b"the message").hexdigest()

    with pytest.raises(BlobCorrupted, match=digest):
        await store.file(digest)

    assert not store.path(digest).exists()
