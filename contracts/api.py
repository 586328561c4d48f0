"""What the HTTP API answers: response bodies and RFC 9457 problem documents.

``docs/openapi.yaml`` describes the same shapes; message, delivery and attempt
views come from ``contracts.journal`` unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.journal import MessageState, MessageView, ReceiptView
from contracts.processes import AbgabeState, ProcessStatus
from contracts.xdomea import Finding

#: Problem ``type`` URIs are this prefix plus the problem's kind, e.g. ``…:unroutable``.
PROBLEM_TYPE_PREFIX = "urn:ikz-gateway:problem:"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubmitResponse(_Frozen):
    """The answer to ``POST /v1/messages``: the message is journaled."""

    id: str
    status_url: str
    duplicate: bool = Field(description="the message was accepted before; this is its id")


class MessageResponse(MessageView):
    """``GET /v1/messages/{id}``: the message, and the receipts this gateway owes for it."""

    receipts: tuple[ReceiptView, ...] = ()


class RetryResponse(_Frozen):
    """The answer to ``POST /v1/messages/{id}/retry``."""

    id: str
    replayed: int = Field(description="dead-lettered deliveries put back in the queue")
    status_url: str


class MessageList(_Frozen):
    """A page of messages, newest first."""

    messages: tuple[MessageView, ...]
    limit: int
    offset: int


class ProcessResponse(ProcessStatus):
    """One ProzessID: its derived state and timeline, and every message, oldest first."""

    messages: tuple[MessageView, ...]


class AbgabeRequest(_Frozen):
    """The body of ``POST /v1/abgaben``: which Akte goes to which partner."""

    akte: str = Field(min_length=1, max_length=500, description="DMS address of the Akte")
    to: str = Field(min_length=1, description="partner id or Behördenkennung")


class AbgabeResponse(_Frozen):
    """The answer to ``POST /v1/abgaben`` (and what ``abgabe start --json`` prints)."""

    id: str
    akte: str
    partner: str
    prozess_id: str
    message_id: str
    state: AbgabeState
    existing: bool = Field(description="the Abgabe was open already; nothing new was sent")
    status_url: str = Field(description="GET it for the process state and timeline")


class Health(_Frozen):
    """The answer of ``GET /v1/health`` while the journal answers."""

    status: Literal["ok"] = "ok"


class MessageQuery(_Frozen):
    """Query parameters of ``GET /v1/messages``."""

    state: MessageState | None = None
    partner: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class Problem(_Frozen):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    findings: tuple[Finding, ...] | None = Field(
        default=None, description="validation findings with line and element path"
    )

    @staticmethod
    def type_for(kind: str) -> str:
        """The ``type`` URI of a problem kind."""
        return PROBLEM_TYPE_PREFIX + kind
