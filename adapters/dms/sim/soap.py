"""SOAP 1.1 and 1.2 envelopes for the simulator: read a request, write answers and faults.

Requests are parsed safely (no DTDs, no entities, no network); ``huge_tree`` is on
because a base64 document easily exceeds libxml2's 10 MB text-node limit, which
is harmless once entities are off.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


class SoapVersion(StrEnum):
    """The SOAP version of a request, answered in kind."""

    V11 = "1.1"
    V12 = "1.2"

    @property
    def namespace(self) -> str:
        """The envelope namespace."""
        return SOAP11 if self is SoapVersion.V11 else SOAP12

    @property
    def content_type(self) -> str:
        """The HTTP Content-Type of its messages."""
        return "text/xml" if self is SoapVersion.V11 else "application/soap+xml"


class SoapFault(Exception):
    """A request the simulator answers with a SOAP fault."""

    def __init__(self, message: str, *, sender: bool = True) -> None:
        super().__init__(message)
        self.message = message
        #: Sender (Client) faults blame the request; Receiver (Server) faults the service.
        self.sender = sender


@dataclass(frozen=True)
class SoapRequest:
    """A parsed request: its version, action and body element."""

    version: SoapVersion
    action: str | None
    body: etree._Element


def version_of(content_type: str) -> SoapVersion:
    """The SOAP version a Content-Type announces.

    Raises:
        SoapFault: neither SOAP 1.1 (text/xml) nor 1.2 (application/soap+xml).
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/xml":
        return SoapVersion.V11
    if media == "application/soap+xml":
        return SoapVersion.V12
    raise SoapFault(
        f"Content-Type {media or 'missing'!r} is not SOAP: use text/xml (SOAP 1.1) or "
        "application/soap+xml (SOAP 1.2)"
    )


def action_of(version: SoapVersion, soapaction_header: str | None, content_type: str) -> str | None:
    """The SOAP action: the SOAPAction header (1.1) or the Content-Type's action (1.2)."""
    if version is SoapVersion.V11:
        return soapaction_header.strip().strip('"') if soapaction_header is not None else None
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.strip().partition("=")
        if key.strip().lower() == "action":
            return value.strip().strip('"')
    return None


def parse_request(data: bytes, version: SoapVersion, action: str | None) -> SoapRequest:
    """Parse an envelope and return its single body element.

    Raises:
        SoapFault: not well-formed, unsafe, the wrong envelope, or not one body element.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise SoapFault(f"the request is not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:  # type: ignore[union-attr]
        raise SoapFault("the request declares a DTD; SOAP messages must not")
    if root.tag != f"{{{version.namespace}}}Envelope":
        raise SoapFault(
            f"expected a SOAP {version.value} Envelope ({{{version.namespace}}}Envelope) for "
            f"Content-Type {version.content_type}, got {root.tag}"
        )
    body = root.find(f"{{{version.namespace}}}Body")
    children = [] if body is None else list(body.iterchildren(tag=etree.Element))
    if len(children) != 1:
        raise SoapFault(f"the SOAP Body must hold exactly one element, it holds {len(children)}")
    return SoapRequest(version=version, action=action, body=children[0])


def envelope(version: SoapVersion, payload: etree._Element) -> bytes:
    """A response envelope around ``payload``."""
    ns = version.namespace
    root = etree.Element(f"{{{ns}}}Envelope", nsmap={"soap": ns})
    etree.SubElement(root, f"{{{ns}}}Body").append(payload)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def fault(version: SoapVersion, fault_: SoapFault) -> tuple[int, bytes]:
    """HTTP status and envelope of a fault (1.1: always 500; 1.2: 400 Sender, 500 Receiver)."""
    ns = version.namespace
    root = etree.Element(f"{{{ns}}}Envelope", nsmap={"soap": ns})
    body = etree.SubElement(root, f"{{{ns}}}Body")
    element = etree.SubElement(body, f"{{{ns}}}Fault")
    if version is SoapVersion.V11:
        code = "soap:Client" if fault_.sender else "soap:Server"
        etree.SubElement(element, "faultcode").text = code
        etree.SubElement(element, "faultstring").text = fault_.message
        status = 500
    else:
        code_element = etree.SubElement(element, f"{{{ns}}}Code")
        value = "soap:Sender" if fault_.sender else "soap:Receiver"
        etree.SubElement(code_element, f"{{{ns}}}Value").text = value
        reason = etree.SubElement(element, f"{{{ns}}}Reason")
        text = etree.SubElement(reason, f"{{{ns}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        text.text = fault_.message
        status = 400 if fault_.sender else 500
    return status, etree.tostring(root, xml_declaration=True, encoding="UTF-8")
