"""What the journal records and returns: messages, deliveries, claims, views.

States are enums; every change of a delivery's state is a guarded update in the
store (``WHERE state IN (…)``) and leaves an event row.

Delivery states::

    pending ──claim──► claimed ──ok──────────► delivered
       ▲                 │  ├──transient──► pending (next_attempt_at = backoff)
       │                 │  └──permanent / budget spent──► dead
       └──lease expired──┘
    dead ──replay──► pending
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.builders import ObjectResult


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeliveryState(StrEnum):
    """Where one message stands towards one destination."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DELIVERED = "delivered"
    DEAD = "dead"


class MessageState(StrEnum):
    """A message's state, derived from its deliveries."""

    ACCEPTED = "accepted"  # no delivery finished yet
    DELIVERED = "delivered"  # every delivery delivered
    DEAD = "dead"  # at least one delivery dead-lettered


class NewMessage(_Frozen):
    """A message as intake hands it to the journal.

    Its content is durable in the blob store by then, or (a small message) is
    handed to ``Journal.accept`` with it and committed in the same transaction.
    """

    partner_id: str
    channel: str
    idempotency_key: str | None
    blob_sha256: str
    size: int
    content_kind: str
    file_name: str | None
    prozess_id: str
    nachrichtentyp: str
    message_element: str
    xdomea_version: str
    absender: str
    empfaenger: str

    @property
    def dedup_key(self) -> str:
        """Same ProzessID, Nachrichtentyp, Absender and identical bytes: the same message."""
        parts = (self.prozess_id.lower(), self.nachrichtentyp, self.absender, self.blob_sha256)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class Accepted(_Frozen):
    """The journal's answer to ``accept``."""

    message_id: str
    duplicate: bool


class Claim(_Frozen):
    """A delivery a worker holds a lease on, with what it needs to deliver."""

    delivery_id: int
    message_id: str
    destination: str
    attempt: int
    lease_until: datetime
    window_started_at: datetime
    received_at: datetime
    blob_sha256: str
    size: int
    content_kind: str
    file_name: str | None
    prozess_id: str
    nachrichtentyp: str
    message_element: str
    partner_id: str
    #: An import receipt (0402) of the message waits for this delivery's outcome: the
    #: outcome is then written durably (nothing else would make the receipt due).
    receipt_waiting: bool = False
    #: The message's bytes when the journal keeps them (``[storage] inline_max_bytes``);
    #: ``None`` when they are in the blob store's file. Never in a repr or a log.
    content: bytes | None = Field(default=None, repr=False)


class AttemptView(_Frozen):
    """One delivery attempt."""

    number: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    error: str | None


class DeliveryView(_Frozen):
    """A delivery with its attempts."""

    destination: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    finished_at: datetime | None
    history: tuple[AttemptView, ...] = ()


class MessageView(_Frozen):
    """A message as the API and CLI show it."""

    id: str
    state: MessageState
    received_at: datetime
    partner_id: str
    channel: str
    prozess_id: str
    nachrichtentyp: str
    message_element: str
    xdomea_version: str
    absender: str
    empfaenger: str
    blob_sha256: str
    size: int
    file_name: str | None
    deliveries: tuple[DeliveryView, ...] = ()


class ReceiptState(StrEnum):
    """Where a receipt the gateway owes stands.

    ::

        waiting ──import done──► pending ──produced──► produced
                                    │  └──not requested by the Kopf──► skipped
                                    └──failed──► pending (next_attempt_at = backoff)
    """

    WAITING = "waiting"  # due only once a local destination has imported the message
    PENDING = "pending"  # due now (or at next_attempt_at)
    PRODUCED = "produced"  # journaled as a message of its own and routed
    SKIPPED = "skipped"  # the incoming Kopf did not ask for it


class ReceiptView(_Frozen):
    """A receipt this gateway owes for a message, as the API and CLI show it."""

    message_id: str
    code: str
    state: ReceiptState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    receipt_message_id: str | None
    #: Still owed (waiting or pending) longer than ``[processes] receipt_timeout_seconds``:
    #: a receipt that cannot be produced (no route back, a failing build) is flagged
    #: here instead of being retried unseen.
    overdue: bool = False


class ReceiptTask(_Frozen):
    """A due receipt with what producing it needs: the answered message's blob and results."""

    id: int
    message_id: str
    code: str
    attempts: int
    ready_at: datetime
    blob_sha256: str
    content_kind: str
    prozess_id: str
    #: The answered message's Absender: whom the receipt goes to.
    absender: str
    results: dict[str, ObjectResult] = {}


class AussonderungRecord(_Frozen):
    """One fact the Aussonderung engine recorded for a process (``kind``, JSON ``detail``)."""

    prozess_id: str
    key: str
    kind: str
    detail: str
    at: datetime


class PurgedProcess(_Frozen):
    """A finished process the journal forgot (``ikz-gateway db purge``)."""

    prozess_id: str
    #: Messages deleted, with their deliveries, attempts, events and receipts.
    messages: int
    last_received_at: datetime
    #: Bytes of small messages' content deleted from the journal.
    content_bytes: int
    #: SHA-256 of the contents no message in the journal refers to any more.
    unreferenced_blobs: tuple[str, ...]
