"""The ``xta-msgbox`` destination: a message waits in a partner's XTA 2 message box.

Delivering means putting it into the box (``adapters/xta/msgbox.py``); the
partner fetches it from this gateway's ``[xta]`` service with ``getStatusList``,
``getMessage`` and ``close``. Putting the same message again (a redelivery after
a crash) changes nothing.
"""

from __future__ import annotations

import asyncio

from adapters.xta.msgbox import MsgBoxStore
from contracts.config import XtaMsgBoxDestination
from contracts.delivery import DeliveryResult, Outbound
from gateway.errors import JournalUnavailable, PermanentDeliveryError, TransientDeliveryError


class XtaMsgBox:
    """Puts messages into one partner's message box."""

    def __init__(self, name: str, config: XtaMsgBoxDestination, store: MsgBoxStore) -> None:
        """The box of ``config.partner`` in ``store`` (which this destination closes)."""
        self.name = name
        self.partner = config.partner
        self._store = store

    async def deliver(self, item: Outbound) -> DeliveryResult | None:
        """Put ``item`` into the partner's box.

        Raises:
            PermanentDeliveryError: the message's blob is gone.
            TransientDeliveryError: the store's database cannot be reached.
        """
        if not await asyncio.to_thread(item.blob_path.is_file):
            raise PermanentDeliveryError(f"the blob of message {item.message_id} is missing")
        try:
            await self._store.put(
                self.partner,
                message_id=item.message_id,
                blob_sha256=item.blob_sha256,
                size=item.size,
                content_kind=item.content_kind,
                file_name=item.file_name,
                nachrichtentyp=item.nachrichtentyp,
                prozess_id=item.prozess_id,
            )
        except JournalUnavailable as exc:
            raise TransientDeliveryError(exc.message) from exc
        return None

    async def close(self) -> None:
        """Release the store's connections."""
        await self._store.close()
