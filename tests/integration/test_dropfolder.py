"""The drop folder with the real intake, a SQLite journal and the blob store, up to delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts.config import GatewayConfig
from contracts.journal import DeliveryState
from gateway.blobs import BlobStore
from gateway.destinations import build_destinations
from gateway.dropfolder import DropFolder, Outcome
from gateway.intake import Intake
from gateway.journal.store import Journal
from gateway.worker import Worker
from tests.delivery_support import abgabe, eventually, sha256


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """A migrated SQLite journal in tmp_path."""
    store = Journal.from_url(f"sqlite:///{tmp_path / 'journal.db'}")
    await store.upgrade()
    yield store
    await store.close()


@pytest.fixture
def config(tmp_path: Path) -> GatewayConfig:
    """Stadt Bestadt: Gemeinde Adorf drops files into inbox/, Abgaben go to the DMS folder."""
    (tmp_path / "inbox").mkdir()
    (tmp_path / "dms").mkdir()
    return GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-b", "behoerdenkennung": "060:4711"},
            "partners": [
                {"id": "kommune-a", "behoerdenkennung": "060:0815", "token_sha256": "0" * 64}
            ],
            "destinations": {"dms": {"type": "filesystem", "directory": str(tmp_path / "dms")}},
            "routes": [{"empfaenger": "060:4711", "destination": "dms"}],
            "dropfolders": [
                {
                    "directory": str(tmp_path / "inbox"),
                    "partner": "kommune-a",
                    "settle_seconds": 0,
                    "poll_interval_seconds": 0.02,
                }
            ],
            "worker": {"poll_interval_seconds": 0.02},
        }
    )


@pytest.fixture
def blobs(tmp_path: Path, journal: Journal) -> BlobStore:
    """An empty blob store (small messages are kept in the journal)."""
    return BlobStore(tmp_path / "blobs", inline=journal.inline_content)


@pytest.fixture
def folder(config: GatewayConfig, journal: Journal, blobs: BlobStore) -> DropFolder:
    """The drop folder feeding the real intake."""
    return DropFolder(config.dropfolders[0], config, Intake(config, journal, blobs))


async def test_dropped_container_is_journaled_then_moved(
    folder: DropFolder, journal: Journal, blobs: BlobStore
) -> None:
    """A valid Abgabe becomes a message of the partner, its bytes in the blob store."""
    message = abgabe()
    name = f"{message.prozess_id}_Abgabe.Abgabe.0401.zip"
    (folder.directory / name).write_bytes(message.container)

    (handled,) = await folder.scan()

    assert handled.outcome is Outcome.PROCESSED
    assert handled.message_id is not None
    view = await journal.get_message(handled.message_id)
    assert (view.partner_id, view.channel, view.file_name, view.prozess_id) == (
        "kommune-a",
        "dropfolder",
        name,
        message.prozess_id,
    )
    assert (await blobs.file(view.blob_sha256)).read_bytes() == message.container
    assert [p.name for p in folder.directory.iterdir()] == ["processed"]


async def test_invalid_file_is_refused_into_failed_with_findings(
    folder: DropFolder, journal: Journal
) -> None:
    """A message failing its schema lands in failed/ with the findings; nothing is journaled."""
    broken = abgabe().xml.replace(b"<xdomea:Kopf>", b"<xdomea:Kopf><xdomea:Unsinn/>", 1)
    (folder.directory / "broken.xml").write_bytes(broken)

    (handled,) = await folder.scan()

    assert handled.outcome is Outcome.FAILED
    report = (folder.failed / "broken.xml.error.txt").read_text(encoding="utf-8")
    assert "Invalid xdomea message (invalid-message, HTTP 422)" in report
    assert "Unsinn" in report
    assert "line " in report
    assert await journal.list_messages() == []


async def test_same_file_dropped_again_is_one_message(folder: DropFolder, journal: Journal) -> None:
    """The same bytes after a crash between commit and move are a duplicate, moved aside."""
    message = abgabe()
    name = f"{message.prozess_id}_Abgabe.Abgabe.0401.zip"
    (folder.directory / name).write_bytes(message.container)
    (first,) = await folder.scan()
    (folder.directory / name).write_bytes(message.container)

    (again,) = await folder.scan()

    assert again.message_id == first.message_id
    assert sorted(p.name for p in folder.processed.iterdir()) == [
        f"{message.prozess_id}_Abgabe.Abgabe.0401.1.zip",
        name,
    ]
    assert len(await journal.list_messages()) == 1


async def test_dropped_container_is_delivered_to_the_dms_bit_identical(
    config: GatewayConfig, folder: DropFolder, journal: Journal, blobs: BlobStore
) -> None:
    """From drop folder to transfer directory: the watcher and a worker, both running."""
    message = abgabe()
    (folder.directory / "abgabe.zip").write_bytes(message.container)
    destinations = build_destinations(config)
    worker = Worker(config, journal, blobs, destinations, worker_id="w1")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(folder.run(stop)), asyncio.create_task(worker.run(stop))]
    delivered = config.destinations["dms"].directory / (  # type: ignore[union-attr]
        f"{message.prozess_id}_Abgabe.Abgabe.0401.zip"
    )

    async def arrived() -> bool:
        messages = await journal.list_messages()
        return bool(messages) and messages[0].deliveries[0].state is DeliveryState.DELIVERED

    try:
        await eventually(arrived, what="delivered to the DMS")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    assert sha256(delivered.read_bytes()) == sha256(message.container)
    assert (folder.processed / "abgabe.zip").is_file()
