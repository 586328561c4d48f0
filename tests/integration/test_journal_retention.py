"""Forgetting finished processes (``db purge``), on every backend."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from adapters.xta.msgbox import MsgBoxStore, box_message_id
from contracts.config import RetentionConfig
from contracts.journal import NewMessage, ReceiptState
from gateway.journal.store import Journal, utcnow
from gateway.journal.tables import inline_blobs, messages
from gateway.retention import run_periodically
from tests.journal_support import journal_record

OWN = "060:4711"
PARTNER = "060:0815"
LEASE = timedelta(seconds=30)


def new_message(prozess_id: str, typ: str = "0401", *, absender: str = PARTNER) -> NewMessage:
    """A small message of ``prozess_id`` with content of its own (see ``content``)."""
    return journal_record(
        content(prozess_id, typ),
        prozess_id=prozess_id,
        nachrichtentyp=typ,
        message_element=f"Nachricht.{typ}",
        absender=absender,
        empfaenger=OWN if absender != OWN else PARTNER,
    )


def content(prozess_id: str, typ: str) -> bytes:
    """The bytes the journal keeps for that message."""
    return f"<nachricht prozess='{prozess_id}' typ='{typ}'/>".encode()


async def accept(
    journal: Journal,
    prozess_id: str,
    typ: str = "0401",
    *,
    absender: str = PARTNER,
    **options: object,
) -> str:
    """Journal one message for destination ``dms`` with its content kept in the journal."""
    accepted = await journal.accept(
        new_message(prozess_id, typ, absender=absender),
        ["dms"],
        content=content(prozess_id, typ),
        **options,  # type: ignore[arg-type]
    )
    return accepted.message_id


async def deliver_all(journal: Journal) -> None:
    """Claim and complete every due delivery."""
    for claim in await journal.claim("w1", limit=100, lease=LEASE):
        await journal.complete(claim, "w1")


def later() -> datetime:
    """A cutoff after everything the test did: every finished process is old enough."""
    return utcnow() + timedelta(seconds=1)


async def purge(journal: Journal, cutoff: datetime) -> list[str]:
    """What ``db purge`` does: the finished processes, each forgotten in its transaction."""
    purged = []
    for key in await journal.finished_processes(own_kennung=OWN, cutoff=cutoff):
        result = await journal.purge_process(key, own_kennung=OWN, cutoff=cutoff)
        if result is not None:
            purged.append(result.prozess_id)
    return purged


@pytest.fixture
def prozess_id() -> str:
    """A fresh ProzessID."""
    return str(uuid.uuid4())


async def test_a_delivered_process_older_than_the_cutoff_is_forgotten(
    journal: Journal, prozess_id: str
) -> None:
    """Its messages, deliveries and kept content are gone; the report says what went."""
    message_id = await accept(journal, prozess_id)
    await deliver_all(journal)
    cutoff = later()

    [key] = await journal.finished_processes(own_kennung=OWN, cutoff=cutoff)
    purged = await journal.purge_process(key, own_kennung=OWN, cutoff=cutoff)

    assert purged is not None
    assert (purged.prozess_id, purged.messages) == (prozess_id, 1)
    assert purged.content_bytes == len(content(prozess_id, "0401"))
    assert purged.unreferenced_blobs == (new_message(prozess_id).blob_sha256,)
    assert await journal.process(prozess_id) == []
    assert await journal.list_messages() == []
    assert await journal.inline_content(new_message(prozess_id).blob_sha256) is None
    assert message_id not in {m.id for m in await journal.list_messages()}


async def test_a_process_with_activity_after_the_cutoff_is_kept(
    journal: Journal, prozess_id: str
) -> None:
    """The cutoff is about the newest thing in the process, not the oldest."""
    await accept(journal, prozess_id)
    await deliver_all(journal)

    assert await purge(journal, utcnow() - timedelta(days=1)) == []
    assert len(await journal.process(prozess_id)) == 1


async def test_a_pending_delivery_keeps_its_process(journal: Journal, prozess_id: str) -> None:
    """What the gateway still has to deliver is never forgotten."""
    await accept(journal, prozess_id)

    assert await purge(journal, later()) == []


async def test_a_dead_letter_keeps_its_process(journal: Journal, prozess_id: str) -> None:
    """A dead letter waits for its operator, however old it is."""
    await accept(journal, prozess_id)
    [claim] = await journal.claim("w1", limit=1, lease=LEASE)
    await journal.dead_letter(claim, "w1", "refused by the DMS")

    assert await purge(journal, later()) == []


async def test_a_receipt_still_owed_keeps_its_process(journal: Journal, prozess_id: str) -> None:
    """The 0402 this gateway owes must still be produced from the journal."""
    await accept(journal, prozess_id, receipts={"0402": ReceiptState.PENDING})
    await deliver_all(journal)

    assert await purge(journal, later()) == []


async def test_an_abgabe_this_node_sent_waits_for_its_import_confirmation(
    journal: Journal, prozess_id: str
) -> None:
    """Without the partner's 0402 the process is open; with it, it is finished."""
    await accept(journal, prozess_id, "0401", absender=OWN)
    await deliver_all(journal)
    assert await purge(journal, later()) == []

    await accept(journal, prozess_id, "0402", absender=PARTNER)
    await deliver_all(journal)

    assert await purge(journal, later()) == [prozess_id]


async def test_an_aussonderung_waits_for_the_archives_import_confirmation(
    journal: Journal, prozess_id: str
) -> None:
    """A 0501 without a 0506 is kept: the archive may still answer."""
    await accept(journal, prozess_id, "0501", absender=OWN)
    await accept(journal, prozess_id, "0504", absender=PARTNER)
    await deliver_all(journal)
    assert await purge(journal, later()) == []

    await accept(journal, prozess_id, "0506", absender=PARTNER)
    await deliver_all(journal)

    assert await purge(journal, later()) == [prozess_id]


async def test_an_aussonderung_that_ended_without_archiving_is_finished(
    journal: Journal, prozess_id: str
) -> None:
    """A 0502 taken by the engine with no 0503 after it: the archive wanted nothing."""
    await accept(journal, prozess_id, "0501", absender=OWN)
    await accept(journal, prozess_id, "0502", absender=PARTNER)
    await deliver_all(journal)

    assert await purge(journal, later()) == [prozess_id]


async def test_an_aussonderung_whose_0503_is_not_confirmed_is_kept(
    journal: Journal, prozess_id: str
) -> None:
    """After the 0502 the 0503 went out: the process waits for the 0506."""
    await accept(journal, prozess_id, "0501", absender=OWN)
    await accept(journal, prozess_id, "0502", absender=PARTNER)
    await accept(journal, prozess_id, "0503", absender=OWN)
    await deliver_all(journal)

    assert await purge(journal, later()) == []


async def test_content_another_process_refers_to_is_kept(journal: Journal) -> None:
    """Identical content is kept once: forgetting one process leaves the other's bytes."""
    first, second = new_message("p-first"), new_message("p-second")
    shared = b"<same-bytes/>"
    sha = hashlib.sha256(shared).hexdigest()
    for message in (first, second):
        update = {"blob_sha256": sha, "size": len(shared)}
        await journal.accept(message.model_copy(update=update), ["dms"], content=shared)
    await deliver_all(journal)
    cutoff = later()
    await accept(journal, "p-second", "0402", absender=OWN)  # keeps p-second open (recent)

    purged = await journal.purge_process("p-first", own_kennung=OWN, cutoff=cutoff)

    assert purged is not None and purged.unreferenced_blobs == () and purged.content_bytes == 0
    assert await journal.inline_content(sha) == shared


async def test_the_prozess_id_is_compared_case_insensitively(journal: Journal) -> None:
    """Messages whose ProzessIDs differ in case are one process and go together."""
    await accept(journal, "ABC-1", "0401")
    await accept(journal, "abc-1", "0402")
    await deliver_all(journal)

    assert await purge(journal, later()) == ["ABC-1"]
    assert await journal.list_messages() == []


async def test_a_process_that_got_a_new_message_meanwhile_is_not_deleted(
    journal: Journal, prozess_id: str
) -> None:
    """The deleting transaction checks again: a message after the listing keeps the process."""
    await accept(journal, prozess_id)
    await deliver_all(journal)
    cutoff = later()
    [key] = await journal.finished_processes(own_kennung=OWN, cutoff=cutoff)
    await accept(journal, prozess_id, "0403")  # pending, arrived after the listing

    assert await journal.purge_process(key, own_kennung=OWN, cutoff=cutoff) is None
    assert len(await journal.process(prozess_id)) == 2


async def test_postgres_purge_waits_for_an_accept_of_the_same_content(postgres_url: str) -> None:
    """An accept that found the content row and commits its message later keeps the content.

    Without the purge's lock, the purge would look for references before that
    accept commits, delete the content, and the new message would have none.
    """
    journal = Journal.from_url(postgres_url)
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        await accept(journal, "p-old")
        await deliver_all(journal)
        cutoff = later()
        data = content("p-old", "0401")
        sha = hashlib.sha256(data).hexdigest()
        resent = new_message("p-new").model_copy(update={"blob_sha256": sha, "size": len(data)})
        with engine.connect() as other:
            # The other accept, halfway: content row written (it was there), message inserted.
            other.execute(
                pg_insert(inline_blobs).values(sha256=sha, content=data).on_conflict_do_nothing()
            )
            other.execute(insert(messages).values(message_row(resent)))
            purging = asyncio.create_task(
                journal.purge_process("p-old", own_kennung=OWN, cutoff=cutoff)
            )
            await asyncio.sleep(0.5)
            assert not purging.done(), "the purge did not wait for the accept in flight"
            other.commit()
        purged = await purging

        assert purged is not None and purged.unreferenced_blobs == ()
        assert await journal.inline_content(sha) == data
    finally:
        engine.dispose()
        await journal.close()


def message_row(message: NewMessage) -> dict[str, object]:
    """The ``messages`` row ``accept`` writes for ``message``."""
    return {
        "id": str(uuid.uuid4()),
        "received_at": utcnow(),
        "dedup_key": message.dedup_key,
        **message.model_dump(),
    }


async def test_a_message_waiting_in_an_xta_box_keeps_its_process(
    journal: Journal, journal_url: str, prozess_id: str
) -> None:
    """Delivered into a box is not yet fetched: the process goes once the partner closed it."""
    message_id = await accept(journal, prozess_id)
    await deliver_all(journal)
    box = MsgBoxStore.from_url(journal_url)
    try:
        message = new_message(prozess_id)
        await box.put(
            "fachverfahren",
            message_id=message_id,
            blob_sha256=message.blob_sha256,
            size=message.size,
            content_kind="message",
            file_name=None,
            nachrichtentyp="0401",
            prozess_id=prozess_id,
        )
        assert await purge(journal, later()) == []

        await box.close_entries("fachverfahren", [box_message_id(message_id)])

        assert await purge(journal, later()) == [prozess_id]
        assert box_rows(journal_url) == 0
    finally:
        await box.close()


def box_rows(journal_url: str) -> int:
    """Rows in the XTA message box table, read straight from the database."""
    engine = create_engine(journal_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM xta_msgbox").scalar_one())
    finally:
        engine.dispose()


async def test_serve_purges_on_its_own_when_retention_is_configured(
    journal: Journal, prozess_id: str
) -> None:
    """``[retention] purge_after_days``: the background task forgets finished processes."""
    await accept(journal, prozess_id)
    await deliver_all(journal)
    await asyncio.sleep(0.2)
    config = RetentionConfig(purge_after_days=0.1 / 86400, interval_hours=1)
    stop = asyncio.Event()

    task = asyncio.create_task(
        run_periodically(journal, config, own_kennung=OWN, stop=stop, first_after_seconds=0)
    )
    for _ in range(100):
        if not await journal.process(prozess_id):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)

    assert await journal.process(prozess_id) == []


async def test_without_retention_configured_nothing_is_purged(
    journal: Journal, prozess_id: str
) -> None:
    """The default keeps everything: the task ends at once and deletes nothing."""
    await accept(journal, prozess_id)
    await deliver_all(journal)

    await asyncio.wait_for(
        run_periodically(
            journal, RetentionConfig(), own_kennung=OWN, stop=asyncio.Event(), first_after_seconds=0
        ),
        5,
    )

    assert len(await journal.process(prozess_id)) == 1
