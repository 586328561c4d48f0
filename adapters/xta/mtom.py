"""MTOM/XOP requests for zeep: ``base64Binary`` payloads sent as binary MIME parts.

zeep reads MTOM responses but writes every ``base64Binary`` value inline, a third
larger than the content and held in memory whole (python-zeep issues #599, #674,
#1344). ``MtomTransport`` closes that gap without touching zeep's serializer:

1. ``transport.attach(source, content_type=…)`` returns an ``XopPayload``, a
   ``bytes`` value that zeep accepts wherever the WSDL has ``base64Binary``; its
   bytes are a unique placeholder, so zeep writes the placeholder's base64 text;
2. ``post_xml`` finds those texts in the finished envelope and replaces each with
   ``<xop:Include href="cid:…"/>`` (W3C XOP 1.0);
3. the request goes out as ``multipart/related; type="application/xop+xml"``
   (W3C SOAP 1.2 MTOM): the envelope as root part, then one part per payload,
   read from its file in chunks while the request is written, never whole.

A request without payloads is sent as zeep would send it. The module depends on
zeep, requests and lxml only, so it can be lifted into any zeep project::

    transport = MtomTransport()
    client = zeep.Client("XTA.wsdl", transport=transport)
    pdf = transport.attach(Path("bescheid.pdf"), content_type="application/pdf")
    client.service.sendMessage(GenericContentContainer={"ContentContainer": {
        "Message": {"_value_1": pdf, "contentType": "application/pdf"}}})
"""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from lxml import etree
from zeep.transports import Transport
from zeep.wsdl.utils import etree_to_string

XOP_NS = "http://www.w3.org/2004/08/xop/include"
#: Bytes read from a payload's file per chunk of the request body.
CHUNK_SIZE = 256 * 1024
_PLACEHOLDER_PREFIX = b"ikz-xop-placeholder:"
_CRLF = b"\r\n"


class XopPayload(bytes):
    """A ``base64Binary`` value to be sent as an MTOM attachment (see ``MtomTransport.attach``).

    Its bytes are a placeholder only; the content is read from ``source`` when the
    request is written.
    """

    source: Path | IO[bytes]
    content_type: str
    content_id: str

    def __new__(cls, source: Path | IO[bytes], content_type: str, token: str) -> XopPayload:
        """A payload for ``source`` whose placeholder bytes carry ``token``."""
        payload = super().__new__(cls, _PLACEHOLDER_PREFIX + token.encode("ascii"))
        payload.source = source
        payload.content_type = content_type
        payload.content_id = f"{token}@ikz-gateway"
        return payload

    @property
    def placeholder_text(self) -> str:
        """The base64 text zeep writes for this value."""
        return base64.b64encode(bytes(self)).decode("ascii")


class MtomTransport(Transport):
    """A zeep transport that sends ``XopPayload`` values as XOP includes (MTOM).

    Payloads are registered by ``attach`` and forgotten once a request carried them,
    so one transport may serve calls from several threads.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Same arguments as ``zeep.transports.Transport``."""
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._payloads: dict[str, XopPayload] = {}
        self._lock = threading.Lock()

    def attach(self, source: Path | IO[bytes], *, content_type: str) -> XopPayload:
        """A value to put where the WSDL has ``base64Binary``; sent as a MIME part.

        Args:
            source: a file path, or a binary file object read from its current
                position (seekable ones give the request a Content-Length).
            content_type: the part's media type, e.g. ``application/pdf``.
        """
        payload = XopPayload(source, content_type, uuid.uuid4().hex)
        with self._lock:
            self._payloads[payload.placeholder_text] = payload
        return payload

    def forget(self, payload: XopPayload) -> None:
        """Drop a payload that was attached but never sent (a call that failed early)."""
        with self._lock:
            self._payloads.pop(payload.placeholder_text, None)

    def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Any:
        """Post the envelope; as MTOM when it holds attached payloads."""
        parts = self._take_payloads(envelope)
        if not parts:
            message = etree_to_string(envelope)  # type: ignore[no-untyped-call]
            return self.post(address, message, headers)  # type: ignore[no-untyped-call]
        envelope_bytes = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        body = MtomBody(envelope_bytes, headers.get("Content-Type", ""), parts)
        headers = {**headers, "Content-Type": body.content_type, "MIME-Version": "1.0"}
        return self.session.post(
            address, data=body, headers=headers, timeout=self.operation_timeout
        )

    def _take_payloads(self, envelope: Any) -> list[XopPayload]:
        """Replace every placeholder text by an ``xop:Include``; the payloads found, in order."""
        found: list[XopPayload] = []
        with self._lock:
            if not self._payloads:
                return found
            for element in envelope.iter():
                text = element.text
                if not isinstance(element.tag, str) or not text:
                    continue
                payload = self._payloads.pop(text.strip(), None)
                if payload is None:
                    continue
                element.text = None
                include = etree.SubElement(element, f"{{{XOP_NS}}}Include", nsmap={"xop": XOP_NS})
                include.set("href", "cid:" + quote(payload.content_id, safe="@"))
                found.append(payload)
        return found


@dataclass
class _Part:
    head: bytes
    payload: XopPayload | None
    size: int | None


class MtomBody:
    """The ``multipart/related`` request body, produced part by part while it is sent.

    ``len()`` is the exact byte count when every payload's size is known (a path or
    a seekable file), so the request has a Content-Length; requests otherwise sends
    it chunked.
    """

    def __init__(self, envelope: bytes, soap_content_type: str, payloads: list[XopPayload]):
        """A body of ``envelope`` (XOP-encoded) and ``payloads`` in order."""
        self.boundary = "MIMEBoundary_" + uuid.uuid4().hex
        self.root_id = f"root.{uuid.uuid4().hex}@ikz-gateway"
        soap_type, action = _soap_type(soap_content_type)
        start_info = soap_type + (f'; action="{action}"' if action else "")
        type_param = start_info.replace('"', '\\"')
        self.content_type = (
            f'multipart/related; type="application/xop+xml"; boundary="{self.boundary}"; '
            f'start="<{self.root_id}>"; start-info="{type_param}"'
        )
        root_head = (
            f"--{self.boundary}\r\n"
            f'Content-Type: application/xop+xml; charset=UTF-8; type="{type_param}"\r\n'
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{self.root_id}>\r\n\r\n"
        ).encode("ascii")
        self._parts: list[_Part] = [_Part(root_head + envelope, None, 0)]
        for payload in payloads:
            head = (
                f"\r\n--{self.boundary}\r\n"
                f"Content-Type: {payload.content_type}\r\n"
                "Content-Transfer-Encoding: binary\r\n"
                f"Content-ID: <{payload.content_id}>\r\n\r\n"
            ).encode("ascii")
            self._parts.append(_Part(head, payload, _size(payload.source)))
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    def __len__(self) -> int:
        """The body's length in bytes; 0 (unknown: send chunked) if a payload's size is."""
        sizes = [part.size for part in self._parts]
        if any(size is None for size in sizes):
            return 0
        return sum(len(p.head) + (p.size or 0) for p in self._parts) + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        """The body in chunks: part headers, the envelope, each payload's file."""
        for part in self._parts:
            yield part.head
            if part.payload is not None:
                yield from _chunks(part.payload.source)
        yield self._tail


def _chunks(source: Path | IO[bytes]) -> Iterator[bytes]:
    if isinstance(source, Path):
        with source.open("rb") as handle:
            yield from iter(lambda: handle.read(CHUNK_SIZE), b"")
    else:
        yield from iter(lambda: source.read(CHUNK_SIZE), b"")


def _size(source: Path | IO[bytes]) -> int | None:
    if isinstance(source, Path):
        return source.stat().st_size
    try:
        if not source.seekable():
            return None
        position = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(position)
        return end - position
    except (OSError, AttributeError, ValueError):
        return None


def _soap_type(content_type: str) -> tuple[str, str | None]:
    """The SOAP media type and the action parameter of zeep's Content-Type header."""
    media, *params = (p.strip() for p in content_type.split(";"))
    action = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "action":
            action = value.strip().strip('"')
    return media or "application/soap+xml", action
