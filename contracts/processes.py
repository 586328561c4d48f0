"""Process tracking: the derived state of an Abgabe (``gateway.processes``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from contracts.journal import MessageState


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


class ProcessStatus(_Frozen):
    """The derived state of one process, with its timeline."""

    prozess_id: str
    state: ProcessState
    overdue: bool
    sent_at: datetime | None
    due_by: datetime | None
    failures: tuple[ObjectFailure, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
