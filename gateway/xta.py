"""Wiring of the XTA 2 webservice (``adapters/xta/server.py``) into one gateway process.

``GatewayBackend`` gives the service what it needs from the gateway: intake
(channel ``xta``), message states from the journal, partner tokens and routes.
``install`` adds the service's route to the API application and owns its
message-box store.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.xta.msgbox import MsgBoxStore
from adapters.xta.schema import XtaSchema
from adapters.xta.server import XtaService
from contracts.config import GatewayConfig, PartnerConfig
from gateway.blobs import BlobStore
from gateway.config import partner_for_token
from gateway.errors import NotFound
from gateway.intake import Intake, Submission
from gateway.journal.store import Journal


class GatewayBackend:
    """``adapters.xta.server.Backend`` over this gateway's intake and journal."""

    def __init__(self, config: GatewayConfig, intake: Intake, journal: Journal) -> None:
        """A backend for ``config``'s partners and routes."""
        self._config = config
        self._intake = intake
        self._journal = journal

    async def submit(
        self,
        chunks: AsyncIterator[bytes],
        partner: PartnerConfig,
        *,
        idempotency_key: str | None,
        file_name: str | None,
    ) -> str:
        """Journal the content as sent by ``partner`` over XTA."""
        xta = self._config.xta
        accepted = await self._intake.submit(
            chunks,
            Submission(
                partner=partner,
                channel="xta",
                idempotency_key=idempotency_key,
                file_name=file_name,
            ),
            max_bytes=xta.max_message_bytes if xta is not None else None,
        )
        return accepted.message_id

    async def message_state(self, message_id: str) -> str | None:
        """The journaled message's derived state, or ``None`` when it is unknown."""
        try:
            return str((await self._journal.get_message(message_id)).state)
        except NotFound:
            return None

    def token_partner(self, partner_id: str, password: str) -> PartnerConfig | None:
        """The partner ``partner_id`` when ``password`` is its token."""
        partner = partner_for_token(self._config, password)
        if partner is None or not hmac.compare_digest(partner.id, partner_id):
            return None
        return partner

    def routable(self, empfaenger: str) -> bool:
        """Whether any route leads to ``empfaenger``."""
        return any(route.empfaenger == empfaenger for route in self._config.routes)


def install(
    app: web.Application,
    config: GatewayConfig,
    intake: Intake,
    journal: Journal,
    blobs: BlobStore,
) -> None:
    """Serve ``[xta]`` on ``app`` (nothing when it is absent or disabled).

    Raises:
        ConfigError: the WSDL or its schemas cannot be loaded.
    """
    xta = config.xta
    if xta is None or not xta.enabled:
        return
    schema = XtaSchema(xta.wsdl)
    msgbox = MsgBoxStore.from_url(config.storage.journal)
    service = XtaService(
        config, xta, GatewayBackend(config, intake, journal), msgbox, blobs, schema
    )
    service.add_routes(app)

    async def store(_: web.Application) -> AsyncIterator[None]:
        yield
        await msgbox.close()

    app.cleanup_ctx.append(store)
