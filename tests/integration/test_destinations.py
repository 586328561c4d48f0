"""The destination adapters on real files and a real peer gateway stand-in on loopback."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from adapters.peer.http import PeerGateway
from adapters.transfer import filesystem
from adapters.transfer.filesystem import FilesystemTransfer
from contracts.config import FilesystemDestination, GatewayConfig, HttpDestination
from contracts.delivery import Outbound
from gateway import foldersync
from gateway.api import create_api
from gateway.blobs import BlobStore
from gateway.destinations import build_destinations
from gateway.durable import fsync_dir
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.foldersync import FolderSync
from gateway.journal.store import Journal
from tests import intake_support
from tests.delivery_support import (
    Abgabe,
    Receiver,
    abgabe,
    answer,
    outbound,
    problem,
    running_receiver,
    sha256,
)

TOKEN_ENV = "IKZ_TEST_TOKEN_TO_PEER"
TOKEN = "s3cret-token-for-the-peer"


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """An empty blob store."""
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def message() -> Abgabe:
    """A real Abgabe container."""
    return abgabe()


@pytest.fixture
def transfer_dir(tmp_path: Path) -> Path:
    """An existing, empty transfer directory."""
    path = tmp_path / "dms-inbox"
    path.mkdir()
    return path


def transfer(directory: Path, naming: str = "long") -> FilesystemTransfer:
    """A filesystem destination writing into ``directory``."""
    return FilesystemTransfer(
        "dms",
        FilesystemDestination(type="filesystem", directory=directory, naming=naming),  # type: ignore[arg-type]
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A peer gateway stand-in answering 202."""
    async with running_receiver() as running:
        yield running


@pytest.fixture
async def peer(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PeerGateway]:
    """An HTTP destination pointing at the receiver, with its token in the environment."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    gateway = PeerGateway(
        "kommune-b", HttpDestination(type="http", url=receiver.url, token_env=TOKEN_ENV)
    )
    yield gateway
    await gateway.close()


def corrupt(item: Outbound) -> None:
    """Flip one byte of the stored blob, as a failing disk would."""
    data = bytearray(item.blob_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    item.blob_path.chmod(0o644)
    item.blob_path.write_bytes(bytes(data))


def leftovers(directory: Path) -> list[str]:
    """Temporary files left in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# --------------------------------------------------------------------------- filesystem


async def test_container_lands_bit_identical_under_its_xdomea_name(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """The delivered container has the original bytes and the long xdomea name."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)

    await transfer(transfer_dir).deliver(item)

    delivered = transfer_dir / f"{message.prozess_id}_Abgabe.Abgabe.0401.zip"
    assert sha256(delivered.read_bytes()) == sha256(message.container)
    assert sorted(p.name for p in transfer_dir.iterdir()) == [delivered.name]


@pytest.mark.parametrize(
    ("naming", "suffix"),
    [("long", "_Abgabe.Abgabe.0401.zip"), ("numbered", "_0401_1.zip"), ("short", "_0401.zip")],
)
async def test_container_name_follows_the_configured_style(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path, naming: str, suffix: str
) -> None:
    """Each naming style gives the spelling importers of that style expect."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)

    await transfer(transfer_dir, naming).deliver(item)

    assert [p.name for p in transfer_dir.iterdir()] == [message.prozess_id + suffix]


async def test_bare_message_is_written_as_xml(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """A message without documents keeps its XML form and gets the .xml name."""
    item = await outbound(blobs, message.xml, prozess_id=message.prozess_id, kind="message")

    await transfer(transfer_dir).deliver(item)

    delivered = transfer_dir / f"{message.prozess_id}_Abgabe.Abgabe.0401.xml"
    assert delivered.read_bytes() == message.xml


async def test_redelivery_of_the_same_message_is_idempotent(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """Delivering a message again (after a crash) succeeds and leaves one identical file."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    destination = transfer(transfer_dir)

    await destination.deliver(item)
    await destination.deliver(item)

    assert [p.read_bytes() for p in transfer_dir.iterdir()] == [message.container]


async def test_different_message_under_a_taken_name_waits_for_the_importer(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """A not yet imported file is never overwritten by another message of the same name."""
    first = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    second = await outbound(blobs, abgabe().container, prozess_id=message.prozess_id)
    destination = transfer(transfer_dir)
    await destination.deliver(first)

    with pytest.raises(TransientDeliveryError, match="not been taken away yet"):
        await destination.deliver(second)

    assert [p.read_bytes() for p in transfer_dir.iterdir()] == [message.container]


def counting_folder_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the process's group folder fsync by one that records each fsync it runs."""
    synced: list[str] = []

    def fsync(folder: str) -> None:
        synced.append(folder)
        fsync_dir(folder)

    monkeypatch.setattr(foldersync, "shared", FolderSync(fsync))
    return synced


async def small_messages(blobs: BlobStore, count: int) -> list[tuple[Outbound, bytes]]:
    """``count`` distinct bare messages as outbound items, with their bytes."""
    made = []
    for _ in range(count):
        message = abgabe()
        item = await outbound(blobs, message.xml, prozess_id=message.prozess_id, kind="message")
        made.append((item, message.xml))
    return made


async def test_concurrent_small_deliveries_share_folder_fsyncs(
    blobs: BlobStore, transfer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small files handed over together are written as one batch with one folder fsync."""
    made = await small_messages(blobs, 6)
    synced = counting_folder_syncs(monkeypatch)
    destination = transfer(transfer_dir)  # concurrency 4: one thread writes the batches

    await asyncio.gather(*(destination.deliver(item) for item, _ in made))

    delivered = sorted(p.read_bytes() for p in transfer_dir.iterdir())
    assert delivered == sorted(data for _, data in made)
    # All six were handed over before the writer ran: one batch, one folder fsync.
    assert synced == [str(transfer_dir)]


async def test_in_a_batch_a_corrupted_message_fails_alone(
    blobs: BlobStore, transfer_dir: Path
) -> None:
    """One bad blob is refused; the others of its batch are delivered, no temp file stays."""
    made = await small_messages(blobs, 3)
    corrupt(made[1][0])
    destination = transfer(transfer_dir)

    results = await asyncio.gather(
        *(destination.deliver(item) for item, _ in made), return_exceptions=True
    )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], PermanentDeliveryError)
    assert sorted(p.read_bytes() for p in transfer_dir.iterdir()) == sorted(
        [made[0][1], made[2][1]]
    )


async def test_a_failing_folder_fsync_makes_the_small_delivery_transient(
    blobs: BlobStore, transfer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A linked file whose folder fsync failed is not counted as delivered."""

    def broken(folder: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    [(item, _)] = await small_messages(blobs, 1)
    monkeypatch.setattr(foldersync, "shared", FolderSync(broken))

    with pytest.raises(TransientDeliveryError, match="Input/output error"):
        await transfer(transfer_dir).deliver(item)
    assert leftovers(transfer_dir) == []


async def test_corrupted_blob_is_permanent_and_leaves_nothing(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """A blob whose bytes no longer match its SHA-256 is refused and no file appears."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    corrupt(item)

    with pytest.raises(PermanentDeliveryError, match="corrupted"):
        await transfer(transfer_dir).deliver(item)

    assert list(transfer_dir.iterdir()) == []


async def test_a_blob_longer_than_its_record_is_permanent_and_leaves_nothing(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """A small blob read in one piece still notices bytes beyond its recorded size."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    item.blob_path.chmod(0o644)
    item.blob_path.write_bytes(message.container + b"tail")

    with pytest.raises(PermanentDeliveryError, match="corrupted"):
        await transfer(transfer_dir).deliver(item)

    assert list(transfer_dir.iterdir()) == []


async def test_a_large_blob_is_copied_in_chunks_bit_identical(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob over ``SMALL_BLOB_BYTES`` is streamed and lands with the same bytes."""
    monkeypatch.setattr(filesystem, "SMALL_BLOB_BYTES", 0)
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)

    await transfer(transfer_dir).deliver(item)

    assert [p.read_bytes() for p in transfer_dir.iterdir()] == [message.container]


async def test_a_corrupted_large_blob_is_permanent_and_leaves_nothing(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed copy checks the SHA-256 as the one-piece copy does."""
    monkeypatch.setattr(filesystem, "SMALL_BLOB_BYTES", 0)
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    corrupt(item)

    with pytest.raises(PermanentDeliveryError, match="corrupted"):
        await transfer(transfer_dir).deliver(item)

    assert list(transfer_dir.iterdir()) == []


async def test_missing_directory_is_transient_and_not_created(
    blobs: BlobStore, message: Abgabe, tmp_path: Path
) -> None:
    """An absent transfer directory (share not mounted) is retried, never created."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    missing = tmp_path / "not-mounted"

    with pytest.raises(TransientDeliveryError, match="not-mounted"):
        await transfer(missing).deliver(item)

    assert not missing.exists()


async def test_unusable_directory_is_transient_and_leaves_no_part_file(
    blobs: BlobStore, message: Abgabe, tmp_path: Path
) -> None:
    """A transfer path that is no directory fails transiently without temporary files."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")

    with pytest.raises(TransientDeliveryError, match="check that it exists"):
        await transfer(not_a_directory).deliver(item)

    assert leftovers(tmp_path) == []


async def test_missing_blob_is_permanent(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """A blob gone from the store cannot be delivered by retrying."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    item.blob_path.unlink()

    with pytest.raises(PermanentDeliveryError, match="missing from the blob store"):
        await transfer(transfer_dir).deliver(item)

    assert list(transfer_dir.iterdir()) == []


async def test_prozess_id_cannot_escape_the_transfer_directory(
    blobs: BlobStore, message: Abgabe, transfer_dir: Path
) -> None:
    """A ProzessID with path separators is refused instead of naming another folder."""
    item = await outbound(blobs, message.container, prozess_id="../../etc/x")

    with pytest.raises(PermanentDeliveryError, match="safe file name"):
        await transfer(transfer_dir).deliver(item)

    assert list(transfer_dir.iterdir()) == []


# --------------------------------------------------------------------------- peer gateway


async def test_peer_receives_identical_bytes_with_headers(
    blobs: BlobStore, message: Abgabe, receiver: Receiver, peer: PeerGateway
) -> None:
    """The peer gets the container bytes, its type, the bearer token and the message id as key."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)

    await peer.deliver(item)

    (request,) = receiver.requests
    assert request.sha256 == sha256(message.container)
    assert request.headers["Content-Type"] == "application/zip"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == item.message_id


async def test_peer_receives_bare_message_as_xml(
    blobs: BlobStore, message: Abgabe, receiver: Receiver, peer: PeerGateway
) -> None:
    """A bare message goes out as application/xml."""
    item = await outbound(blobs, message.xml, prozess_id=message.prozess_id, kind="message")

    await peer.deliver(item)

    assert receiver.requests[0].headers["Content-Type"] == "application/xml"


async def test_redelivery_sends_the_same_idempotency_key(
    blobs: BlobStore, message: Abgabe, receiver: Receiver, peer: PeerGateway
) -> None:
    """A second attempt carries the first one's key, and the peer's 200 duplicate counts."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    receiver.script(answer(202), answer(200))

    await peer.deliver(item)
    await peer.deliver(item.model_copy(update={"attempt": 2}))

    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert keys == [item.message_id, item.message_id]


async def test_body_is_streamed_with_its_length_not_loaded(
    blobs: BlobStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 32 MiB blob goes out in pieces with Content-Length, never held in memory whole."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    data = os.urandom(1024 * 1024) * 32
    item = await outbound(blobs, data, prozess_id="5c0e4f0e-1d0b-4b5e-9d7e-0c1a2b3c4d5e")
    peer = PeerGateway(
        "kommune-b",
        HttpDestination(type="http", url=receiver.url, token_env=TOKEN_ENV),
        chunk_size=64 * 1024,
    )
    del data
    tracemalloc.start()
    try:
        await peer.deliver(item)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await peer.close()

    (request,) = receiver.requests
    assert (request.size, request.headers["Content-Length"]) == (item.size, str(item.size))
    assert "Transfer-Encoding" not in request.headers
    assert request.sha256 == item.blob_sha256
    assert request.pieces > 1
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
async def test_busy_or_failing_peer_is_transient(
    blobs: BlobStore, message: Abgabe, receiver: Receiver, peer: PeerGateway, status: int
) -> None:
    """Timeouts, rate limits and server errors at the peer are retried later."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    receiver.script(problem(status, "try later"))

    with pytest.raises(TransientDeliveryError, match=f"peer answered {status}"):
        await peer.deliver(item)


async def test_retry_after_hint_is_quoted(
    blobs: BlobStore, message: Abgabe, receiver: Receiver, peer: PeerGateway
) -> None:
    """The peer's Retry-After is kept in the error for the operator."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    receiver.script(problem(503, "maintenance", **{"Retry-After": "120"}))

    with pytest.raises(TransientDeliveryError, match="retry after 120"):
        await peer.deliver(item)


async def test_refusal_is_permanent_with_the_peers_detail(
    blobs: BlobStore, message: Abgabe, receiver: Receiver, peer: PeerGateway
) -> None:
    """A 4xx problem answer dead-letters with the peer's title and detail in the error."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    receiver.script(problem(422, "this gateway has no route for a 0401 message", title="No route"))

    with pytest.raises(PermanentDeliveryError) as caught:
        await peer.deliver(item)

    assert str(caught.value) == (
        "peer answered 422 Unprocessable Entity: No route: "
        "this gateway has no route for a 0401 message"
    )


async def test_unauthorised_is_permanent(
    blobs: BlobStore, message: Abgabe, receiver: Receiver, peer: PeerGateway
) -> None:
    """A refused token is not retried by itself (the operator fixes it and replays)."""
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    receiver.script(problem(401, "unknown token"))

    with pytest.raises(PermanentDeliveryError, match="401"):
        await peer.deliver(item)


async def test_unreachable_peer_is_transient(
    blobs: BlobStore, message: Abgabe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that refuses connections is retried later."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    peer = PeerGateway(
        "kommune-b",
        HttpDestination(
            type="http", url=f"http://127.0.0.1:{port}/v1/messages", token_env=TOKEN_ENV
        ),
    )
    try:
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            await peer.deliver(item)
    finally:
        await peer.close()


async def test_missing_token_is_permanent_and_sends_nothing(
    blobs: BlobStore,
    message: Abgabe,
    receiver: Receiver,
    peer: PeerGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without its token the destination names the variable and does not call the peer."""
    monkeypatch.delenv(TOKEN_ENV)
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)

    with pytest.raises(PermanentDeliveryError, match=TOKEN_ENV):
        await peer.deliver(item)

    assert receiver.requests == []


async def test_corrupted_blob_never_reaches_the_peer_complete(
    blobs: BlobStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last chunk of a corrupted blob is withheld, so the peer never gets a whole body."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    item = await outbound(blobs, os.urandom(300 * 1024), prozess_id="p-1")
    corrupt(item)
    peer = PeerGateway(
        "kommune-b",
        HttpDestination(type="http", url=receiver.url, token_env=TOKEN_ENV),
        chunk_size=64 * 1024,
    )
    try:
        with pytest.raises(PermanentDeliveryError, match="corrupted"):
            await peer.deliver(item)
    finally:
        await peer.close()

    assert receiver.requests == []


# --------------------------------------------------------------------------- real peer API


@pytest.fixture
async def kommune_b(tmp_path: Path) -> AsyncIterator[tuple[Journal, str]]:
    """Kommune B's real HTTP API on loopback, over its own SQLite journal; journal and URL."""
    config = intake_support.gateway_config(tmp_path / "kommune-b")
    journal = Journal.from_url(config.storage.journal)
    await journal.upgrade()
    server = TestServer(create_api(config, journal, BlobStore(config.storage.blobs)))
    await server.start_server()
    try:
        yield journal, str(server.make_url("/v1/messages"))
    finally:
        await server.close()
        await journal.close()


def peer_of(url: str, monkeypatch: pytest.MonkeyPatch) -> PeerGateway:
    """Kommune A's destination for Kommune B, with A's token."""
    monkeypatch.setenv(TOKEN_ENV, intake_support.TOKEN_A)
    return PeerGateway("kommune-b", HttpDestination(type="http", url=url, token_env=TOKEN_ENV))


async def test_real_peer_journals_the_message_once_across_redeliveries(
    blobs: BlobStore,
    message: Abgabe,
    kommune_b: tuple[Journal, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The peer gateway's API accepts the container, and a redelivery is the same message."""
    journal, url = kommune_b
    item = await outbound(blobs, message.container, prozess_id=message.prozess_id)
    peer = peer_of(url, monkeypatch)
    try:
        await peer.deliver(item)
        await peer.deliver(item.model_copy(update={"attempt": 2}))
    finally:
        await peer.close()

    (received,) = await journal.list_messages()
    assert (received.prozess_id, received.blob_sha256) == (message.prozess_id, item.blob_sha256)


async def test_real_peer_refusal_carries_its_detail(
    blobs: BlobStore,
    kommune_b: tuple[Journal, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A message the peer cannot route is a permanent failure quoting the peer's reason."""
    _, url = kommune_b
    data = intake_support.container(tmp_path, empfaenger=intake_support.NOBODY)
    item = await outbound(blobs, data, prozess_id="x")
    peer = peer_of(url, monkeypatch)
    try:
        with pytest.raises(PermanentDeliveryError, match=r"422.*no route for a 0401 message"):
            await peer.deliver(item)
    finally:
        await peer.close()


# --------------------------------------------------------------------------- factory


def test_factory_maps_each_configured_type_to_its_adapter(tmp_path: Path) -> None:
    """Every configured destination gets the adapter of its type, under its name."""
    config = GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-b", "behoerdenkennung": "060:4711"},
            "destinations": {
                "dms": {"type": "filesystem", "directory": str(tmp_path)},
                "kommune-c": {
                    "type": "http",
                    "url": "http://127.0.0.1:9/v1/messages",
                    "token_env": TOKEN_ENV,
                },
            },
        }
    )

    built = build_destinations(config)

    assert {name: type(d) for name, d in built.items()} == {
        "dms": FilesystemTransfer,
        "kommune-c": PeerGateway,
    }
