"""Process tracking: the derived state of an Abgabe or an Aussonderung (``gateway.processes``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from contracts.delivery import DmsContent, DmsObjectStatus
from contracts.journal import MessageState, ReceiptView


class ProcessState(StrEnum):
    """Where an Abgabe (0401) or an Aussonderung (0501/0503) this node sent stands.

    An Aussonderung uses ``accepted``, ``received`` (the 0507), ``completed`` (the
    0506 confirms every object), ``undeliverable`` and the states below.
    """

    ACCEPTED = "accepted"  # journaled, not yet delivered to the peer
    SENT = "sent"  # delivered to the peer gateway
    RECEIVED = "received"  # the 0403 arrived
    COMPLETED = "completed"  # the 0402 arrived: every object imported
    PARTIALLY_IMPORTED = "partially-imported"  # the 0402 reports failures
    UNDELIVERABLE = "undeliverable"  # the 0401 is a dead letter
    FOREIGN = "foreign"  # no 0401 of this node in the process (e.g. one it received)
    OFFERED = "offered"  # the 0501 is in the archive's folder
    OFFER_CONFIRMED = "offer-confirmed"  # the 0504 arrived
    VALUED = "valued"  # the 0502 arrived (the 0505 and 0503 follow)
    VALUATION_REFUSED = "valuation-refused"  # the 0502 does not fit the offer; not advanced
    HANDED_OVER = "handed-over"  # the 0503 is in the archive's folder
    PARTIALLY_ARCHIVED = "partially-archived"  # the 0506 reports failed objects
    ENDED_WITHOUT_ARCHIVING = "ended-without-archiving"  # the 0502 values nothing A


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimelineEntry(_Frozen):
    """One message of the process."""

    at: datetime
    message_id: str
    nachrichtentyp: str
    message_element: str
    absender: str
    empfaenger: str
    sha256: str
    state: MessageState


class DmsObjectEntry(_Frozen):
    """A DMS object this gateway's ``dms`` destination filed (or found) for a message."""

    #: When the delivery that filed it was recorded.
    at: datetime
    message_id: str
    destination: str
    uuid: str
    art: str
    adresse: str
    #: ``found`` when an earlier import had made it (a redelivery, a second Abgabe).
    status: DmsObjectStatus
    #: A Dokument's primary documents, each with its SHA-256.
    inhalte: tuple[DmsContent, ...] = ()


class ObjectFailure(_Frozen):
    """An object the 0402 reports as not imported (2.x: ``objekt`` is ``None``)."""

    objekt: str | None
    fehlermeldungen: tuple[str, ...]


class AbgabeState(StrEnum):
    """Where an Abgabe started by ``abgabe start`` stands (stored, unlike ``ProcessState``).

    ::

        starting ──0401 journaled──► open ──0402: all imported──► completed
           │ (export or intake failed:                └─0402: failures──► partially-imported
           ▼  the row is removed, nothing journaled)
    """

    STARTING = "starting"
    OPEN = "open"
    COMPLETED = "completed"
    PARTIALLY_IMPORTED = "partially-imported"


class CompletionState(StrEnum):
    """What became of the completion action (``[processes] on_completed``)."""

    DONE = "done"  # carried out (recorded, or the Abgabevermerk written)
    NOT_DONE = "not-done"  # the 0402 reports failures: nothing is marked abgegeben
    FAILED = "failed"  # the DMS refused the Abgabevermerk (see detail)


class AbgabeView(_Frozen):
    """An Abgabe this node's operator started, with its completion action."""

    id: str
    akte: str
    partner_id: str
    prozess_id: str
    message_id: str | None
    state: AbgabeState
    completion_action: str
    completion_state: CompletionState | None = None
    completion_detail: str | None = None
    completed_at: datetime | None = None
    created_at: datetime


class ObjectOutcome(_Frozen):
    """What the 0506 says about one handed-over Schriftgutobjekt."""

    objekt: str
    erfolgreich: bool
    archivkennung: str | None = None
    fehlermeldungen: tuple[str, ...] = ()


class DmsAction(_Frozen):
    """A DMS action after the archive's answer, or why there was none."""

    objekt: str
    adresse: str | None
    #: ``archiviert``, ``vernichten`` or ``nicht-archiviert`` (no action: the 0506 failed it).
    ergebnis: str
    action: str
    detail: str | None = None
    at: datetime


class AussonderungDetails(_Frozen):
    """What an Aussonderung process shows beyond its state."""

    archive: str | None
    stages: int | None
    #: Offered top-level objects (UUID → DMS address).
    objekte: dict[str, str] = {}
    #: The archive's Aussonderungsart per valued object (UUID → A, B or V).
    bewertungen: dict[str, str] = {}
    ergebnisse: tuple[ObjectOutcome, ...] = ()
    aktionen: tuple[DmsAction, ...] = ()
    #: Answers that did not advance the process (refused files, dead-lettered answers).
    probleme: tuple[str, ...] = ()


class ProcessStatus(_Frozen):
    """The derived state of one process, with its timeline."""

    prozess_id: str
    state: ProcessState
    overdue: bool
    sent_at: datetime | None
    due_by: datetime | None
    failures: tuple[ObjectFailure, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    #: The Abgabe record when the process was started with ``abgabe start``.
    abgabe: AbgabeView | None = None
    #: Receipts this gateway owes in the process (on the receiving side), with the
    #: overdue flag for one that cannot be produced.
    receipts: tuple[ReceiptView, ...] = ()
    #: The DMS objects this gateway's ``dms`` destinations filed or found for the
    #: process's messages (operator view only; a partner sees none).
    dms_objects: tuple[DmsObjectEntry, ...] = ()
    #: Set for an Aussonderung (0501/0503 to an archive).
    aussonderung: AussonderungDetails | None = None
