"""SendXtaPort: ``sendMessage`` into the gateway's intake, ``sendMessageSync`` refused.

Payloads arrive as MTOM parts (``xop:Include``) or inline base64. A lone MTOM
Message part is streamed straight into intake (staged once, as over HTTP);
inline payloads and a Message with Attachments are staged first, the latter
packed into a ZIP container (the message under the Message's ``filename``, each
attachment under its own). Journal, routing and receipts are those of HTTP
intake (channel ``xta``); nothing refused is kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import structlog
from aiohttp import BodyPartReader, MultipartReader
from lxml import etree

from adapters.xta import metadata
from adapters.xta.mime import once, part_chunks, write_zip
from adapters.xta.msgbox import MessageIdTaken, MsgBoxStore
from adapters.xta.operation import Answer, Backend, Call, invalid
from adapters.xta.schema import XtaSchema
from adapters.xta.soap import OSCIMETA, XOP, XTA, Exception_, XtaFault
from contracts.config import PartnerConfig, XtaServerConfig
from gateway.blobs import BlobStore, BlobTooLarge, StagedBlob
from gateway.blocking import file_chunks
from gateway.errors import IntakeRejected

log = structlog.get_logger(__name__)

#: Intake refusals (``IntakeRejected.kind``) as XTA exceptions and Fehlernummern.
_REFUSALS: dict[str, tuple[Exception_, str]] = {
    "too-large": (Exception_.PARAMETER_IS_NOT_VALID, "9023"),
    "wrong-sender": (Exception_.PERMISSION_DENIED, "9014"),
    "unroutable": (Exception_.PARAMETER_IS_NOT_VALID, "9032"),
    "idempotency-conflict": (Exception_.PARAMETER_IS_NOT_VALID, "9024"),
    "version-not-agreed": (Exception_.MESSAGE_SCHEMA_VIOLATION, "9052"),
}


class SendPort:
    """The operations of SendXtaPort."""

    def __init__(
        self,
        config: XtaServerConfig,
        backend: Backend,
        msgbox: MsgBoxStore,
        blobs: BlobStore,
        schema: XtaSchema,
    ) -> None:
        """The port over the gateway's intake (``backend``), staging in ``blobs``."""
        self._config = config
        self._backend = backend
        self._msgbox = msgbox
        self._blobs = blobs
        self._schema = schema

    async def send_message(self, call: Call) -> Answer:
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
                    message_id = await self._submit(file_chunks(path), call.partner, key, file_name)
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
            raise invalid(f"xop:Include href {href!r} is not a cid: reference")
        wanted = unquote(href[4:])
        while (part := await parts.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise invalid("nested multipart parts are not supported")
            if part.headers.get("Content-ID", "").strip().strip("<>") == wanted:
                return part_chunks(part), message.get("filename")
            await part.release()
        raise invalid(f"the request refers to MIME part {wanted} that it does not contain")

    def _too_large(self) -> XtaFault:
        return XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9023",
            f"a payload exceeds this gateway's XTA limit of {self._config.max_message_bytes} "
            "bytes; send a smaller message or ask the operator to raise [xta] max_message_bytes",
        )

    async def send_message_sync(self, call: Call) -> Answer:
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
                    raise invalid(f"xop:Include href {href!r} is not a cid: reference")
                wanted[unquote(href[4:])] = index
            else:
                limit = self._config.max_message_bytes
                inline[index] = await asyncio.to_thread(_decoded, element.text or "", limit)
        by_index: dict[int, StagedBlob] = {}
        for index, data in inline.items():
            blob = await self._stage(once(data))
            staged.append(blob)
            by_index[index] = blob
        if wanted:
            if parts is None:
                raise invalid(
                    "the request refers to MIME parts (xop:Include) but is not multipart/related"
                )
            while (part := await parts.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise invalid("nested multipart parts are not supported")
                cid = part.headers.get("Content-ID", "").strip().strip("<>")
                if cid in wanted:
                    blob = await self._stage(part_chunks(part))
                    staged.append(blob)
                    by_index[wanted.pop(cid)] = blob
                else:
                    await part.release()
            if wanted:
                raise invalid(
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
            raise invalid(
                "a Message with Attachments needs a distinct filename attribute on each: the "
                "message's xdomea file name and each document's Dateiname, so the gateway can "
                "pack them into a container"
            )
        target = self._blobs.root / "tmp" / f"xta-{message.sha256[:16]}-{id(payloads)}.zip"
        entries = [(blob.path, str(name)) for blob, name in payloads]
        await asyncio.to_thread(write_zip, target, entries)
        return target, Path(str(message_name)).stem + ".zip"


def _refused(exc: IntakeRejected) -> XtaFault:
    exception, code = _REFUSALS.get(exc.kind, (Exception_.MESSAGE_SCHEMA_VIOLATION, "9050"))
    return XtaFault(exception, code, exc.message)


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
        raise invalid(f"a payload is not valid base64: {exc}") from exc
