"""Put the xdomea metadata the DMS has no field for back into an exported message.

The import keeps each object's original element (``Objektdaten.quelle``, its child
objects replaced by ``ikz-sgo:<uuid>`` comments). The export first writes the
message from what the DMS holds (builders); this module then replaces each
object's element by its original, with

* the children of the export in the places the comments mark,
* Betreff, fremdes Geschäftszeichen and Posteingangsdatum as the DMS has them now.

An original is only used when it can be trusted to fit: same xdomea version, the
same children, and the same documents (versions and formats) as the export.
Otherwise that object keeps the builders' element. The caller validates the result
and falls back to the builders' message if it is not schema-valid.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from adapters.dms import mapping
from adapters.xdomea import xml
from contracts.dms import Objektdaten
from contracts.xdomea import uuid_key


def restore(message: bytes, daten: Mapping[str, Objektdaten], version: str) -> bytes:
    """``message`` with every object's original element restored where it fits.

    Args:
        message: the 0401 written by the builders from the DMS's content.
        daten: what the DMS keeps of each object, by UUID key.
        version: the xdomea version of ``message``.
    """
    root = xml.parse(message).getroot()
    ns = etree.QName(root).namespace
    for wrapper in root.iterchildren(f"{{{ns}}}Schriftgutobjekt"):
        for element in list(wrapper.iterchildren(tag=etree.Element)):
            wrapper.replace(element, _restored(element, daten, version, ns))
    etree.cleanup_namespaces(root)
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _restored(
    element: etree._Element, daten: Mapping[str, Objektdaten], version: str, ns: str | None
) -> etree._Element:
    """``element`` (children restored first), or its original when that fits."""
    kinder: dict[str, etree._Element] = {}
    for child in _child_objects(element, ns):
        uuid = mapping.identifikation(child, ns) or ""
        restored = _restored(child, daten, version, ns)
        parent = child.getparent()
        assert parent is not None
        parent.replace(child, restored)
        kinder[uuid_key(uuid)] = restored
    objekt = daten.get(uuid_key(mapping.identifikation(element, ns) or ""))
    if objekt is None or objekt.quelle is None or objekt.xdomea_version != version:
        return element
    original = xml.parse(objekt.quelle.encode()).getroot()
    if etree.QName(original).namespace != ns or etree.QName(original) != etree.QName(element):
        return element
    markers = [
        c for c in original.iter(etree.Comment) if str(c.text).startswith(mapping.PLATZHALTER)
    ]
    if sorted(uuid_key(str(m.text)[len(mapping.PLATZHALTER) :]) for m in markers) != sorted(kinder):
        return element  # the DMS has other children now
    if _formate(original, ns) != _formate(element, ns):
        return element  # the DMS has other documents now
    for path in ("AllgemeineMetadaten/Betreff", "FremdesGeschaeftszeichen", "Posteingangsdatum"):
        if not _take_text(original, element, path, ns):
            return element  # a field the DMS now has but the original lacks, or vice versa
    # Only now move the children: ``element`` must stay whole for the returns above.
    for marker in markers:
        parent = marker.getparent()
        assert parent is not None
        child = kinder[uuid_key(str(marker.text)[len(mapping.PLATZHALTER) :])]
        child.tail = marker.tail
        parent.replace(marker, child)
    original.tail = element.tail
    return original


def _child_objects(element: etree._Element, ns: str | None) -> list[etree._Element]:
    """The objects directly below ``element`` (through wrappers like Akteninhalt)."""
    found = []
    for child in element.iterchildren(tag=etree.Element):
        if mapping.identifikation(child, ns) is not None:
            found.append(child)
        else:
            found.extend(_child_objects(child, ns))
    return found


def _formate(element: etree._Element, ns: str | None) -> list[tuple[str | None, ...]]:
    q = f"{{{ns}}}"
    return [
        (
            version.findtext(f"{q}Nummer"),
            fmt.findtext(f"{q}Name/code"),
            fmt.findtext(f"{q}Version"),
            fmt.findtext(f"{q}Primaerdokument/{q}Dateiname"),
        )
        for version in element.iterchildren(f"{q}Version")
        for fmt in version.iterchildren(f"{q}Format")
    ]


def _take_text(original: etree._Element, built: etree._Element, path: str, ns: str | None) -> bool:
    """Give ``original`` the DMS's current value at ``path``; whether that was possible."""
    qualified = "/".join(f"{{{ns}}}{part}" for part in path.split("/"))
    mine, theirs = original.find(qualified), built.find(qualified)
    if mine is None or theirs is None:
        return mine is None and theirs is None
    mine.text = theirs.text
    return True
