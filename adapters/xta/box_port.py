"""MsgBoxPort: a partner's message box (status lists, fetching, iterating, closing).

A MsgBoxRequestID this port issues names the box position of the last entry it
answered with (``urn:ikz-gateway:msgbox:<partner>:<seq>``), so ``getNextMessage``
and ``getNextStatusList`` continue from there without server-side iterator state.
Fetched payloads go back as MTOM parts streamed from the blob store
(``[xta] mtom_responses``), else inline base64.
"""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import quote

import structlog
from lxml import etree

from adapters.xta import metadata
from adapters.xta.msgbox import BoxEntry, MsgBoxStore
from adapters.xta.operation import Answer, Call, text, unknown_id
from adapters.xta.soap import OSCI, WSA, XOP, XTA, Exception_, XtaFault
from contracts.config import GatewayConfig, PartnerConfig, XtaServerConfig
from gateway.blobs import BlobStore

log = structlog.get_logger(__name__)

_REQUEST_ID = "urn:ikz-gateway:msgbox:"
#: Entries a status list holds when the request names no maxListItems.
DEFAULT_LIST_ITEMS = 100


class MsgBoxPort:
    """The operations of MsgBoxPort."""

    def __init__(
        self,
        gateway: GatewayConfig,
        config: XtaServerConfig,
        msgbox: MsgBoxStore,
        blobs: BlobStore,
    ) -> None:
        """The boxes of ``gateway``'s partners in ``msgbox``, their payloads in ``blobs``."""
        self._gateway = gateway
        self._config = config
        self._msgbox = msgbox
        self._blobs = blobs

    async def get_status_list(self, call: Call) -> Answer:
        """``getStatusList``: the open messages of the partner's box, oldest first."""
        assert call.body is not None
        limit = int(call.body.get("maxListItems", DEFAULT_LIST_ITEMS))
        new_only = _new_only(call.body)
        entries, total = await self._msgbox.open_entries(
            call.partner.id, limit=limit, new_only=new_only
        )
        return self._status_list(call, entries, total, call.body.get("ListForm"))

    async def get_next_status_list(self, call: Call) -> Answer:
        """``getNextStatusList``: the open messages after the iterator's position."""
        assert call.body is not None
        after = _request_seq(call.body.get("MsgBoxRequestID", ""), call.partner.id)
        entries, total = await self._msgbox.open_entries(
            call.partner.id, limit=DEFAULT_LIST_ITEMS, after=after
        )
        return self._status_list(call, entries, total, None)

    def _status_list(
        self, call: Call, entries: list[BoxEntry], total: int, form: str | None
    ) -> Answer:
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

    async def get_message(self, call: Call) -> Answer:
        """``getMessage``: the selected message (by MessageID), or the oldest open one."""
        assert call.body is not None
        ids = [
            text(e) or "" for e in call.body.iterfind(f"{{{OSCI}}}MsgSelector/{{{WSA}}}MessageID")
        ]
        if ids:
            entries = await self._msgbox.entries(call.partner.id, ids)
            if not entries:
                raise unknown_id(
                    f"no open message {', '.join(ids)} in the message box of {call.partner.id}"
                )
            _, total = await self._msgbox.open_entries(call.partner.id, limit=1)
        else:
            entries, total = await self._msgbox.open_entries(
                call.partner.id, limit=1, new_only=_new_only(call.body)
            )
            if not entries:
                raise unknown_id(f"the message box of {call.partner.id} holds no open message")
        return await self._fetched(call, entries[0], total)

    async def get_next_message(self, call: Call) -> Answer:
        """``getNextMessage``: the next open message after the iterator's position."""
        assert call.body is not None
        after = _request_seq(call.body.get("MsgBoxRequestID", ""), call.partner.id)
        entries, total = await self._msgbox.open_entries(call.partner.id, limit=1, after=after)
        if not entries:
            raise unknown_id(f"the message box of {call.partner.id} holds no further open message")
        return await self._fetched(call, entries[0], total)

    async def close(self, call: Call) -> Answer:
        """``close``: the messages named as LastMsgReceived leave the box."""
        assert call.body is not None
        ids = [text(e) or "" for e in call.body.iterfind(f"{{{OSCI}}}LastMsgReceived")]
        if ids:
            missing = await self._msgbox.close_entries(call.partner.id, ids)
            if missing:
                raise unknown_id(
                    f"no open message {', '.join(missing)} in the message box of "
                    f"{call.partner.id}; nothing was closed"
                )
            log.info("xta_msgbox_closed", messages=len(ids))
        return [], []

    async def _fetched(self, call: Call, entry: BoxEntry, total: int) -> Answer:
        blob = await self._blobs.file(entry.blob_sha256)
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


def _new_only(request: etree._Element) -> bool:
    selector = request.find(f"{{{OSCI}}}MsgSelector")
    return selector is not None and selector.get("newEntry") in ("true", "1")


def _request_seq(request_id: str, partner_id: str) -> int:
    """The box position a MsgBoxRequestID this service issued stands for."""
    prefix = f"{_REQUEST_ID}{partner_id}:"
    tail = request_id.removeprefix(prefix)
    if tail == request_id or not tail.isdigit():
        raise unknown_id(
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
