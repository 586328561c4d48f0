"""The MTOM transport turns attached base64Binary values into XOP includes of a multipart/related request."""

from __future__ import annotations

import email.parser
import email.policy
import io
from typing import Any
from urllib.parse import unquote

import pytest
import zeep
from lxml import etree

from adapters.xta.mtom import XOP_NS, MtomTransport
from tests.xta_support import NS, WSDL

PAYLOAD = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"


class _Captured:
    """A requests session stand-in that keeps what would have been posted."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.posted: list[tuple[bytes, dict[str, str], int | None]] = []

    def mount(self, *_: Any) -> None:
        """zeep mounts a file adapter on its session."""

    def post(self, address: str, data: Any, headers: dict[str, str], timeout: Any) -> Any:
        length = len(data) if hasattr(data, "__len__") and not isinstance(data, bytes) else None
        body = data if isinstance(data, bytes) else b"".join(data)
        self.posted.append((body, headers, length))
        raise _Sent


class _Sent(Exception):
    pass


def _send(payload_source: Any) -> tuple[bytes, dict[str, str], int | None]:
    session = _Captured()
    transport = MtomTransport(session=session)
    client = zeep.Client(str(WSDL), transport=transport)
    send = client.create_service(f"{NS}sendXTAHttpsBinding", "http://127.0.0.1:1/xta")
    message: dict[str, Any] = {"contentType": "application/pdf"}
    message["_value_1"] = (
        transport.attach(payload_source, content_type="application/pdf")
        if payload_source is not None
        else PAYLOAD
    )
    with pytest.raises(_Sent):
        send.sendMessage(ContentContainer={"Message": message})
    return session.posted[0]


def _parts(body: bytes, content_type: str) -> list[Any]:
    raw = b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.get_content_type() == "multipart/related"
    return list(message.iter_parts())


def test_attached_payload_is_sent_as_a_mime_part_of_a_multipart_related_request() -> None:
    """A standard MIME parser finds the envelope as root part and the payload's exact bytes."""
    body, headers, _ = _send(io.BytesIO(PAYLOAD))
    root, attachment = _parts(body, headers["Content-Type"])
    assert root.get_content_type() == "application/xop+xml"
    assert attachment.get_payload(decode=True) == PAYLOAD
    assert attachment.get_content_type() == "application/pdf"


def test_envelope_refers_to_the_part_by_its_content_id() -> None:
    """The Message element holds one xop:Include whose cid: names the payload's part."""
    body, headers, _ = _send(io.BytesIO(PAYLOAD))
    root, attachment = _parts(body, headers["Content-Type"])
    envelope = etree.fromstring(root.get_payload(decode=True))
    includes = envelope.findall(f".//{NS}Message/{{{XOP_NS}}}Include")
    assert len(includes) == 1
    assert unquote(includes[0].get("href")).removeprefix("cid:") == attachment["Content-ID"].strip(
        "<>"
    )
    assert envelope.find(f".//{NS}Message").text is None


def test_content_type_names_xop_the_root_part_and_the_soap_action() -> None:
    """The request's Content-Type carries type, start and start-info with the SOAP 1.2 action."""
    body, headers, _ = _send(io.BytesIO(PAYLOAD))
    content_type = headers["Content-Type"]
    root, _ = _parts(body, content_type)
    assert 'type="application/xop+xml"' in content_type
    assert f'start="{root["Content-ID"]}"' in content_type
    assert "http://www.xta.de/XTA/SendMessage" in content_type
    assert "application/soap+xml" in root["Content-Type"]


def test_body_length_is_known_for_a_seekable_source() -> None:
    """A file-like payload with a size gives the body an exact length (a Content-Length)."""
    body, _, length = _send(io.BytesIO(PAYLOAD))
    assert length == len(body)


def test_request_without_attached_payload_is_plain_soap() -> None:
    """Without attached values the transport sends zeep's own inline request."""
    body, headers, _ = _send(None)
    assert headers["Content-Type"].startswith("application/soap+xml")
    assert b"Include" not in body
