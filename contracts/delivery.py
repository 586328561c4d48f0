"""The one interface every destination adapter implements.

A destination takes an ``Outbound`` (a journaled message and where its bytes lie)
and either returns normally (delivered), raises ``TransientDeliveryError``
(retry with backoff) or ``PermanentDeliveryError`` (dead-letter at once), both
from ``gateway.errors``. Any other exception counts as transient. Destinations
never touch the journal; the worker records outcomes.

Delivery is at least once: a destination may see the same message again after a
crash, so it must be idempotent on ``message_id`` (same file name, same
Idempotency-Key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict


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


class Destination(Protocol):
    """Somewhere messages go: a transfer directory, a peer gateway, a DMS…"""

    name: str

    async def deliver(self, item: Outbound) -> None:
        """Deliver one message; raise a ``DeliveryError`` subclass on failure."""
        ...

    async def close(self) -> None:
        """Release connections and other resources."""
        ...
