"""The XTA 2 webservice (``http://xoev.de/transport/xta/211``) as one aiohttp handler.

All three ports of ``XTA.wsdl`` are served at one path; the WS-Addressing
``Action`` header picks the operation (SOAP 1.2 carries it there, and
``checkAccountActive`` and ``createMessageId`` have the same empty body)::

    request ─► envelope (root MIME part or whole body) ─► Action ─► body fits it?
            ─► partner (client certificate / UsernameToken) ─► schema ─► operation

The operations live with their port: ``send_port.py`` (into the gateway's
intake), ``box_port.py`` (the partners' message boxes) and
``management_port.py``. Everything refused is a SOAP 1.2 fault with the WSDL's
exception element as detail and a clear text as reason (``soap.XtaFault``);
nothing refused is kept. The gateway side comes in through
``operation.Backend``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import BodyPartReader, MultipartReader, web
from lxml import etree

from adapters.xta.box_port import MsgBoxPort
from adapters.xta.management_port import ManagementPort
from adapters.xta.mime import drain, mtom_response, read_limited
from adapters.xta.msgbox import MsgBoxStore
from adapters.xta.operation import Answer, Backend, Call, denied, invalid, text
from adapters.xta.schema import XtaSchema
from adapters.xta.send_port import SendPort
from adapters.xta.soap import (
    OSCI,
    S12,
    SOAP12_MEDIA_TYPE,
    WSA,
    WSSE,
    XTA,
    Exception_,
    XtaFault,
    parse_envelope,
    response,
)
from contracts.config import GatewayConfig, PartnerConfig, XtaServerConfig
from gateway import tls
from gateway.blobs import BlobStore
from gateway.errors import JournalUnavailable

log = structlog.get_logger(__name__)

_XTA_ACTION = "http://www.xta.de/XTA/"
_OSCI_ACTION = "http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/"
_PASSWORD_TEXT = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordText"
)

#: An operation: one port's method, given the service and the call.
Operation = Callable[["XtaService", Call], Awaitable[Answer]]


@dataclass(frozen=True)
class _Spec:
    name: str
    #: The body element the operation takes; ``None``: an empty body.
    body: str | None
    run: Operation


class XtaService:
    """The XTA 2 webservice of one gateway."""

    def __init__(
        self,
        gateway: GatewayConfig,
        config: XtaServerConfig,
        backend: Backend,
        msgbox: MsgBoxStore,
        blobs: BlobStore,
        schema: XtaSchema,
    ) -> None:
        """A service answering for ``gateway``'s partners.

        Args:
            gateway: partners (credentials, certificate bindings) and the node.
            config: ``[xta]``: path, limits, server identity.
            backend: intake, journal state and token checks of the gateway.
            msgbox: the partners' message boxes and transport records.
            blobs: where payloads are staged and box messages are read from.
            schema: the compiled request schemas of ``config.wsdl``.
        """
        self._gateway = gateway
        self._config = config
        self._backend = backend
        self._schema = schema
        identity = config.server_identity or f"ikz-gateway:{gateway.node.id}{config.path}"
        self.send = SendPort(config, backend, msgbox, blobs, schema)
        self.box = MsgBoxPort(gateway, config, msgbox, blobs)
        self.management = ManagementPort(gateway, identity, backend, msgbox)

    def add_routes(self, app: web.Application) -> None:
        """Serve the webservice on ``app`` at ``[xta] path``."""
        app.router.add_post(self._config.path, self.handle, name="xta")

    # ------------------------------------------------------------------ request

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one SOAP request: the operation's response or a fault."""
        action: str | None = None
        relates_to: str | None = None
        try:
            envelope, parts = await self._envelope(request)
            header = envelope.find(f"{{{S12}}}Header")
            if header is None:
                header = etree.Element(f"{{{S12}}}Header")
            action = text(header.find(f"{{{WSA}}}Action"))
            relates_to = text(header.find(f"{{{WSA}}}MessageID"))
            spec = _operation(action)
            body = _body(envelope, spec)
            partner = self._authenticate(request, header)
            if body is not None:
                # In a thread: an inline payload makes the body one large text node.
                await asyncio.to_thread(self._schema.check, body, f"the {spec.name} request")
            with structlog.contextvars.bound_contextvars(partner=partner.id, operation=spec.name):
                call = Call(partner, header, body, parts)
                out_body, out_headers = await spec.run(self, call)
                log.info("xta_request_answered")
            if parts is not None:
                await drain(parts)
            envelope_bytes = response(action or "", relates_to, out_body, out_headers)
            if call.attachments:
                return await mtom_response(request, envelope_bytes, action, call.attachments)
            return web.Response(
                body=envelope_bytes, content_type=SOAP12_MEDIA_TYPE, charset="utf-8"
            )
        except XtaFault as fault:
            return _fault_response(fault, action, relates_to)
        except JournalUnavailable as exc:
            log.warning("journal_unavailable", error=exc.message)
            return _fault_response(
                XtaFault(
                    Exception_.TECHNICAL_PROBLEM,
                    "9030",
                    "the gateway cannot reach its journal right now; nothing was accepted. "
                    "Try again later",
                    receiver=True,
                ),
                action,
                relates_to,
            )
        except Exception:
            log.exception("xta_request_failed", action=action)
            return _fault_response(
                XtaFault(
                    Exception_.TECHNICAL_PROBLEM,
                    "9030",
                    "the gateway failed to handle this request; the operator finds the cause "
                    "in its log",
                    receiver=True,
                ),
                action,
                relates_to,
            )

    async def _envelope(
        self, request: web.Request
    ) -> tuple[etree._Element, MultipartReader | None]:
        """The parsed envelope, and the remaining MIME parts of an MTOM request."""
        media = request.content_type
        if media == "multipart/related":
            reader = await request.multipart()
            root = await reader.next()
            if not isinstance(root, BodyPartReader):
                raise XtaFault(
                    Exception_.PARAMETER_IS_NOT_VALID,
                    "9022",
                    "the multipart/related request has no root part with the SOAP envelope",
                )
            data = await read_limited(
                root, self._config.max_envelope_bytes, "the SOAP envelope (MTOM root part)"
            )
            return await asyncio.to_thread(parse_envelope, data), reader
        if media == SOAP12_MEDIA_TYPE:
            # Inline base64 is a third larger than its content, plus the envelope around it.
            limit = self._config.max_message_bytes * 4 // 3 + self._config.max_envelope_bytes
            data = await read_limited(request.content, limit, "the SOAP request")
            return await asyncio.to_thread(parse_envelope, data), None
        raise XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9022",
            f"Content-Type {media or '(none)'} is not SOAP 1.2; send application/soap+xml, "
            'or multipart/related; type="application/xop+xml" (MTOM)',
        )

    def _authenticate(self, request: web.Request, header: etree._Element) -> PartnerConfig:
        """The partner the request's client certificate and/or UsernameToken name."""
        certificate = tls.peer_certificate(request.transport)
        by_certificate: PartnerConfig | None = None
        if certificate is not None:
            bound = tls.partners_for_certificate(self._gateway, certificate)
            if len(bound) != 1:
                log.warning(
                    "client_certificate_refused",
                    fingerprint=certificate.fingerprint,
                    subject=certificate.subject,
                )
                raise denied(
                    "9012",
                    f"the client certificate {certificate.subject} (SHA-256 "
                    f"{certificate.fingerprint}) is not bound to exactly one partner of this "
                    "gateway; ask its operator to add its fingerprint as certificate_sha256 to "
                    "your partner entry",
                )
            by_certificate = bound[0]
        by_token = self._token_partner(header)
        if by_certificate and by_token and by_certificate.id != by_token.id:
            raise denied(
                "9014",
                f"the client certificate belongs to partner {by_certificate.id}, but the "
                f"UsernameToken names partner {by_token.id}; send the matching credentials",
            )
        partner = by_certificate or by_token
        if partner is None:
            raise denied(
                "9012",
                "no credentials: authenticate with the client certificate bound to your partner "
                "entry (mutual TLS) or a WS-Security UsernameToken (Username = partner id, "
                "Password = the partner's token)",
            )
        if partner.certificate_bound and by_certificate is None:
            raise denied(
                "9014",
                f"partner {partner.id} must present its client certificate (mutual TLS); a "
                "UsernameToken alone is not enough",
            )
        if partner.has_token and by_token is None:
            raise denied(
                "9014",
                f"partner {partner.id} must also send its UsernameToken (Username "
                f"{partner.id}, Password its token)",
            )
        return partner

    def _token_partner(self, header: etree._Element) -> PartnerConfig | None:
        token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return None
        username = text(token.find(f"{{{WSSE}}}Username"))
        password = token.find(f"{{{WSSE}}}Password")
        if password is not None and password.get("Type", _PASSWORD_TEXT) != _PASSWORD_TEXT:
            raise denied(
                "9012",
                "only UsernameToken passwords of type PasswordText are supported (over TLS); "
                "PasswordDigest would need the token stored in clear text",
            )
        partner = self._backend.token_partner(username, text(password) or "") if username else None
        if partner is None:
            log.warning("xta_username_token_refused", username=username)
            raise denied(
                "9012",
                f"the UsernameToken for {username or '(no Username)'} is not valid: the "
                "Username must be your partner id and the Password your partner token",
            )
        return partner


# ---------------------------------------------------------------------- dispatch


def _on(port: str, method: str) -> Operation:
    """The operation ``method`` of the service's ``port`` (``send``, ``box``, ``management``)."""

    async def run(service: XtaService, call: Call) -> Answer:
        answer: Answer = await getattr(getattr(service, port), method)(call)
        return answer

    return run


_GCC = f"{{{XTA}}}GenericContentContainer"
_OPERATIONS: dict[str, _Spec] = {
    _XTA_ACTION + "SendMessage": _Spec("sendMessage", _GCC, _on("send", "send_message")),
    _XTA_ACTION + "SendMessageSync": _Spec(
        "sendMessageSync", _GCC, _on("send", "send_message_sync")
    ),
    _XTA_ACTION + "CreateMessageID": _Spec(
        "createMessageId", None, _on("management", "create_message_id")
    ),
    _XTA_ACTION + "CheckAccountActive": _Spec(
        "checkAccountActive", None, _on("management", "check_account_active")
    ),
    _XTA_ACTION + "IsServiceAvailable": _Spec(
        "lookupService",
        f"{{{XTA}}}LookupServiceRequest",
        _on("management", "lookup_service"),
    ),
    _XTA_ACTION + "GetTransportReport": _Spec(
        "getTransportReport", f"{{{WSA}}}MessageID", _on("management", "get_transport_report")
    ),
    _XTA_ACTION + "CancelMessage": _Spec(
        "cancelMessage", f"{{{WSA}}}MessageID", _on("management", "cancel_message")
    ),
    _OSCI_ACTION + "MsgBoxStatusListRequest": _Spec(
        "getStatusList", f"{{{OSCI}}}MsgBoxStatusListRequest", _on("box", "get_status_list")
    ),
    _OSCI_ACTION + "MsgBoxGetNextListRequest": _Spec(
        "getNextStatusList", f"{{{OSCI}}}MsgBoxGetNextRequest", _on("box", "get_next_status_list")
    ),
    _OSCI_ACTION + "MsgBoxFetchRequest": _Spec(
        "getMessage", f"{{{OSCI}}}MsgBoxFetchRequest", _on("box", "get_message")
    ),
    _OSCI_ACTION + "MsgBoxGetNextMsgRequest": _Spec(
        "getNextMessage", f"{{{OSCI}}}MsgBoxGetNextRequest", _on("box", "get_next_message")
    ),
    _OSCI_ACTION + "MsgBoxCloseRequest": _Spec(
        "close", f"{{{OSCI}}}MsgBoxCloseRequest", _on("box", "close")
    ),
}


def _operation(action: str | None) -> _Spec:
    if not action:
        raise XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9020",
            "the SOAP header has no WS-Addressing Action (wsa:Action); XTA 2 requires "
            "WS-Addressing, and the Action names the operation, e.g. "
            f"{_XTA_ACTION}SendMessage",
        )
    spec = _OPERATIONS.get(action)
    if spec is None:
        known = ", ".join(sorted(s.name for s in _OPERATIONS.values()))
        raise XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9021",
            f"unknown operation: the Action {action} is none of this XTA 2 service's "
            f"(operations: {known}); use the Action XTA.wsdl gives for the operation",
        )
    return spec


def _body(envelope: etree._Element, spec: _Spec) -> etree._Element | None:
    body = envelope.find(f"{{{S12}}}Body")
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if spec.body is None:
        if children:
            raise invalid(f"{spec.name} takes an empty SOAP Body, but it holds {children[0].tag}")
        return None
    if len(children) != 1 or children[0].tag != spec.body:
        found = children[0].tag if children else "nothing"
        raise invalid(
            f"the Action asks for {spec.name}, whose Body is {spec.body}, but the Body holds "
            f"{found}; the Action and the Body must name the same operation"
        )
    return children[0]


def _fault_response(fault: XtaFault, action: str | None, relates_to: str | None) -> web.Response:
    log.warning(
        "xta_fault",
        exception=fault.exception.value,
        code=fault.code,
        reason=fault.reason,
        action=action,
    )
    return web.Response(
        status=fault.status,
        body=fault.envelope(action, relates_to),
        content_type=SOAP12_MEDIA_TYPE,
        charset="utf-8",
    )
