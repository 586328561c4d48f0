"""SOAP 1.2 envelopes of the XTA 2 webservice: safe parsing, responses and faults.

Faults follow the WSDL: a SOAP 1.2 ``Fault`` whose ``Detail`` holds the
operation's exception element (``xta:ParameterIsNotValidException`` …) with an
``errorCode`` from the XTA code list "Fehlernummer" (9000–9101); the clear text
for people is the fault's ``Reason``. Sender faults answer HTTP 400, receiver
faults HTTP 500 (SOAP 1.2 HTTP binding).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from lxml import etree

S12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
XTA = "http://xoev.de/transport/xta/211"
OSCI = "http://www.osci.eu/ws/2008/05/transport"
OSCIMETA = "http://www.osci.eu/ws/2014/10/transport"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XOP = "http://www.w3.org/2004/08/xop/include"
NSMAP = {"s12": S12, "wsa": WSA, "xta": XTA, "osci": OSCI, "oscimeta": OSCIMETA}
SOAP12_MEDIA_TYPE = "application/soap+xml"
_FEHLERNUMMER_URI = "urn:de:xta:webservice:codeliste:fehlernummer"


class Exception_(StrEnum):
    """The exception elements the WSDL declares as fault details."""

    PERMISSION_DENIED = "PermissionDeniedException"
    PARAMETER_IS_NOT_VALID = "ParameterIsNotValidException"
    TECHNICAL_PROBLEM = "XTAWSTechnicalProblemException"
    MESSAGE_SCHEMA_VIOLATION = "MessageSchemaViolationException"
    SYNC_ASYNC = "SyncAsyncException"
    INVALID_MESSAGE_ID = "InvalidMessageIDException"
    CANCEL_DENIED = "CancelDeniedException"


#: Names of the XTA code list "Fehlernummer" (urn:de:xta:webservice:codeliste:fehlernummer).
FEHLERNUMMERN = {
    "9000": "Unspezifizierter Fehler, als Freitext beschrieben",
    "9012": "Account nicht vorhanden.",
    "9014": "Authentisierung/Zertifikat passt nicht zur Absenderkennung.",
    "9020": "Keine Parameter vorhanden",
    "9021": "Keine gültige URI",
    "9022": "Ungültige Parameterkombination",
    "9023": "Die Nachricht überschreitet die Größenbeschränkung.",
    "9024": "MessageID ist bereits vergeben.",
    "9030": "Interner Fehler beim XTA-Server bzw. XTA-Dienstleister",
    "9032": "Fehler bei der Zustellung",
    "9050": "Fachnachricht ist nicht schemakonform",
    "9052": "Nachricht verletzt das entsprechende Service Profil.",
    "9070": "MessageID für den Account nicht bekannt.",
    "9080": "Der Dienst wird nur asynchron angeboten.",
    "9101": "Der Schalter NotBefore wurde nicht gesetzt.",
}


class XtaFault(Exception):
    """A request the service answers with a WSDL fault (raised by the operations)."""

    def __init__(
        self, exception: Exception_, code: str, reason: str, *, receiver: bool = False
    ) -> None:
        """A fault with detail ``exception``, Fehlernummer ``code`` and the clear text ``reason``.

        Args:
            receiver: the service's fault (HTTP 500), not the client's (HTTP 400).
        """
        super().__init__(reason)
        self.exception = exception
        self.code = code
        self.reason = reason
        self.receiver = receiver

    @property
    def status(self) -> int:
        """The HTTP status the fault is sent with."""
        return 500 if self.receiver else 400

    def envelope(self, action: str | None = None, relates_to: str | None = None) -> bytes:
        """The SOAP 1.2 fault envelope."""
        envelope, body = _skeleton(action, relates_to)
        fault = etree.SubElement(body, f"{{{S12}}}Fault")
        code = etree.SubElement(fault, f"{{{S12}}}Code")
        value = etree.SubElement(code, f"{{{S12}}}Value")
        value.text = "s12:Receiver" if self.receiver else "s12:Sender"
        reason = etree.SubElement(etree.SubElement(fault, f"{{{S12}}}Reason"), f"{{{S12}}}Text")
        reason.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        reason.text = self.reason
        detail = etree.SubElement(fault, f"{{{S12}}}Detail")
        exception = etree.SubElement(detail, f"{{{XTA}}}{self.exception.value}")
        error_code = etree.SubElement(exception, f"{{{XTA}}}errorCode")
        error_code.set("listURI", _FEHLERNUMMER_URI)
        error_code.set("listVersionID", "1.0")
        etree.SubElement(error_code, "code").text = self.code
        etree.SubElement(error_code, "name").text = FEHLERNUMMERN[self.code]
        return _serialize(envelope)


def parse_envelope(data: bytes) -> etree._Element:
    """Parse a request envelope without entities, DTDs or network access.

    Raises:
        XtaFault: not well-formed, declares a DTD, or is no SOAP 1.2 envelope.
    """
    # huge_tree: an inline base64 payload is one text node far above libxml2's 10 MB
    # default; entities stay off, so a huge tree cannot be an expansion bomb.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9022",
            f"the request is not well-formed XML: {exc.msg}; send a SOAP 1.2 envelope",
        ) from exc
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9022",
            "the request declares a DTD (<!DOCTYPE …>); SOAP forbids them, remove it",
        )
    if root.tag != f"{{{S12}}}Envelope":
        raise XtaFault(
            Exception_.PARAMETER_IS_NOT_VALID,
            "9022",
            f"the request's root element is {root.tag}, not a SOAP 1.2 Envelope ({S12}); "
            "XTA 2 uses SOAP 1.2",
        )
    return root


def response(
    action: str,
    relates_to: str | None,
    body: Iterable[etree._Element] = (),
    headers: Iterable[etree._Element] = (),
) -> bytes:
    """A SOAP 1.2 response envelope with WS-Addressing Action and RelatesTo."""
    envelope, body_element = _skeleton(action, relates_to)
    header = envelope[0]
    header.extend(headers)
    body_element.extend(body)
    return _serialize(envelope)


def _skeleton(action: str | None, relates_to: str | None) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{S12}}}Envelope", nsmap={"s12": S12, "wsa": WSA, "xta": XTA})
    header = etree.SubElement(envelope, f"{{{S12}}}Header")
    if action is not None:
        etree.SubElement(header, f"{{{WSA}}}Action").text = action
    if relates_to is not None:
        etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = relates_to
    body = etree.SubElement(envelope, f"{{{S12}}}Body")
    return envelope, body


def _serialize(envelope: etree._Element) -> bytes:
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
