"""Removing blob files nothing refers to (``blobs prune``), on every backend."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from adapters.xta.msgbox import MsgBoxStore
from contracts.journal import NewMessage
from gateway import blob_prune
from gateway.blob_prune import BlobStoreInUse, prune
from gateway.blobs import BlobStore, BlobStoreBusy
from gateway.journal.store import Journal
from tests.delivery_support import put_blob
from tests.journal_support import journal_record


def referring(sha256: str, size: int) -> NewMessage:
    """A message whose content is the blob ``sha256``."""
    return journal_record(b"", blob_sha256=sha256, size=size, content_kind="container")


async def stored(root: Path, *contents: bytes) -> list[str]:
    """Write ``contents`` as blob files under ``root`` (the store closed again); their SHA-256."""
    blobs = BlobStore(root)
    try:
        return [await put_blob(blobs, data) for data in contents]
    finally:
        blobs.close()


def files(root: Path) -> set[str]:
    """The content files under ``root``, by name."""
    return {p.name for p in (root / "sha256").rglob("*") if p.is_file()}


async def test_files_no_message_refers_to_are_removed_and_the_others_kept(
    journal: Journal, tmp_path: Path
) -> None:
    """Only the content of a forgotten message goes; the report counts its bytes."""
    root = tmp_path / "blobs"
    kept, orphan = await stored(root, b"still referred to", b"nobody's any more")
    await journal.accept(referring(kept, 17), ["dms"])

    report = await prune(journal, root)

    assert report.removed == [orphan] and report.removed_bytes == len(b"nobody's any more")
    assert report.checked == 2
    assert files(root) == {kept}


async def test_a_file_an_xta_box_entry_refers_to_is_kept(
    journal: Journal, journal_url: str, tmp_path: Path
) -> None:
    """A message waiting in a box is read from its file when the partner fetches it."""
    root = tmp_path / "blobs"
    [waiting] = await stored(root, b"in the box")
    box = MsgBoxStore.from_url(journal_url)
    try:
        await box.put(
            "fachverfahren",
            message_id="m-1",
            blob_sha256=waiting,
            size=10,
            content_kind="message",
            file_name=None,
            nachrichtentyp="0401",
            prozess_id="p-1",
        )
    finally:
        await box.close()

    report = await prune(journal, root)

    assert report.removed == []
    assert files(root) == {waiting}


async def test_a_dry_run_removes_nothing(journal: Journal, tmp_path: Path) -> None:
    """It says what would go and leaves every file."""
    root = tmp_path / "blobs"
    [orphan] = await stored(root, b"orphan")

    report = await prune(journal, root, dry_run=True)

    assert report.removed == [orphan]
    assert files(root) == {orphan}


async def test_prune_refuses_while_a_store_is_open_on_the_folder(
    journal: Journal, tmp_path: Path
) -> None:
    """A running gateway may be about to refer to a file again: nothing is removed."""
    root = tmp_path / "blobs"
    [orphan] = await stored(root, b"orphan")
    running = BlobStore(root)
    try:
        with pytest.raises(BlobStoreInUse, match="stop every 'serve' using it"):
            await prune(journal, root)
    finally:
        running.close()

    assert files(root) == {orphan}


def test_a_store_does_not_open_while_a_prune_holds_the_folder(tmp_path: Path) -> None:
    """A gateway starting during a prune is refused with the reason, not let in halfway."""
    root = tmp_path / "blobs"
    BlobStore(root).close()
    held = blob_prune._exclusive(root)
    try:
        with pytest.raises(BlobStoreBusy, match="being pruned"):
            BlobStore(root)
    finally:
        os.close(held)

    BlobStore(root).close()  # and opens again once the prune is over


async def test_content_kept_only_in_the_journal_needs_no_file(
    journal: Journal, tmp_path: Path
) -> None:
    """A small message's content in the journal is not a file: the prune does not touch it."""
    data = b"<klein/>"
    sha = hashlib.sha256(data).hexdigest()
    await journal.accept(referring(sha, len(data)), ["dms"], content=data)

    report = await prune(journal, tmp_path / "blobs")

    assert report.checked == 0 and report.removed == []
    assert await journal.inline_content(sha) == data
