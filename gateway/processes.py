"""Process state of an Abgabe (or, in ``aussonderung_status``, an Aussonderung) this node sent.

Nothing here is stored: the state follows from the messages of one ProzessID
(``Journal.process``) and, for the 0402, from its bytes in the blob store::

    accepted ──0401 delivered to the peer──► sent ──0403──► received
        │                                      └──────0402──┴──► completed
        └──0401 dead-lettered──► undeliverable                   | partially-imported

A process in ``sent`` or ``received`` longer than ``[processes]
receipt_timeout_seconds`` after the 0401 was delivered is ``overdue``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta

from adapters.xdomea.receipts import read_import_results
from contracts.config import ArchiveConfig, GatewayConfig
from contracts.journal import AussonderungRecord, DeliveryState, MessageState, MessageView
from contracts.processes import ObjectFailure, ProcessState, ProcessStatus, TimelineEntry
from gateway import aussonderung_status
from gateway.blobs import BlobStore
from gateway.errors import GatewayError
from gateway.journal.store import Journal, utcnow
from gateway.receipts import read_message


async def status(
    config: GatewayConfig,
    journal: Journal,
    blobs: BlobStore,
    prozess_id: str,
    views: list[MessageView],
) -> ProcessStatus:
    """The process as this gateway shows it (API, ``process show``, demos, completion).

    The derived state of ``views`` (``derive``, in a thread: it reads the 0402's
    bytes), the Abgabe record if the Abgabe was started here, the receipts this
    gateway owes for the process's messages and the DMS objects its ``dms``
    destinations filed for them.

    Args:
        config: the node's Behördenkennung, ``[processes]`` and ``[archives]``.
        journal: where the Aussonderung records, the Abgabe and owed receipts are.
        blobs: where the 0402's bytes are read from (with the journal's copy of
            small messages, ``BlobStore(..., inline=journal.inline_content)``).
        prozess_id: the process.
        views: its messages, oldest first (``Journal.process``).

    Raises:
        JournalUnavailable: the journal cannot be reached.
    """
    timeout = timedelta(seconds=config.processes.receipt_timeout_seconds)
    records = await journal.aussonderung_records(prozess_id)
    await readable(blobs, views)
    derived = await asyncio.to_thread(
        derive,
        prozess_id,
        views,
        own_kennung=config.node.behoerdenkennung,
        blobs=blobs,
        timeout=timeout,
        now=utcnow(),
        records=records,
        archives=config.archives,
    )
    abgabe = await journal.abgabe_for_process(prozess_id)
    owed = await journal.receipts_owed([v.id for v in views], timeout=timeout)
    dms_objects = await journal.dms_objects([v.id for v in views])
    return derived.model_copy(
        update={"abgabe": abgabe, "receipts": tuple(owed), "dms_objects": tuple(dms_objects)}
    )


async def readable(blobs: BlobStore, views: list[MessageView]) -> None:
    """Make every message of ``views`` a file in ``blobs``, as ``derive`` reads them.

    Small messages the journal keeps are written to the blob store the first time
    (``BlobStore.file``; ``blobs`` needs ``inline=journal.inline_content``).
    """
    for view in views:
        await blobs.file(view.blob_sha256)


def derive(
    prozess_id: str,
    views: list[MessageView],
    *,
    own_kennung: str,
    blobs: BlobStore,
    timeout: timedelta,
    now: datetime,
    records: Sequence[AussonderungRecord] = (),
    archives: Mapping[str, ArchiveConfig] | None = None,
) -> ProcessStatus:
    """The state of the process of ``views`` (its messages, oldest first).

    A process in which this node sent a 0501 or 0503 is an Aussonderung
    (``gateway.aussonderung_status``); any other is tracked as an Abgabe.

    Args:
        own_kennung: this node's Behördenkennung: its own 0401 is the Abgabe tracked,
            receipts are those addressed to it.
        blobs: where the 0402's bytes are read from, as a file (``readable`` writes
            those the journal keeps there first).
        timeout: how long after delivery the receipts may take.
        now: the time overdue is judged against.
        records: the Aussonderung engine's records of the process.
        archives: the configured archives (their answer deadlines).
    """
    timeline = tuple(
        TimelineEntry(
            at=v.received_at,
            message_id=v.id,
            nachrichtentyp=v.nachrichtentyp,
            message_element=v.message_element,
            absender=v.absender,
            empfaenger=v.empfaenger,
            sha256=v.blob_sha256,
            state=v.state,
        )
        for v in views
    )
    if aussonderung_status.is_aussonderung(views, own_kennung):
        return aussonderung_status.derive(
            prozess_id,
            views,
            timeline,
            own_kennung=own_kennung,
            blobs=blobs,
            records=records,
            archives=archives or {},
            now=now,
        )
    abgabe = next(
        (v for v in views if v.nachrichtentyp == "0401" and v.absender == own_kennung), None
    )
    if abgabe is None:
        return ProcessStatus(
            prozess_id=prozess_id,
            state=ProcessState.FOREIGN,
            overdue=False,
            sent_at=None,
            due_by=None,
            timeline=timeline,
        )
    answers = [
        v for v in views if v.empfaenger == own_kennung and v.received_at >= abgabe.received_at
    ]
    sent_at = max(
        (
            d.finished_at
            for d in abgabe.deliveries
            if d.state is DeliveryState.DELIVERED and d.finished_at
        ),
        default=None,
    )
    failures: tuple[ObjectFailure, ...] = ()
    import_receipt = next((v for v in reversed(answers) if v.nachrichtentyp == "0402"), None)
    if import_receipt is not None:
        failures = _failures(import_receipt, blobs)
        state = ProcessState.PARTIALLY_IMPORTED if failures else ProcessState.COMPLETED
    elif any(v.nachrichtentyp == "0403" for v in answers):
        state = ProcessState.RECEIVED
    elif abgabe.state is MessageState.DEAD:
        state = ProcessState.UNDELIVERABLE
    elif sent_at is not None:
        state = ProcessState.SENT
    else:
        state = ProcessState.ACCEPTED
    waiting = state in (ProcessState.SENT, ProcessState.RECEIVED)
    due_by = sent_at + timeout if sent_at is not None and waiting else None
    return ProcessStatus(
        prozess_id=prozess_id,
        state=state,
        overdue=due_by is not None and now > due_by,
        sent_at=sent_at,
        due_by=due_by,
        failures=failures,
        timeline=timeline,
    )


def _failures(receipt: MessageView, blobs: BlobStore) -> tuple[ObjectFailure, ...]:
    """What the 0402 reports as not imported; an unreadable 0402 is reported as such."""
    try:
        with ExitStack() as stack:
            checked = read_message(blobs.path(receipt.blob_sha256), None, stack)
            results = read_import_results(checked)
    except (GatewayError, OSError) as exc:
        return (ObjectFailure(objekt=None, fehlermeldungen=(f"the 0402 cannot be read: {exc}",)),)
    failed = tuple(
        ObjectFailure(objekt=uuid, fehlermeldungen=r.fehlermeldungen)
        for uuid, r in results.objekte.items()
        if not r.erfolgreich
    )
    if failed or results.erfolgreich:
        return failed
    # 2.x: one verdict for the whole message, its reasons in one Fehlermeldung.
    return (
        ObjectFailure(objekt=None, fehlermeldungen=results.fehlermeldungen or ("import failed",)),
    )
