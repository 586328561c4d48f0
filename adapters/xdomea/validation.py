"""Validation of xdomea messages against the schema of their own version.

``check_message`` is the hot path: one safe parse, detection, one schema
validation against a compiled schema cached per thread, plus the few semantic
rules the XSDs cannot express. Findings carry line and element path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, cast

from lxml import etree

from adapters.xdomea import reader, xml
from contracts.xdomea import Finding, Nachricht, Severity, uuid_key
from schemas.loader import SchemaLoader, default_loader


@dataclass(frozen=True)
class CheckedMessage:
    """A parsed, detected and validated message."""

    detected: xml.Detected
    tree: etree._ElementTree
    findings: tuple[Finding, ...]

    @property
    def valid(self) -> bool:
        """No error-level findings."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def read(self) -> Nachricht:
        """The Kopf and Schriftgutobjekt view of the message (built once, then kept)."""
        return self._view

    @functools.cached_property
    def _view(self) -> Nachricht:
        # The view is immutable; a container's check asks for it twice, intake once more.
        return reader.read_message(self.detected)


def check_message(
    source: bytes | IO[bytes],
    *,
    loader: SchemaLoader | None = None,
    where: str | None = None,
    semantic: bool = True,
) -> CheckedMessage:
    """Parse, detect and validate one message.

    Raises:
        UnusableInput: (subclasses) the XML cannot be evaluated: malformed, unsafe, not
            xdomea, unsupported version or unknown message type.
    """
    loader = loader or default_loader()
    tree = xml.parse(source, where=where)
    detected = xml.detect(tree, loader=loader, where=where)
    findings = schema_findings(tree, detected, loader)
    if semantic:
        findings.extend(semantic_findings(detected))
    return CheckedMessage(detected=detected, tree=tree, findings=tuple(findings))


def schema_findings(
    tree: etree._ElementTree, detected: xml.Detected, loader: SchemaLoader
) -> list[Finding]:
    """XSD errors of ``tree`` against its version's schema, with line and element path."""
    schema = loader.schema(detected.version, detected.typ.family)
    if schema.validate(tree):
        return []
    return [
        Finding(message=entry.message, line=entry.line or None, path=entry.path or None)
        for entry in cast("Iterable[etree._LogEntry]", schema.error_log)
    ]


def semantic_findings(detected: xml.Detected) -> list[Finding]:
    """Rules of the xdomea specification the XSDs do not enforce.

    Works on the tree directly (no model building): this runs for every message.
    """
    findings: list[Finding] = []
    ns = etree.QName(detected.root).namespace
    code = detected.root.findtext(f"{{{ns}}}Kopf/{{{ns}}}Nachrichtentyp/code")
    code = code.strip() if code else None
    if code and code != detected.typ.code:
        findings.append(
            Finding(
                severity=Severity.WARNING,
                message=(
                    f"Kopf/Nachrichtentyp is {code} but the root element is "
                    f"{detected.typ.element}; the gateway goes by the root element"
                ),
                path="Kopf/Nachrichtentyp",
                source="semantic",
            )
        )
    seen: dict[str, int | None] = {}
    # Every Identifikation/ID whose grandparent is a Schriftgutobjekt. Filtering by tag
    # in iter() and comparing tag strings costs a fraction of an ElementPath search
    # plus a QName per element, and this loop runs once per object of every message.
    identifikation = f"{{{ns}}}Identifikation"
    for ident in detected.root.iter(f"{{{ns}}}ID"):
        parent = ident.getparent()
        owner = parent.getparent() if parent is not None and parent.tag == identifikation else None
        if owner is None or _localname(owner.tag) not in reader.SGO_ARTEN or not ident.text:
            continue
        key = uuid_key(ident.text)
        if key in seen:
            findings.append(
                Finding(
                    message=(
                        f"ID {ident.text.strip()} is used by more than one Schriftgutobjekt "
                        f"(first at line {seen[key]}); every Schriftgutobjekt needs its own UUID"
                    ),
                    line=reader.source_line(owner),
                    path="Identifikation/ID",
                    source="semantic",
                )
            )
        else:
            seen[key] = reader.source_line(owner)
    return findings


def _localname(tag: str) -> str:
    """The local part of a Clark-notation tag (what ``etree.QName(...).localname`` gives)."""
    return tag.rpartition("}")[2]
