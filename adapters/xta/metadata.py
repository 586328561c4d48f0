"""OSCI ``MessageMetaData`` for XTA 2 transports of xdomea messages (build and read).

The XTA client sends it as the SOAP header of ``sendMessage``; the service returns
it with every message fetched from a box and inside each ``TransportReport``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from adapters.xta.soap import OSCIMETA, WSA

#: Service and code list the gateway names for xdomea payloads.
XDOMEA_SERVICE = "urn:xoev-de:xdomea:service"
NACHRICHTENTYP_LIST = "urn:xoev-de:xdomea:codeliste:nachrichtentyp"
XDOMEA_SCHEMA = "urn:xoev-de:xdomea:schema"


@dataclass(frozen=True)
class MetaData:
    """What the gateway puts into or reads from a MessageMetaData."""

    message_id: str
    author: str
    reader: str
    nachrichtentyp: str
    identifier_type: str = "xoev"
    size: int | None = None
    delivery: datetime | None = None


def build(meta: MetaData) -> etree._Element:
    """The ``oscimeta:MessageMetaData`` element for ``meta`` (schema-valid)."""
    e = _Maker()
    root = e("MessageMetaData")
    attributes = e.sub(root, "DeliveryAttributes")
    if meta.delivery is not None:
        e.sub(attributes, "Delivery").text = meta.delivery.isoformat()
    author = e.sub(e.sub(root, "Originators"), "Author")
    _identifier(e.sub(author, "Identifier"), meta.author, meta.identifier_type)
    reader = e.sub(e.sub(root, "Destinations"), "Reader")
    _identifier(e.sub(reader, "Identifier"), meta.reader, meta.identifier_type)
    identification = e.sub(root, "MsgIdentification")
    etree.SubElement(identification, f"{{{WSA}}}MessageID").text = meta.message_id
    qualifier = e.sub(root, "Qualifier")
    e.sub(qualifier, "Service").text = XDOMEA_SERVICE
    e.sub(e.sub(qualifier, "BusinessScenario"), "Undefined").text = "xdomea"
    message_type = e.sub(qualifier, "MessageType")
    message_type.set("listURI", NACHRICHTENTYP_LIST)
    message_type.set("listVersionID", "1.0")
    message_type.set("payloadSchema", XDOMEA_SCHEMA)
    etree.SubElement(message_type, "code").text = meta.nachrichtentyp
    if meta.size:
        e.sub(root, "MsgSize").text = str(meta.size)
    return root


def message_id(metadata: etree._Element) -> str | None:
    """The MessageID a (schema-valid) MessageMetaData names."""
    found = metadata.find(f"{{{OSCIMETA}}}MsgIdentification/{{{WSA}}}MessageID")
    return None if found is None or not found.text else found.text.strip()


def _identifier(element: etree._Element, value: str, kind: str) -> None:
    element.text = value
    element.set("type", kind)


class _Maker:
    def __call__(self, name: str) -> etree._Element:
        return etree.Element(f"{{{OSCIMETA}}}{name}", nsmap={"oscimeta": OSCIMETA, "wsa": WSA})

    def sub(self, parent: etree._Element, name: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{OSCIMETA}}}{name}")
