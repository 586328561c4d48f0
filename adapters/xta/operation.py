"""What every XTA 2 operation works with: the call, its answer, the gateway behind it.

The service (``server.py``) decodes and authenticates a request into a ``Call``
and hands it to the operation of one of the three ports (``send_port.py``,
``box_port.py``, ``management_port.py``), which answers with body and header
elements or raises an ``XtaFault``. The gateway side (intake, journal,
credentials) comes in through ``Backend``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiohttp import MultipartReader
from lxml import etree

from adapters.xta.soap import Exception_, XtaFault
from contracts.config import PartnerConfig

#: An operation's answer: the response's body elements and header elements.
Answer = tuple[list[etree._Element], list[etree._Element]]


class Backend(Protocol):
    """What the service needs from the gateway around it (``gateway/xta.py``)."""

    async def submit(
        self,
        chunks: AsyncIterator[bytes],
        partner: PartnerConfig,
        *,
        idempotency_key: str | None,
        file_name: str | None,
    ) -> str:
        """Hand the content to intake as ``partner`` (channel ``xta``); the message id.

        Raises:
            IntakeRejected: refused; nothing was kept.
            JournalUnavailable: the journal cannot be reached.
        """
        ...

    async def message_state(self, message_id: str) -> str | None:
        """The journaled message's state (``accepted``, ``delivered``, ``dead``), if known."""
        ...

    def token_partner(self, partner_id: str, password: str) -> PartnerConfig | None:
        """The partner ``partner_id`` if ``password`` is its token."""
        ...

    def routable(self, empfaenger: str) -> bool:
        """Whether this gateway has a route to ``empfaenger``."""
        ...


@dataclass(frozen=True)
class Call:
    """One authenticated request on its way through an operation."""

    partner: PartnerConfig
    header: etree._Element
    body: etree._Element | None
    #: The MIME parts after the envelope (MTOM requests only).
    parts: MultipartReader | None
    #: Files the response carries as MTOM parts: (Content-ID, path, media type).
    attachments: list[tuple[str, Path, str]] = field(default_factory=list)


def text(element: etree._Element | None) -> str | None:
    """An element's stripped text; ``None`` for no element or no text."""
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def invalid(reason: str) -> XtaFault:
    """ParameterIsNotValidException 9022 (invalid parameter combination)."""
    return XtaFault(Exception_.PARAMETER_IS_NOT_VALID, "9022", reason)


def denied(code: str, reason: str) -> XtaFault:
    """PermissionDeniedException with Fehlernummer ``code``."""
    return XtaFault(Exception_.PERMISSION_DENIED, code, reason)


def unknown_id(reason: str) -> XtaFault:
    """InvalidMessageIDException 9070 (MessageID not known for the account)."""
    return XtaFault(Exception_.INVALID_MESSAGE_ID, "9070", reason)
