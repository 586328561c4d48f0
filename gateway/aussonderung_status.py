"""The derived state of an Aussonderung this node started (``gateway.processes``).

Nothing here is stored: the state follows from the process's messages, their
bytes (the 0502's Bewertungen, the 0506's results) and the engine's records
(DMS addresses, actions, refused answer files)::

    offered ─0504─► offer-confirmed ─0502─► valued ─0503 delivered─► handed-over
       │                                │  └─nothing A─► ended-without-archiving
       │                                └─does not fit─► valuation-refused
    (two stages: accepted ─0503 delivered─► handed-over)
    handed-over ─0507─► received ─0506 taken─► completed | partially-archived

``completed`` and ``partially-archived`` are reached once the engine has taken the
0506, i.e. after its DMS actions.

A process waiting for the archive (offered, offer-confirmed, handed-over,
received) longer than the archive's ``answer_timeout_seconds`` after the node's
last message reached the archive's folder is ``overdue``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import TypeVar

from adapters.xdomea import builders
from adapters.xdomea.bewertung import read_bewertungen
from adapters.xdomea.receipts import read_import_results
from adapters.xdomea.validation import CheckedMessage
from contracts.config import ArchiveConfig
from contracts.journal import AussonderungRecord, DeliveryState, MessageState, MessageView
from contracts.processes import (
    AussonderungDetails,
    DmsAction,
    ObjectOutcome,
    ProcessState,
    ProcessStatus,
    TimelineEntry,
)
from gateway.blobs import BlobStore
from gateway.errors import GatewayError
from gateway.receipts import read_message

T = TypeVar("T")

_WAITING = (
    ProcessState.OFFERED,
    ProcessState.OFFER_CONFIRMED,
    ProcessState.HANDED_OVER,
    ProcessState.RECEIVED,
)


def is_aussonderung(views: Sequence[MessageView], own_kennung: str) -> bool:
    """Whether the process is an Aussonderung this node sent (a 0501 or 0503 of its own)."""
    return any(v.nachrichtentyp in ("0501", "0503") and v.absender == own_kennung for v in views)


def derive(
    prozess_id: str,
    views: Sequence[MessageView],
    timeline: tuple[TimelineEntry, ...],
    *,
    own_kennung: str,
    blobs: BlobStore,
    records: Sequence[AussonderungRecord],
    archives: Mapping[str, ArchiveConfig],
    now: datetime,
) -> ProcessStatus:
    """The state of an Aussonderung (``views`` oldest first)."""
    start = next((r for r in records if r.key == "start"), None)
    started = json.loads(start.detail) if start is not None else {}
    archive_name: str | None = started.get("archive")
    own = [v for v in views if v.absender == own_kennung]
    answers = [v for v in views if v.empfaenger == own_kennung]
    angebot = _last(own, "0501")
    uebergabe = _last(own, "0503")
    bewertung = _last(answers, "0502")
    import_ = _last(answers, "0506")
    probleme = [_refused(r) for r in records if r.kind == "refused"]
    probleme += [
        f"{v.nachrichtentyp} {v.id} not processed: {d.last_error}"
        for v in answers
        for d in v.deliveries
        if d.state is DeliveryState.DEAD and d.last_error
    ]
    bewertungen: dict[str, str] = {}
    if bewertung is not None:
        bewertungen = _read_blob(blobs, bewertung, read_bewertungen, probleme) or {}
    ergebnisse: tuple[ObjectOutcome, ...] = ()
    if import_ is not None and uebergabe is not None:
        ergebnisse = _outcomes(blobs, import_, uebergabe, probleme)

    state: ProcessState
    waiting_since: datetime | None = None
    if import_ is not None and import_.state is not MessageState.ACCEPTED:
        # Complete once the engine took the 0506 (its DMS actions are done); a 0506
        # it could not take is reported among the problems.
        failed = (
            import_.state is MessageState.DEAD
            or not ergebnisse
            or any(not e.erfolgreich for e in ergebnisse)
        )
        state = ProcessState.PARTIALLY_ARCHIVED if failed else ProcessState.COMPLETED
    elif import_ is not None:
        state = ProcessState.RECEIVED
    elif uebergabe is not None and _last(answers, "0507") is not None:
        state, waiting_since = ProcessState.RECEIVED, _delivered_at(uebergabe)
    elif uebergabe is not None:
        state, waiting_since = _outgoing(uebergabe, ProcessState.HANDED_OVER)
        if state is ProcessState.ACCEPTED and bewertung is not None:
            state = ProcessState.VALUED  # the 0503 is built, not yet in the archive's folder
    elif bewertung is not None:
        if bewertung.state is MessageState.DEAD:
            state = ProcessState.VALUATION_REFUSED
        elif bewertung.state is MessageState.DELIVERED and "A" not in bewertungen.values():
            state = ProcessState.ENDED_WITHOUT_ARCHIVING
        else:
            state = ProcessState.VALUED
    elif angebot is not None and _last(answers, "0504") is not None:
        state, waiting_since = ProcessState.OFFER_CONFIRMED, _delivered_at(angebot)
    elif angebot is not None:
        state, waiting_since = _outgoing(angebot, ProcessState.OFFERED)
    else:
        state = ProcessState.ACCEPTED
    archive = archives.get(archive_name) if archive_name else None
    due_by = None
    if state in _WAITING and waiting_since is not None and archive is not None:
        due_by = waiting_since + timedelta(seconds=archive.answer_timeout_seconds)
    sent = [t for t in (_delivered_at(v) for v in own) if t is not None]
    return ProcessStatus(
        prozess_id=prozess_id,
        state=state,
        overdue=due_by is not None and now > due_by,
        sent_at=max(sent, default=None),
        due_by=due_by,
        timeline=timeline,
        aussonderung=AussonderungDetails(
            archive=archive_name,
            stages=started.get("stages"),
            objekte=started.get("objekte", {}),
            bewertungen=bewertungen,
            ergebnisse=ergebnisse,
            aktionen=tuple(
                DmsAction(**json.loads(r.detail), at=r.at) for r in records if r.kind == "action"
            ),
            probleme=tuple(probleme),
        ),
    )


def _last(views: Sequence[MessageView], code: str) -> MessageView | None:
    return next((v for v in reversed(views) if v.nachrichtentyp == code), None)


def _delivered_at(view: MessageView) -> datetime | None:
    return max(
        (
            d.finished_at
            for d in view.deliveries
            if d.state is DeliveryState.DELIVERED and d.finished_at
        ),
        default=None,
    )


def _outgoing(view: MessageView, reached: ProcessState) -> tuple[ProcessState, datetime | None]:
    """``reached`` once the node's message is in the archive's folder, else where it is."""
    if view.state is MessageState.DEAD:
        return ProcessState.UNDELIVERABLE, None
    delivered = _delivered_at(view)
    if delivered is None:
        return ProcessState.ACCEPTED, None
    return reached, delivered


def _refused(record: AussonderungRecord) -> str:
    detail = json.loads(record.detail)
    return (
        f"answer file {detail.get('file')} refused at {record.at.isoformat()}: "
        f"{detail.get('error')}"
    )


def _outcomes(
    blobs: BlobStore, import_: MessageView, uebergabe: MessageView, probleme: list[str]
) -> tuple[ObjectOutcome, ...]:
    """Per object of the 0503: what the 0506 reports (3.x per object; 2.x for the message)."""
    read = _read_blob(blobs, import_, read_import_results, probleme)
    objekte = _read_blob(blobs, uebergabe, lambda c: c.read().walk(), probleme)
    version = _read_blob(blobs, import_, lambda c: c.detected.version, probleme)
    if read is None or objekte is None or version is None:
        return ()
    per_object = builders.dialect(version).results_per_object
    outcomes = []
    for sgo in objekte:
        result = read.result_for(sgo.uuid)
        if per_object:
            if result is None:
                outcomes.append(
                    ObjectOutcome(
                        objekt=sgo.uuid,
                        erfolgreich=False,
                        fehlermeldungen=("the 0506 does not list this object",),
                    )
                )
                continue
            outcomes.append(
                ObjectOutcome(
                    objekt=sgo.uuid,
                    erfolgreich=result.erfolgreich,
                    archivkennung=result.archivkennung,
                    fehlermeldungen=result.fehlermeldungen,
                )
            )
        else:
            outcomes.append(
                ObjectOutcome(
                    objekt=sgo.uuid,
                    erfolgreich=read.erfolgreich,
                    archivkennung=result.archivkennung if result is not None else None,
                    fehlermeldungen=() if read.erfolgreich else read.fehlermeldungen,
                )
            )
    return tuple(outcomes)


def _read_blob(
    blobs: BlobStore,
    view: MessageView,
    use: Callable[[CheckedMessage], T],
    probleme: list[str],
) -> T | None:
    """``use`` applied to a journaled message; ``None`` (and a problem noted) if unreadable."""
    try:
        with ExitStack() as stack:
            return use(read_message(blobs.path(view.blob_sha256), None, stack))
    except (GatewayError, OSError) as exc:
        probleme.append(f"the {view.nachrichtentyp} {view.id} cannot be read: {exc}")
        return None
