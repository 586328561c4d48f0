"""The XTA 2 webservice (``http://xoev.de/transport/xta/211``) as one aiohttp handler.

All three ports of ``XTA.wsdl`` are served at one path; the WS-Addressing
``Action`` header picks the operation (SOAP 1.2 carries it there, and
``checkAccountActive`` and ``createMessageId`` have the same empty body)::

    request ─► envelope (root MIME part or whole body) ─► Action ─► body fits it?
            ─► partner (client certificate / UsernameToken) ─► schema ─► operation

Payloads of ``sendMessage`` arrive as MTOM parts (``xop:Include``) or inline
base64. MTOM parts are streamed into the blob store's staging area, never held
whole; the payload then goes through the gateway's intake (channel ``xta``), so
journal, routing and receipts are the same as for HTTP intake. A Message with
Attachments becomes a ZIP container: the message under the Message's
``filename``, each attachment under its ``filename``.

Everything refused is a SOAP 1.2 fault with the WSDL's exception element as
detail and a clear text as reason (``soap.XtaFault``); nothing refused is kept.
The gateway side (intake, journal, credentials) comes in through ``Backend``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote

import structlog
from aiohttp import BodyPartReader, MultipartReader, StreamReader, web
from lxml import etree

from adapters.xta import metadata
from adapters.xta.msgbox import BoxEntry, MessageIdTaken, MsgBoxStore
from adapters.xta.schema import XtaSchema
from adapters.xta.soap import (
    OSCI,
    OSCIMETA,
    S12,
    SOAP12_MEDIA_TYPE,
    WSA,
    WSSE,
    XOP,
    XTA,
    Exception_,
    XtaFault,
    parse_envelope,
    response,
)
from contracts.config import GatewayConfig, PartnerConfig, XtaServerConfig
from gateway import tls
from gateway.blobs import BlobStore, BlobTooLarge, StagedBlob
from gateway.errors import IntakeRejected, JournalUnavailable

log = structlog.get_logger(__name__)

_XTA_ACTION = "http://www.xta.de/XTA/"
_OSCI_ACTION = "http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/"
_REQUEST_ID = "urn:ikz-gateway:msgbox:"
_PASSWORD_TEXT = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordText"
)
#: Entries a status list holds when the request names no maxListItems.
DEFAULT_LIST_ITEMS = 100
_CHUNK = 256 * 1024

#: Intake refusals (``IntakeRejected.kind``) as XTA exceptions and Fehlernummern.
_REFUSALS: dict[str, tuple[Exception_, str]] = {
    "too-large": (Exception_.PARAMETER_IS_NOT_VALID, "9023"),
    "wrong-sender": (Exception_.PERMISSION_DENIED, "9014"),
    "unroutable": (Exception_.PARAMETER_IS_NOT_VALID, "9032"),
    "idempotency-conflict": (Exception_.PARAMETER_IS_NOT_VALID, "9024"),
    "version-not-agreed": (Exception_.MESSAGE_SCHEMA_VIOLATION, "9052"),
}


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
class _Call:
    """One request on its way through an operation."""

    partner: PartnerConfig
    header: etree._Element
    body: etree._Element | None
    parts: MultipartReader | None
    #: Files the response carries as MTOM parts: (Content-ID, path, media type).
    attachments: list[tuple[str, Path, str]] = field(default_factory=list)


Operation = Callable[
    ["XtaService", _Call], Awaitable[tuple[list[etree._Element], list[etree._Element]]]
]


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
        self._msgbox = msgbox
        self._blobs = blobs
        self._schema = schema
        self._identity = config.server_identity or f"ikz-gateway:{gateway.node.id}{config.path}"

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
            action = _text(header.find(f"{{{WSA}}}Action"))
            relates_to = _text(header.find(f"{{{WSA}}}MessageID"))
            spec = _operation(action)
            body = _body(envelope, spec)
            partner = self._authenticate(request, header)
            if body is not None:
                # In a thread: an inline payload makes the body one large text node.
                await asyncio.to_thread(self._schema.check, body, f"the {spec.name} request")
            with structlog.contextvars.bound_contextvars(partner=partner.id, operation=spec.name):
                call = _Call(partner, header, body, parts)
                out_body, out_headers = await spec.run(self, call)
                log.info("xta_request_answered")
            if parts is not None:
                await _drain(parts)
            envelope_bytes = response(action or "", relates_to, out_body, out_headers)
            if call.attachments:
                return await _mtom_response(request, envelope_bytes, action, call.attachments)
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
            data = await _read_limited(
                root, self._config.max_envelope_bytes, "the SOAP envelope (MTOM root part)"
            )
            return await asyncio.to_thread(parse_envelope, data), reader
        if media == SOAP12_MEDIA_TYPE:
            # Inline base64 is a third larger than its content, plus the envelope around it.
            limit = self._config.max_message_bytes * 4 // 3 + self._config.max_envelope_bytes
            data = await _read_limited(request.content, limit, "the SOAP request")
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
                raise _denied(
                    "9012",
                    f"the client certificate {certificate.subject} (SHA-256 "
                    f"{certificate.fingerprint}) is not bound to exactly one partner of this "
                    "gateway; ask its operator to add its fingerprint as certificate_sha256 to "
                    "your partner entry",
                )
            by_certificate = bound[0]
        by_token = self._token_partner(header)
        if by_certificate and by_token and by_certificate.id != by_token.id:
            raise _denied(
                "9014",
                f"the client certificate belongs to partner {by_certificate.id}, but the "
                f"UsernameToken names partner {by_token.id}; send the matching credentials",
            )
        partner = by_certificate or by_token
        if partner is None:
            raise _denied(
                "9012",
                "no credentials: authenticate with the client certificate bound to your partner "
                "entry (mutual TLS) or a WS-Security UsernameToken (Username = partner id, "
                "Password = the partner's token)",
            )
        if partner.certificate_bound and by_certificate is None:
            raise _denied(
                "9014",
                f"partner {partner.id} must present its client certificate (mutual TLS); a "
                "UsernameToken alone is not enough",
            )
        if partner.has_token and by_token is None:
            raise _denied(
                "9014",
                f"partner {partner.id} must also send its UsernameToken (Username "
                f"{partner.id}, Password its token)",
            )
        return partner

    def _token_partner(self, header: etree._Element) -> PartnerConfig | None:
        token = header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return None
        username = _text(token.find(f"{{{WSSE}}}Username"))
        password = token.find(f"{{{WSSE}}}Password")
        if password is not None and password.get("Type", _PASSWORD_TEXT) != _PASSWORD_TEXT:
            raise _denied(
                "9012",
                "only UsernameToken passwords of type PasswordText are supported (over TLS); "
                "PasswordDigest would need the token stored in clear text",
            )
        partner = self._backend.token_partner(username, _text(password) or "") if username else None
        if partner is None:
            log.warning("xta_username_token_refused", username=username)
            raise _denied(
                "9012",
                f"the UsernameToken for {username or '(no Username)'} is not valid: the "
                "Username must be your partner id and the Password your partner token",
            )
        return partner

    # ------------------------------------------------------------------ send port

    async def send_message(self, call: _Call) -> tuple[list[etree._Element], list[etree._Element]]:
        """``sendMessage``: journal the payload through intake (channel ``xta``)."""
        meta = call.header.find(f"{{{OSCIMETA}}}MessageMetaData")
        if meta is None:
            raise XtaFault(
                Exception_.PARAMETER_IS_NOT_VALID,
                "9020",
                "sendMessage needs the oscimeta:MessageMetaData SOAP header (Author, Reader, "
                "MessageID, …) as XTA.wsdl binds it",
            )
        self._schema.check(meta, "the MessageMetaData header")
        xta_id = metadata.message_id(meta)
        assert call.body is not None
        container = call.body.find(f"{{{XTA}}}ContentContainer")
        if container is None:
            raise XtaFault(
                Exception_.PARAMETER_IS_NOT_VALID,
                "9022",
                "the GenericContentContainer holds xenc:EncryptedData; this gateway takes "
                "unencrypted ContentContainers only (the transport is TLS-protected)",
            )
        key = f"xta:{xta_id}" if xta_id else None
        streamed = await self._streamed(container, call.parts)
        if streamed is not None:
            # The common case, one MTOM part: straight into intake, staged once.
            chunks, file_name = streamed
            message_id = await self._submit(chunks, call.partner, key, file_name)
        else:
            staged: list[StagedBlob] = []
            try:
                payloads = await self._payloads(container, call.parts, staged)
                path, file_name = await self._content(payloads)
                try:
                    message_id = await self._submit(
                        _file_chunks(path), call.partner, key, file_name
                    )
                finally:
                    if path not in (p.path for p in staged):
                        path.unlink(missing_ok=True)
            finally:
                for blob in staged:
                    self._blobs.discard(blob)
        if xta_id is not None:
            try:
                await self._msgbox.record_sent(
                    xta_id, call.partner.id, message_id, etree.tostring(meta, encoding="unicode")
                )
            except MessageIdTaken as exc:
                raise XtaFault(
                    Exception_.PARAMETER_IS_NOT_VALID,
                    "9024",
                    f"the MessageID {xta_id} is taken by another transport; get a fresh one "
                    "from createMessageId",
                ) from exc
        log.info("xta_message_received", message_id=message_id, xta_message_id=xta_id)
        return [], []

    async def _submit(
        self,
        chunks: AsyncIterator[bytes],
        partner: PartnerConfig,
        key: str | None,
        file_name: str | None,
    ) -> str:
        try:
            return await self._backend.submit(
                chunks, partner, idempotency_key=key, file_name=file_name
            )
        except IntakeRejected as exc:
            if exc.kind == "too-large":
                raise self._too_large() from exc
            raise _refused(exc) from exc

    async def _streamed(
        self, container: etree._Element, parts: MultipartReader | None
    ) -> tuple[AsyncIterator[bytes], str | None] | None:
        """The Message's MTOM part as a stream, when it is the request's only payload."""
        message = container.find(f"{{{XTA}}}Message")
        include = message.find(f"{{{XOP}}}Include") if message is not None else None
        if (
            parts is None
            or message is None
            or include is None
            or container.find(f"{{{XTA}}}Attachment") is not None
        ):
            return None
        href = include.get("href", "")
        if not href.startswith("cid:"):
            raise _invalid(f"xop:Include href {href!r} is not a cid: reference")
        wanted = unquote(href[4:])
        while (part := await parts.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _invalid("nested multipart parts are not supported")
            if part.headers.get("Content-ID", "").strip().strip("<>") == wanted:
                return _part_chunks(part), message.get("filename")
            await part.release()
        raise _invalid(f"the request refers to MIME part {wanted} that it does not contain")

    def _too_large(self) -> XtaFault:
        return XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9023",
            f"a payload exceeds this gateway's XTA limit of {self._config.max_message_bytes} "
            "bytes; send a smaller message or ask the operator to raise [xta] max_message_bytes",
        )

    async def send_message_sync(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``sendMessageSync``: not offered; the WSDL's SyncAsyncException says so."""
        raise XtaFault(
            Exception_.SYNC_ASYNC,
            "9080",
            "this gateway offers asynchronous transport only: send with sendMessage and fetch "
            "the answer from your message box (getStatusList, getMessage)",
        )

    async def _payloads(
        self, container: etree._Element, parts: MultipartReader | None, staged: list[StagedBlob]
    ) -> list[tuple[StagedBlob, str | None]]:
        """Stage Message and Attachments (MTOM parts or inline base64); with their file names."""
        elements = [container.find(f"{{{XTA}}}Message"), *container.findall(f"{{{XTA}}}Attachment")]
        wanted: dict[str, int] = {}
        inline: dict[int, bytes] = {}
        for index, element in enumerate(elements):
            assert element is not None  # the schema requires the Message
            include = element.find(f"{{{XOP}}}Include")
            if include is not None:
                href = include.get("href", "")
                if not href.startswith("cid:"):
                    raise _invalid(f"xop:Include href {href!r} is not a cid: reference")
                wanted[unquote(href[4:])] = index
            else:
                limit = self._config.max_message_bytes
                inline[index] = await asyncio.to_thread(_decoded, element.text or "", limit)
        by_index: dict[int, StagedBlob] = {}
        for index, data in inline.items():
            blob = await self._stage(_once(data))
            staged.append(blob)
            by_index[index] = blob
        if wanted:
            if parts is None:
                raise _invalid(
                    "the request refers to MIME parts (xop:Include) but is not multipart/related"
                )
            while (part := await parts.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise _invalid("nested multipart parts are not supported")
                cid = part.headers.get("Content-ID", "").strip().strip("<>")
                if cid in wanted:
                    blob = await self._stage(_part_chunks(part))
                    staged.append(blob)
                    by_index[wanted.pop(cid)] = blob
                else:
                    await part.release()
            if wanted:
                raise _invalid(
                    f"the request refers to MIME part(s) {', '.join(sorted(wanted))} that it "
                    "does not contain"
                )
        return [
            (by_index[i], element.get("filename"))
            for i, element in enumerate(elements)
            if element is not None
        ]

    async def _stage(self, chunks: AsyncIterator[bytes]) -> StagedBlob:
        try:
            return await self._blobs.stage(chunks, max_bytes=self._config.max_message_bytes)
        except BlobTooLarge as exc:
            raise self._too_large() from exc

    async def _content(
        self, payloads: list[tuple[StagedBlob, str | None]]
    ) -> tuple[Path, str | None]:
        """What goes to intake: the Message alone, or Message + Attachments as a ZIP container."""
        (message, message_name), attachments = payloads[0], payloads[1:]
        if not attachments:
            return message.path, message_name
        names = [name for _, name in payloads]
        if any(not name for name in names) or len(set(names)) != len(names):
            raise _invalid(
                "a Message with Attachments needs a distinct filename attribute on each: the "
                "message's xdomea file name and each document's Dateiname, so the gateway can "
                "pack them into a container"
            )
        target = self._blobs.root / "tmp" / f"xta-{message.sha256[:16]}-{id(payloads)}.zip"
        entries = [(blob.path, str(name)) for blob, name in payloads]
        await asyncio.to_thread(_write_zip, target, entries)
        return target, Path(str(message_name)).stem + ".zip"

    # ------------------------------------------------------------------ management port

    async def create_message_id(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``createMessageId``: a fresh MessageID, recorded for this partner."""
        xta_id = await self._msgbox.create_message_id(
            call.partner.id, prefix=f"urn:de:xta:messageid:{self._gateway.node.id}"
        )
        element = etree.Element(f"{{{WSA}}}MessageID")
        element.text = xta_id
        return [element], []

    async def check_account_active(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``checkAccountActive``: an authenticated partner's account is active."""
        return [], []

    async def lookup_service(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``lookupService``: a Reader is available when this gateway routes to it."""
        assert call.body is not None
        result = etree.Element(f"{{{XTA}}}LookupServiceResponse")
        results = etree.SubElement(result, f"{{{XTA}}}LookupServiceResultList")
        for service in call.body.iter(f"{{{XTA}}}LookupService"):
            reader = service.find(f"{{{OSCIMETA}}}Reader")
            kennung = (
                _text(reader.find(f"{{{OSCIMETA}}}Identifier")) if reader is not None else None
            )
            item = etree.SubElement(results, f"{{{XTA}}}LookupServiceResult")
            item.extend(etree.fromstring(etree.tostring(child)) for child in service)
            value = etree.SubElement(item, f"{{{XTA}}}IsServiceAvailableValue")
            available = kennung is not None and self._backend.routable(kennung)
            etree.SubElement(value, f"{{{XTA}}}ServiceIsAvailable").text = str(available).lower()
        return [result], []

    async def get_transport_report(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``getTransportReport``: the state of a message this partner sent."""
        assert call.body is not None
        xta_id = _text(call.body) or ""
        transport = await self._msgbox.transport(xta_id, call.partner.id)
        if transport is None:
            raise _unknown_id(f"MessageID {xta_id} is not known for partner {call.partner.id}")
        state = (
            await self._backend.message_state(transport.message_id)
            if transport.message_id
            else None
        )
        status = {"delivered": "1", "dead": "3"}.get(state or "", "0")
        report = etree.Element(f"{{{XTA}}}TransportReport")
        if transport.metadata_xml:
            report.append(etree.fromstring(transport.metadata_xml, _parser()))
        else:
            report.append(
                metadata.build(
                    metadata.MetaData(
                        message_id=xta_id,
                        author=call.partner.behoerdenkennung,
                        reader=self._gateway.node.behoerdenkennung,
                        nachrichtentyp="0000",
                    )
                )
            )
        etree.SubElement(report, f"{{{XTA}}}ReportTime").text = _now().isoformat()
        etree.SubElement(report, f"{{{XTA}}}XTAServerIdentity").text = self._identity
        message_status = etree.SubElement(report, f"{{{XTA}}}MessageStatus")
        etree.SubElement(message_status, f"{{{XTA}}}Status").text = status
        return [report], []

    async def cancel_message(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``cancelMessage``: never possible here (messages without NotBefore leave at once)."""
        raise XtaFault(
            Exception_.CANCEL_DENIED,
            "9101",
            "this gateway delivers every message at once (it does not honour NotBefore), so a "
            "message cannot be cancelled once sent",
        )

    # ------------------------------------------------------------------ message box port

    async def get_status_list(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``getStatusList``: the open messages of the partner's box, oldest first."""
        assert call.body is not None
        limit = int(call.body.get("maxListItems", DEFAULT_LIST_ITEMS))
        new_only = _new_only(call.body)
        entries, total = await self._msgbox.open_entries(
            call.partner.id, limit=limit, new_only=new_only
        )
        return self._status_list(call, entries, total, call.body.get("ListForm"))

    async def get_next_status_list(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``getNextStatusList``: the open messages after the iterator's position."""
        assert call.body is not None
        after = _request_seq(call.body.get("MsgBoxRequestID", ""), call.partner.id)
        entries, total = await self._msgbox.open_entries(
            call.partner.id, limit=DEFAULT_LIST_ITEMS, after=after
        )
        return self._status_list(call, entries, total, None)

    def _status_list(
        self, call: _Call, entries: list[BoxEntry], total: int, form: str | None
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        listing = etree.Element(f"{{{OSCI}}}MsgStatusList", nsmap={"osci": OSCI})
        for entry in entries:
            if form == "MessageMetaData":
                listing.append(self._metadata(call.partner, entry))
            else:
                listing.append(_attributes(entry))
        last = entries[-1].seq if entries else 0
        return [listing], [
            _box_response(call.partner.id, last, total - len(entries), bool(entries))
        ]

    async def get_message(self, call: _Call) -> tuple[list[etree._Element], list[etree._Element]]:
        """``getMessage``: the selected message (by MessageID), or the oldest open one."""
        assert call.body is not None
        ids = [
            _text(e) or "" for e in call.body.iterfind(f"{{{OSCI}}}MsgSelector/{{{WSA}}}MessageID")
        ]
        if ids:
            entries = await self._msgbox.entries(call.partner.id, ids)
            if not entries:
                raise _unknown_id(
                    f"no open message {', '.join(ids)} in the message box of {call.partner.id}"
                )
            _, total = await self._msgbox.open_entries(call.partner.id, limit=1)
        else:
            entries, total = await self._msgbox.open_entries(
                call.partner.id, limit=1, new_only=_new_only(call.body)
            )
            if not entries:
                raise _unknown_id(f"the message box of {call.partner.id} holds no open message")
        return await self._fetched(call, entries[0], total)

    async def get_next_message(
        self, call: _Call
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        """``getNextMessage``: the next open message after the iterator's position."""
        assert call.body is not None
        after = _request_seq(call.body.get("MsgBoxRequestID", ""), call.partner.id)
        entries, total = await self._msgbox.open_entries(call.partner.id, limit=1, after=after)
        if not entries:
            raise _unknown_id(f"the message box of {call.partner.id} holds no further open message")
        return await self._fetched(call, entries[0], total)

    async def close(self, call: _Call) -> tuple[list[etree._Element], list[etree._Element]]:
        """``close``: the messages named as LastMsgReceived leave the box."""
        assert call.body is not None
        ids = [_text(e) or "" for e in call.body.iterfind(f"{{{OSCI}}}LastMsgReceived")]
        if ids:
            missing = await self._msgbox.close_entries(call.partner.id, ids)
            if missing:
                raise _unknown_id(
                    f"no open message {', '.join(missing)} in the message box of "
                    f"{call.partner.id}; nothing was closed"
                )
            log.info("xta_msgbox_closed", messages=len(ids))
        return [], []

    async def _fetched(
        self, call: _Call, entry: BoxEntry, total: int
    ) -> tuple[list[etree._Element], list[etree._Element]]:
        blob = self._blobs.path(entry.blob_sha256)
        if not await asyncio.to_thread(blob.is_file):
            raise XtaFault(
                Exception_.TECHNICAL_PROBLEM,
                "9030",
                f"the content of {entry.xta_message_id} is missing from the gateway's blob "
                "store; the operator finds the cause in its log",
                receiver=True,
            )
        await self._msgbox.mark_fetched(entry.seq)
        container = etree.Element(f"{{{XTA}}}GenericContentContainer")
        content = etree.SubElement(container, f"{{{XTA}}}ContentContainer")
        message = etree.SubElement(content, f"{{{XTA}}}Message")
        message.set(
            "contentType",
            "application/zip" if entry.content_kind == "container" else "application/xml",
        )
        if entry.file_name:
            message.set("filename", entry.file_name)
        message.set("size", str(entry.size))
        kind = message.get("contentType", "application/octet-stream")
        if self._config.mtom_responses:
            # Streamed from the blob as a MIME part: the payload is never held whole.
            cid = f"{entry.message_id}@ikz-gateway"
            include = etree.SubElement(message, f"{{{XOP}}}Include", nsmap={"xop": XOP})
            include.set("href", "cid:" + quote(cid, safe="@"))
            call.attachments.append((cid, blob, kind))
        else:
            data = await asyncio.to_thread(blob.read_bytes)
            message.text = base64.b64encode(data).decode("ascii")
        log.info("xta_msgbox_fetched", message_id=entry.message_id)
        headers = [
            self._metadata(call.partner, entry),
            _box_response(call.partner.id, entry.seq, max(total - 1, 0), True),
        ]
        return [container], headers

    def _metadata(self, partner: PartnerConfig, entry: BoxEntry) -> etree._Element:
        return metadata.build(
            metadata.MetaData(
                message_id=entry.xta_message_id,
                author=self._gateway.node.behoerdenkennung,
                reader=partner.behoerdenkennung,
                nachrichtentyp=entry.nachrichtentyp,
                size=entry.size,
                delivery=entry.delivered_at,
            )
        )


# ---------------------------------------------------------------------- dispatch

_OPERATIONS: dict[str, _Spec] = {
    _XTA_ACTION + "SendMessage": _Spec(
        "sendMessage", f"{{{XTA}}}GenericContentContainer", XtaService.send_message
    ),
    _XTA_ACTION + "SendMessageSync": _Spec(
        "sendMessageSync", f"{{{XTA}}}GenericContentContainer", XtaService.send_message_sync
    ),
    _XTA_ACTION + "CreateMessageID": _Spec("createMessageId", None, XtaService.create_message_id),
    _XTA_ACTION + "CheckAccountActive": _Spec(
        "checkAccountActive", None, XtaService.check_account_active
    ),
    _XTA_ACTION + "IsServiceAvailable": _Spec(
        "lookupService", f"{{{XTA}}}LookupServiceRequest", XtaService.lookup_service
    ),
    _XTA_ACTION + "GetTransportReport": _Spec(
        "getTransportReport", f"{{{WSA}}}MessageID", XtaService.get_transport_report
    ),
    _XTA_ACTION + "CancelMessage": _Spec(
        "cancelMessage", f"{{{WSA}}}MessageID", XtaService.cancel_message
    ),
    _OSCI_ACTION + "MsgBoxStatusListRequest": _Spec(
        "getStatusList", f"{{{OSCI}}}MsgBoxStatusListRequest", XtaService.get_status_list
    ),
    _OSCI_ACTION + "MsgBoxGetNextListRequest": _Spec(
        "getNextStatusList", f"{{{OSCI}}}MsgBoxGetNextRequest", XtaService.get_next_status_list
    ),
    _OSCI_ACTION + "MsgBoxFetchRequest": _Spec(
        "getMessage", f"{{{OSCI}}}MsgBoxFetchRequest", XtaService.get_message
    ),
    _OSCI_ACTION + "MsgBoxGetNextMsgRequest": _Spec(
        "getNextMessage", f"{{{OSCI}}}MsgBoxGetNextRequest", XtaService.get_next_message
    ),
    _OSCI_ACTION + "MsgBoxCloseRequest": _Spec(
        "close", f"{{{OSCI}}}MsgBoxCloseRequest", XtaService.close
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
            raise _invalid(f"{spec.name} takes an empty SOAP Body, but it holds {children[0].tag}")
        return None
    if len(children) != 1 or children[0].tag != spec.body:
        found = children[0].tag if children else "nothing"
        raise _invalid(
            f"the Action asks for {spec.name}, whose Body is {spec.body}, but the Body holds "
            f"{found}; the Action and the Body must name the same operation"
        )
    return children[0]


# ---------------------------------------------------------------------- helpers


async def _mtom_response(
    request: web.Request,
    envelope: bytes,
    action: str | None,
    attachments: list[tuple[str, Path, str]],
) -> web.StreamResponse:
    """The response as MTOM: the envelope as root part, each file streamed as a part.

    No Content-Transfer-Encoding header on the parts: zeep strips CR/LF from both
    ends of a part declared ``binary``, which would change payloads ending in a newline.
    """
    boundary = "MIMEBoundary_" + uuid.uuid4().hex
    root_id = f"root.{uuid.uuid4().hex}@ikz-gateway"
    soap_type = SOAP12_MEDIA_TYPE + (f'; action=\\"{action}\\"' if action else "")
    answer = web.StreamResponse(
        headers={
            "Content-Type": (
                f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
                f'start="<{root_id}>"; start-info="{soap_type}"'
            ),
            "MIME-Version": "1.0",
        }
    )
    await answer.prepare(request)
    await answer.write(
        (
            f"--{boundary}\r\n"
            f'Content-Type: application/xop+xml; charset=UTF-8; type="{soap_type}"\r\n'
            f"Content-ID: <{root_id}>\r\n\r\n"
        ).encode("ascii")
        + envelope
    )
    for cid, path, media_type in attachments:
        await answer.write(
            (
                f"\r\n--{boundary}\r\nContent-Type: {media_type}\r\nContent-ID: <{cid}>\r\n\r\n"
            ).encode("ascii")
        )
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                await answer.write(chunk)
        finally:
            handle.close()
    await answer.write(f"\r\n--{boundary}--\r\n".encode("ascii"))
    await answer.write_eof()
    return answer


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


def _refused(exc: IntakeRejected) -> XtaFault:
    exception, code = _REFUSALS.get(exc.kind, (Exception_.MESSAGE_SCHEMA_VIOLATION, "9050"))
    return XtaFault(exception, code, exc.message)


def _denied(code: str, reason: str) -> XtaFault:
    return XtaFault(Exception_.PERMISSION_DENIED, code, reason)


def _invalid(reason: str) -> XtaFault:
    return XtaFault(Exception_.PARAMETER_IS_NOT_VALID, "9022", reason)


def _unknown_id(reason: str) -> XtaFault:
    return XtaFault(Exception_.INVALID_MESSAGE_ID, "9070", reason)


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _decoded(text: str, limit: int) -> bytes:
    compact = "".join(text.split())
    if len(compact) * 3 // 4 > limit:
        raise XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9023",
            f"a payload exceeds this gateway's XTA limit of {limit} bytes; send a smaller "
            "message or ask the operator to raise [xta] max_message_bytes",
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(f"a payload is not valid base64: {exc}") from exc


def _new_only(request: etree._Element) -> bool:
    selector = request.find(f"{{{OSCI}}}MsgSelector")
    return selector is not None and selector.get("newEntry") in ("true", "1")


def _request_seq(request_id: str, partner_id: str) -> int:
    """The box position a MsgBoxRequestID this service issued stands for."""
    prefix = f"{_REQUEST_ID}{partner_id}:"
    tail = request_id.removeprefix(prefix)
    if tail == request_id or not tail.isdigit():
        raise _unknown_id(
            f"MsgBoxRequestID {request_id!r} was not issued by this service for "
            f"{partner_id}; start with getStatusList or getMessage"
        )
    return int(tail)


def _box_response(partner_id: str, seq: int, pending: int, found: bool) -> etree._Element:
    element = etree.Element(f"{{{OSCI}}}MsgBoxResponse", nsmap={"osci": OSCI})
    element.set("MsgBoxRequestID", f"{_REQUEST_ID}{partner_id}:{seq}")
    if found:
        etree.SubElement(element, f"{{{OSCI}}}ItemsPending").text = str(pending)
    else:
        none = etree.SubElement(element, f"{{{OSCI}}}NoMessageAvailable")
        none.set("reason", "http://www.osci.eu/ws/2008/05/transport/MsgBox/reasons/NoMatch")
    return element


def _attributes(entry: BoxEntry) -> etree._Element:
    attributes = etree.Element(f"{{{OSCI}}}MsgAttributes")
    etree.SubElement(attributes, f"{{{WSA}}}MessageID").text = entry.xta_message_id
    etree.SubElement(
        attributes, f"{{{OSCI}}}TypeOfBusinessScenario"
    ).text = f"xdomea:{entry.nachrichtentyp}"
    etree.SubElement(attributes, f"{{{OSCI}}}MsgSize").text = str(entry.size)
    etree.SubElement(attributes, f"{{{OSCI}}}DeliveryTime").text = entry.delivered_at.isoformat()
    if entry.fetched_at is not None:
        etree.SubElement(
            attributes, f"{{{OSCI}}}InitialFetchedTime"
        ).text = entry.fetched_at.isoformat()
    return attributes


async def _read_limited(source: BodyPartReader | StreamReader, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        if isinstance(source, BodyPartReader):
            chunk = await source.read_chunk(_CHUNK)
        else:
            chunk = await source.read(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise XtaFault(
                Exception_.PARAMETER_IS_NOT_VALID,
                "9023",
                f"{what} exceeds this gateway's limit of {limit} bytes; send large payloads "
                "as MTOM attachments, or ask the operator to raise [xta] max_message_bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(_CHUNK):
        yield chunk


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, 1024 * 1024):
            yield chunk
    finally:
        handle.close()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _drain(parts: MultipartReader) -> None:
    while (part := await parts.next()) is not None:
        await part.release()


def _write_zip(target: Path, entries: list[tuple[Path, str]]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in entries:
            archive.write(path, name)


def _now() -> datetime:
    return datetime.now(UTC)
