"""Safe parsing of xdomea XML and detection of version and message type.

Parsing never resolves entities, never loads a DTD and never touches the network;
a document that declares a DTD at all (the vehicle of billion-laughs and XXE) is
refused before anything reads its content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from lxml import etree

from contracts.xdomea import MessageType
from gateway.errors import (
    MalformedXml,
    NotXdomea,
    SchemaError,
    UnknownMessageType,
    UnsafeXml,
    UnsupportedVersion,
)
from schemas import catalog
from schemas.loader import SchemaLoader, default_loader


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def parse(source: bytes | IO[bytes], *, where: str | None = None) -> etree._ElementTree:
    """Parse XML bytes or a binary stream safely.

    Raises:
        MalformedXml: not well-formed.
        UnsafeXml: declares a DTD or entities.
    """
    parser = _parser()
    try:
        if isinstance(source, bytes):
            root = etree.fromstring(source, parser)
            tree = root.getroottree()
        else:
            tree = etree.parse(source, parser)
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "entity" in text.lower() or "DOCTYPE" in text:
            raise UnsafeXml(
                f"XML entities and DTDs are not allowed in xdomea messages ({text})",
                where=where,
            ) from exc
        line = f" (line {exc.lineno})" if exc.lineno else ""
        raise MalformedXml(f"not well-formed XML{line}: {exc.msg}", where=where) from exc
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise UnsafeXml(
            "the document declares a DTD (<!DOCTYPE …>); xdomea messages never need one and "
            "the gateway refuses them to rule out entity expansion and external references. "
            "Remove the DOCTYPE declaration",
            where=where,
        )
    return tree


@dataclass(frozen=True)
class Detected:
    """Version and message type read off a parsed message's root element."""

    version: str
    typ: MessageType
    root: etree._Element


def detect(
    tree: etree._ElementTree, *, loader: SchemaLoader | None = None, where: str | None = None
) -> Detected:
    """Read xdomea version (namespace) and message type (root element).

    Raises:
        NotXdomea: the root is not in an xdomea namespace.
        UnsupportedVersion: the version is unknown or its schemas are not installed.
        UnknownMessageType: the root element is not a message of that version.
    """
    loader = loader or default_loader()
    root = tree.getroot()
    qname = etree.QName(root)
    version = catalog.version_of_namespace(qname.namespace or "")
    if version is None:
        shown = f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname
        raise NotXdomea(
            f"root element {shown} is not an xdomea message; expected an element in a "
            f"namespace {catalog.NAMESPACE_PREFIX}<version>",
            where=where,
        )
    installed = loader.installed_versions()
    if version not in catalog.versions() or version not in installed:
        listed = ", ".join(installed) if installed else "none"
        hint = (
            f" (known but not installed: run 'ikz-gateway schemas import' or 'ikz-gateway "
            f"schemas fetch {version}')"
            if version in catalog.versions()
            else ""
        )
        raise UnsupportedVersion(
            f"unsupported xdomea version {version}; installed: {listed}{hint}", where=where
        )
    try:
        known = loader.version(version).message_types
    except SchemaError as exc:
        raise UnsupportedVersion(str(exc), where=where) from exc
    if qname.localname not in known:
        elsewhere = [
            v
            for v in installed
            if v != version and qname.localname in loader.version(v).message_types
        ]
        extra = f" (it exists in xdomea {', '.join(elsewhere)})" if elsewhere else ""
        raise UnknownMessageType(
            f"{qname.localname} is not a message type of xdomea {version}{extra}", where=where
        )
    return Detected(version=version, typ=MessageType.from_element(qname.localname), root=root)
