"""The DMS objects a ``dms`` destination files are recorded with the delivery and listed.

Real journals (SQLite and PostgreSQL), a real worker, the filesystem DMS and the
dmsin simulator on loopback. The recorded addresses are checked against what the
DMS itself holds, the recorded SHA-256 against the sent documents.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from adapters.dms import dmsin_names as names
from adapters.dms.destination import DmsImport
from contracts.builders import AkteSpec
from contracts.config import GatewayConfig
from contracts.delivery import Destination, DmsObject
from contracts.journal import DeliveryState, NewMessage
from contracts.processes import DmsObjectEntry
from contracts.xdomea import uuid_key
from gateway.api import create_api
from gateway.blobs import BlobStore
from gateway.config import token_digest
from gateway.destinations import build_destinations
from gateway.journal.store import Journal, SqliteJournal
from gateway.journal.tables import events
from gateway.processes import status as process_status
from gateway.worker import Worker
from tests.delivery_support import eventually, outbound, put_blob
from tests.dms_support import (
    Behaelter,
    all_specs,
    container,
    dmsin_destination,
    filesystem_destination,
    kleine_akte,
    running_sim,
)
from tests.integration.test_journal import LEASE, new_message

OPERATOR_TOKEN = "operator-token-of-kommune-b"
TOKEN_A = "a-token-only-kommune-a-knows-0815"


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """An empty blob store."""
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def akte() -> AkteSpec:
    """The Akte Kommune A gives away (Akte > Vorgang > two Dokumente, three files)."""
    return kleine_akte()


@pytest.fixture
def sent(tmp_path: Path, pdf_bytes: bytes, akte: AkteSpec) -> Behaelter:
    """Kommune A's 0401 container of ``akte``."""
    return container(tmp_path / "out", [akte], pdf_bytes)


def settings(tmp_path: Path) -> GatewayConfig:
    """Kommune B: a ``dms`` destination ``dms-b`` and a transfer folder ``inbox``."""
    (tmp_path / "inbox").mkdir(exist_ok=True)
    return GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-b", "behoerdenkennung": "060:4711"},
            "operator": {"token_sha256": token_digest(OPERATOR_TOKEN)},
            "partners": [
                {
                    "id": "kommune-a",
                    "behoerdenkennung": "060:0815",
                    "token_sha256": token_digest(TOKEN_A),
                }
            ],
            "destinations": {
                "dms-b": {
                    "type": "dms",
                    "backend": "filesystem",
                    "directory": str(tmp_path / "dms"),
                },
                "inbox": {"type": "filesystem", "directory": str(tmp_path / "inbox")},
            },
            "worker": {"poll_interval_seconds": 0.02, "lease_seconds": 30},
        }
    )


async def accept(journal: Journal, blobs: BlobStore, sent: Behaelter, destination: str) -> str:
    """Journal A's 0401 for ``destination``; its message id."""
    accepted = await journal.accept(
        NewMessage(
            partner_id="kommune-a",
            channel="http",
            idempotency_key=None,
            blob_sha256=await put_blob(blobs, sent.data),
            size=len(sent.data),
            content_kind="container",
            file_name=None,
            prozess_id=sent.prozess_id,
            nachrichtentyp="0401",
            message_element="Abgabe.Abgabe.0401",
            xdomea_version="3.1.0",
            absender="060:0815",
            empfaenger="060:4711",
        ),
        [destination],
    )
    return accepted.message_id


async def deliver(
    journal: Journal,
    blobs: BlobStore,
    config: GatewayConfig,
    message_id: str,
    name: str,
    destination: Destination,
) -> None:
    """Run a worker over ``destination`` until the message is delivered to it."""
    worker = Worker(
        config,
        journal,
        blobs,
        {name: destination},
        worker_id="w1",
        grace_seconds=30.0,
        journal_backoff_max_seconds=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def delivered() -> bool:
        view = await journal.get_message(message_id)
        return all(d.state is DeliveryState.DELIVERED for d in view.deliveries)

    try:
        await eventually(delivered, what=f"{message_id} delivered to {name}")
    finally:
        stop.set()
        await task


async def assert_recorded_as_filed(
    recorded: list[DmsObjectEntry], destination: DmsImport, sent: Behaelter, akte: AkteSpec
) -> None:
    """Every object of the Akte once, at an address the DMS holds it under, hashes as sent."""
    expected = sorted(uuid_key(spec.uuid) for spec in all_specs([akte]))
    assert sorted(uuid_key(entry.uuid) for entry in recorded) == expected
    contents: dict[str, str] = {}
    for entry in recorded:
        held = await destination.port.read(entry.adresse)
        assert uuid_key(held.daten.uuid) == uuid_key(entry.uuid)
        assert held.daten.art.value == entry.art
        assert sorted(i.dateiname for i in held.inhalte) == sorted(
            i.dateiname for i in entry.inhalte
        )
        contents.update({i.dateiname: i.sha256 for i in entry.inhalte})
    assert contents == sent.documents
    assert {entry.art for entry in recorded} == {"Akte", "Vorgang", "Dokument"}


async def test_filesystem_dms_import_records_every_object_with_address_and_sha256(
    journal: Journal, blobs: BlobStore, sent: Behaelter, tmp_path: Path, akte: AkteSpec
) -> None:
    """The worker records each object the filesystem DMS import created, with its address and hashes."""
    config = settings(tmp_path)
    destination = filesystem_destination(tmp_path / "dms")
    message_id = await accept(journal, blobs, sent, "dms-b")

    await deliver(journal, blobs, config, message_id, "dms-b", destination)

    recorded = await journal.dms_objects([message_id])
    assert {(e.status, e.destination, e.message_id) for e in recorded} == {
        ("created", "dms-b", message_id)
    }
    assert all(i.status == "created" for e in recorded for i in e.inhalte)
    await assert_recorded_as_filed(recorded, destination, sent, akte)


async def test_dmsin_import_records_every_object_with_the_simulator_addresses(
    journal: Journal, blobs: BlobStore, sent: Behaelter, tmp_path: Path, akte: AkteSpec
) -> None:
    """Through the dmsin simulator, the recorded addresses and hashes are the simulator's."""
    config = settings(tmp_path)
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)
        message_id = await accept(journal, blobs, sent, "dms-b")
        try:
            await deliver(journal, blobs, config, message_id, "dms-b", destination)
            recorded = await journal.dms_objects([message_id])
            await assert_recorded_as_filed(recorded, destination, sent, akte)
        finally:
            await destination.close()
        held = {o["address"]: o for o in await sim.objects()}

    assert all(e.status == "created" for e in recorded)
    for entry in recorded:
        assert uuid_key(held[entry.adresse]["userforms"]["xdomea_uuid"]) == uuid_key(entry.uuid)
    stored = {
        f"{o['fields']['filename']}.{o['fields']['fileextension']}": o["sha256"]
        for o in held.values()
        if o["objclass"] == names.INHALT
    }
    assert {i.dateiname: i.sha256 for e in recorded for i in e.inhalte} == stored


async def test_reimport_after_a_lost_outcome_records_found_not_created(
    journal: Journal, blobs: BlobStore, sent: Behaelter, tmp_path: Path, akte: AkteSpec
) -> None:
    """An attempt that filed everything but was never recorded is followed by one recording ``found``."""
    config = settings(tmp_path)
    destination = filesystem_destination(tmp_path / "dms")
    message_id = await accept(journal, blobs, sent, "dms-b")
    # The earlier attempt: the DMS has it all, the journal knows nothing (crash before complete).
    first = await destination.import_message(
        await outbound(blobs, sent.data, prozess_id=sent.prozess_id)
    )

    await deliver(journal, blobs, config, message_id, "dms-b", destination)

    recorded = await journal.dms_objects([message_id])
    assert [e.status for e in recorded] == ["found"] * len(first.objekte)
    assert all(i.status == "found" for e in recorded for i in e.inhalte)
    assert {e.uuid: e.adresse for e in recorded} == first.adressen
    await assert_recorded_as_filed(recorded, destination, sent, akte)


async def test_process_status_lists_the_filed_objects(
    journal: Journal, blobs: BlobStore, sent: Behaelter, tmp_path: Path, akte: AkteSpec
) -> None:
    """B's process view of the Abgabe lists the objects its DMS import filed."""
    config = settings(tmp_path)
    destination = filesystem_destination(tmp_path / "dms")
    message_id = await accept(journal, blobs, sent, "dms-b")
    await deliver(journal, blobs, config, message_id, "dms-b", destination)

    views = await journal.process(sent.prozess_id)
    status = await process_status(config, journal, blobs, sent.prozess_id, views)

    assert status.dms_objects == tuple(await journal.dms_objects([message_id]))
    assert len(status.dms_objects) == len(all_specs([akte]))
    [delivered] = views[0].deliveries
    assert all(e.at == delivered.finished_at for e in status.dms_objects)


async def test_operator_sees_the_objects_and_the_sending_partner_does_not(
    journal: Journal, blobs: BlobStore, sent: Behaelter, tmp_path: Path
) -> None:
    """``GET /v1/processes/ID`` lists the DMS objects to B's operator, none to A (the sender)."""
    config = settings(tmp_path)
    message_id = await accept(journal, blobs, sent, "dms-b")
    destination = filesystem_destination(tmp_path / "dms")
    await deliver(journal, blobs, config, message_id, "dms-b", destination)
    recorded = await journal.dms_objects([message_id])

    async with TestClient(TestServer(create_api(config, journal, blobs))) as client:
        shown = {}
        for who, token in (("operator", OPERATOR_TOKEN), ("kommune-a", TOKEN_A)):
            response = await client.get(
                f"/v1/processes/{sent.prozess_id}", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status == 200, await response.text()
            shown[who] = await response.json()

    assert [o["adresse"] for o in shown["operator"]["dms_objects"]] == [e.adresse for e in recorded]
    assert [m["id"] for m in shown["kommune-a"]["messages"]] == [message_id]
    assert shown["kommune-a"]["dms_objects"] == []


async def test_transfer_folder_delivery_records_no_dms_objects(
    journal: Journal, blobs: BlobStore, sent: Behaelter, tmp_path: Path
) -> None:
    """A delivery into a transfer folder keeps its event as before: no DMS objects."""
    config = settings(tmp_path)
    [inbox] = [d for n, d in build_destinations(config).items() if n == "inbox"]
    message_id = await accept(journal, blobs, sent, "inbox")

    await deliver(journal, blobs, config, message_id, "inbox", inbox)

    assert await journal.dms_objects([message_id]) == []
    details = await _event_details(journal, message_id)
    assert [set(d) for d in details] == [{"destination", "attempt"}]


async def _event_details(journal: Journal, message_id: str) -> list[dict[str, Any]]:
    """The JSON details of the message's ``delivery_delivered`` events."""
    query = select(events.c.detail).where(
        events.c.message_id == message_id, events.c.kind == "delivery_delivered"
    )
    rows = await journal._read(lambda conn: conn.execute(query).all())
    return [json.loads(row.detail) for row in rows]


async def test_recording_dms_objects_costs_no_extra_statement(journal: Journal) -> None:
    """Completing a delivery with DMS objects runs the same SQL statements as one without."""
    for index in range(3):
        await journal.accept(
            new_message(prozess_id=f"0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F{index}"), ["dms-b"]
        )
    warm_up, without, with_objects = await journal.claim("w1", limit=3, lease=LEASE)
    await journal.complete(warm_up, "w1", imported={})
    objekt = DmsObject(uuid="u-1", art="Akte", adresse="COO.1.2", status="created")
    statements: dict[str, list[str]] = {}
    for name, claim, objects in (("without", without, ()), ("with", with_objects, (objekt,))):
        with _statements_run(journal) as seen:
            await journal.complete(claim, "w1", imported={}, dms_objects=objects)
        statements[name] = seen

    assert statements["with"] == statements["without"] != []
    assert [e.adresse for e in await journal.dms_objects([with_objects.message_id])] == ["COO.1.2"]


@contextmanager
def _statements_run(journal: Journal) -> Iterator[list[str]]:
    """The first words of each SQL statement the journal runs in the block.

    SQLite's hot path runs on the driver (``sqlite_statements``), past SQLAlchemy's
    events, so there the driver's trace callback sees them; elsewhere the events do.
    """
    seen: list[str] = []

    def record(sql: str) -> None:
        seen.append(" ".join(sql.split()[:3]))

    if isinstance(journal, SqliteJournal):
        fairy = journal._writer.raw_connection()
        driver = fairy.driver_connection
        assert driver is not None
        driver.set_trace_callback(record)
        try:
            yield seen
        finally:
            driver.set_trace_callback(None)
            fairy.close()
        return

    def listener(*args: Any) -> None:
        record(args[2])  # the statement's SQL text

    event.listen(Engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
