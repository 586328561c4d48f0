"""The one interface every destination adapter implements.

A destination takes an ``Outbound`` (a journaled message and where its bytes lie)
(or, for a small message and a destination that reads it from memory, the bytes
themselves) and either returns normally (delivered; a destination that imports the message may
return a ``DeliveryResult`` with its per-object outcome), raises
``TransientDeliveryError`` (retry with backoff) or ``PermanentDeliveryError``
(dead-letter at once), both from ``gateway.errors``. Any other exception counts
as transient. Destinations never touch the journal; the worker records outcomes.

Delivery is at least once: a destination may see the same message again after a
crash, so it must be idempotent on ``message_id`` (same file name, same
Idempotency-Key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from contracts.builders import ObjectResult


class Outbound(BaseModel):
    """One message on its way to one destination."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str
    attempt: int
    blob_path: Path
    blob_sha256: str
    size: int
    content_kind: str  # "container" or "message"
    prozess_id: str
    nachrichtentyp: str
    message_element: str
    file_name: str | None = None
    #: The message's bytes, where the journal keeps them (a small message) and the
    #: destination says it reads them from here (``reads_content``); ``None``
    #: otherwise, and the file ``blob_path`` holds them. Never in a repr or a log.
    content: bytes | None = Field(default=None, repr=False)


#: ``created``: this import made it; ``found``: an earlier import (or attempt) had.
DmsObjectStatus = Literal["created", "found"]


class DmsContent(BaseModel):
    """A primary document filed into a Dokument, with the SHA-256 the import checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dateiname: str
    sha256: str
    status: DmsObjectStatus


class DmsObject(BaseModel):
    """A Schriftgutobjekt a DMS import created or found, and where it lies in the DMS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uuid: str
    #: ``Akte``, ``Vorgang``, ``Dokument``, … (the xdomea kind).
    art: str
    adresse: str
    status: DmsObjectStatus
    #: A Dokument's primary documents in the DMS (refused ones are not listed).
    inhalte: tuple[DmsContent, ...] = ()


class DeliveryResult(BaseModel):
    """What a destination that imports a message reports back about it (optional).

    A DMS import names the objects it could not import; objects not named count as
    imported. Destinations without anything to report return ``None``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Outcome per Schriftgutobjekt UUID; in practice only the failures.
    objects: dict[str, ObjectResult] = {}
    #: Every object the import filed or found in the DMS, in import order (the worker
    #: records them with the outcome; the process view lists them).
    dms_objects: tuple[DmsObject, ...] = ()


class Destination(Protocol):
    """Somewhere messages go: a transfer directory, a peer gateway, a DMS…"""

    name: str
    # Optional: ``reads_content = True`` on a destination that delivers a small
    # message from ``Outbound.content``. For every other destination the worker first
    # writes the journal's copy of a small message to the blob store, so that
    # ``blob_path`` holds it.

    async def deliver(self, item: Outbound) -> DeliveryResult | None:
        """Deliver one message; raise a ``DeliveryError`` subclass on failure.

        Returns:
            ``None``, or what the destination learned (a DMS's per-object outcome).
        """
        ...

    async def close(self) -> None:
        """Release connections and other resources."""
        ...


class NodeOutbox(Protocol):
    """Where a destination puts a message the node itself answers with.

    Some destinations produce an answer while delivering (an FVDaten response, an
    archive's Bewertung confirmed with a 0505, …). They hand it here instead of
    sending it themselves: it enters intake as the node, is journaled and routed
    like any message. The key must be derived from what is being answered (e.g.
    ``"fvdaten:<message id>"``) and the answer's bytes must be the same each time
    (timestamps taken from the answered message, not the clock), so a redelivery
    after a crash journals nothing twice.
    """

    async def submit(self, body: bytes, *, idempotency_key: str, file_name: str) -> str:
        """Journal ``body`` (a bare message or a container) as sent by this node.

        Returns:
            The journaled message's id (the first one's, when the key was used before).

        Raises:
            IntakeRejected: the answer is invalid or has no route; nothing was kept.
            JournalUnavailable: the journal cannot be reached (a transient failure).
        """
        ...
