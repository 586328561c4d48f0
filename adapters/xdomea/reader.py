"""Extract the Kopf and the Schriftgutobjekt tree of a parsed xdomea message.

The walk is generic over versions and message types: a Schriftgutobjekt is any
xdomea element named Akte, Teilakte, Vorgang, Teilvorgang, Dokument or Anlage
that carries an ``Identifikation/ID``; wrappers in between (``Schriftgutobjekt``,
``Akteninhalt`` …) are looked through. So documents outside any Akte or Vorgang
(common in 0503 and FVDaten messages) are found the same way as nested ones.
"""

from __future__ import annotations

from datetime import date, datetime

from lxml import etree

from adapters.xdomea.xml import Detected
from contracts.xdomea import (
    Behoerdenkennung,
    DokumentVersion,
    Format,
    Kontakt,
    Kopf,
    Nachricht,
    Primaerdokument,
    Schriftgutobjekt,
    SchriftgutobjektArt,
)

SGO_ARTEN = {art.value: art for art in SchriftgutobjektArt}


class _Names:
    """Clark-notation tag names of one xdomea namespace."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace

    def __call__(self, local: str) -> str:
        return f"{{{self.ns}}}{local}"


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _child(element: etree._Element | None, tag: str) -> etree._Element | None:
    if element is None:
        return None
    # The first child with this tag, as find(tag) gives it, at half the cost (no
    # ElementPath): the view reads about 30 of them per message.
    return next(element.iterchildren(tag), None)


def _code(element: etree._Element | None) -> str | None:
    # Code types (xoev-code:Code and xdomea code types) use an unqualified <code> child.
    return _text(_child(element, "code"))


def _code_name(element: etree._Element | None) -> str | None:
    return _text(_child(element, "name"))


def source_line(element: etree._Element) -> int | None:
    """The element's line in the parsed document, if known."""
    line = element.sourceline
    return line if isinstance(line, int) else None


def read_message(detected: Detected) -> Nachricht:
    """Build the read-only view of a detected message."""
    q = _Names(etree.QName(detected.root).namespace or "")
    kopf = _read_kopf(detected.root.find(q("Kopf")), q)
    objekte = tuple(_find_objects(detected.root, q, skip=q("Kopf")))
    return Nachricht(
        version=detected.version, typ=detected.typ, kopf=kopf, schriftgutobjekte=objekte
    )


def _read_kopf(kopf: etree._Element | None, q: _Names) -> Kopf:
    return Kopf(
        prozess_id=_text(_child(kopf, q("ProzessID"))) or "",
        nachrichtentyp=_code(_child(kopf, q("Nachrichtentyp"))) or "",
        erstellungszeitpunkt=_datetime(_text(_child(kopf, q("Erstellungszeitpunkt")))),
        absender=_read_kontakt(_child(kopf, q("Absender")), q),
        empfaenger=_read_kontakt(_child(kopf, q("Empfaenger")), q),
    )


def _datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _read_kontakt(kontakt: etree._Element | None, q: _Names) -> Kontakt:
    kennung_element = _child(kontakt, q("Behoerdenkennung"))
    behoerdenkennung = None
    if kennung_element is not None:
        # 3.x calls the key Behoerdenschluessel, 2.x calls it Kennung.
        schluessel = _child(kennung_element, q("Behoerdenschluessel"))
        if schluessel is None:
            schluessel = _child(kennung_element, q("Kennung"))
        praefix = _child(kennung_element, q("Praefix"))
        behoerdenkennung = Behoerdenkennung(
            praefix=_code(praefix),
            kennung=_code(schluessel),
            praefix_name=_code_name(praefix),
            kennung_name=_code_name(schluessel),
        )
    institution = _child(kontakt, q("Institution"))
    return Kontakt(
        behoerdenkennung=behoerdenkennung,
        institution=_text(_child(institution, q("Name"))),
        institution_kurz=_text(_child(institution, q("Kurzbezeichnung"))),
    )


def _find_objects(
    parent: etree._Element, q: _Names, *, skip: str | None = None
) -> list[Schriftgutobjekt]:
    found: list[Schriftgutobjekt] = []
    for child in parent.iterchildren(tag=etree.Element):
        tag = child.tag
        if tag == skip or not isinstance(tag, str) or not tag.startswith(f"{{{q.ns}}}"):
            continue
        local = tag[len(q.ns) + 2 :]
        art = SGO_ARTEN.get(local)
        ident = _text(_child(_child(child, q("Identifikation")), q("ID"))) if art else None
        if art is not None and ident is not None:
            found.append(_read_object(child, art, ident, q))
        else:
            found.extend(_find_objects(child, q))
    return found


def _read_object(
    element: etree._Element, art: SchriftgutobjektArt, uuid: str, q: _Names
) -> Schriftgutobjekt:
    metadaten = _child(element, q("AllgemeineMetadaten"))
    versionen = tuple(
        DokumentVersion(
            nummer=_text(_child(version, q("Nummer"))),
            formate=tuple(
                Format(
                    name_code=_code(_child(fmt, q("Name"))),
                    version=_text(_child(fmt, q("Version"))),
                    primaerdokument=Primaerdokument(
                        dateiname=_text(_child(_child(fmt, q("Primaerdokument")), q("Dateiname")))
                        or "",
                        dateiname_original=_text(
                            _child(_child(fmt, q("Primaerdokument")), q("DateinameOriginal"))
                        ),
                    ),
                )
                for fmt in version.iterchildren(q("Format"))
            ),
        )
        for version in element.iterchildren(q("Version"))
    )
    kinder = tuple(_find_objects(element, q))
    return Schriftgutobjekt(
        art=art,
        uuid=uuid,
        betreff=_text(_child(metadaten, q("Betreff"))),
        kennzeichen=_text(_child(metadaten, q("Kennzeichen"))),
        fremdes_geschaeftszeichen=_text(_child(element, q("FremdesGeschaeftszeichen"))),
        posteingangsdatum=_date(_text(_child(element, q("Posteingangsdatum")))),
        versionen=versionen,
        kinder=kinder,
        line=source_line(element),
    )
