"""Process tracking: the derived state of an Abgabe (``gateway.processes``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from contracts.journal import MessageState, ReceiptView


class ProcessState(StrEnum):
    """Where an Abgabe (0401) this node sent stands."""

    ACCEPTED = "accepted"  # journaled, not yet delivered to the peer
    SENT = "sent"  # delivered to the peer gateway
    RECEIVED = "received"  # the 0403 arrived
    COMPLETED = "completed"  # the 0402 arrived: every object imported
    PARTIALLY_IMPORTED = "partially-imported"  # the 0402 reports failures
    UNDELIVERABLE = "undeliverable"  # the 0401 is a dead letter
    FOREIGN = "foreign"  # no 0401 of this node in the process (e.g. one it received)


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
