"""xdomea ↔ DMS: what of a Schriftgutobjekt the DMS keeps, and how an export gets it back.

Import side: ``objektdaten`` turns the reader's view of one object (plus its own
original XML element) into the port's ``Objektdaten``; ``dokumenttyp`` decides
Eingang vs. intern; ``Aktenplan`` finds the Aktenplaneintrag of a new Akte.
Export side: ``spec`` turns a tree read back from the DMS into the builders'
specs. ``docs/dms-mapping.md`` lists every mapped element.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from lxml import etree

from adapters.xdomea import reader
from contracts.builders import AkteSpec, DokumentSpec, FormatSpec, VersionSpec, VorgangSpec
from contracts.dms import Dokumenttyp, FormatEintrag, Objektdaten
from contracts.xdomea import Schriftgutobjekt, SchriftgutobjektArt, uuid_key
from gateway.errors import BuildError

#: Dateiformat codes (xdomea code list) by file extension, for documents the DMS
#: holds without xdomea metadata (created there by hand).
_FORMAT_CODES: Mapping[str, str] = {
    "bmp": "001",
    "csv": "002",
    "doc": "003",
    "eml": "006",
    "htm": "007",
    "html": "008",
    "jpeg": "010",
    "jpg": "011",
    "msg": "012",
    "odp": "013",
    "ods": "014",
    "odt": "015",
    "pdf": "018",
    "png": "019",
    "ppt": "020",
    "rtf": "022",
    "tif": "023",
    "tiff": "024",
    "xls": "028",
    "xml": "030",
    "docx": "035",
    "xlsx": "036",
    "pptx": "037",
    "txt": "045",
}
_SONSTIGES = "100"

AKTEN = frozenset({SchriftgutobjektArt.AKTE, SchriftgutobjektArt.TEILAKTE})
VORGAENGE = frozenset({SchriftgutobjektArt.VORGANG, SchriftgutobjektArt.TEILVORGANG})


def dokumenttyp(sgo: Schriftgutobjekt) -> Dokumenttyp:
    """Eingang if the metadata says the document came in from outside, else intern.

    xdomea marks an incoming letter by a Posteingangsdatum or a FremdesGeschaeftszeichen
    (the sender's reference); anything else is filed as an internal document.
    """
    if sgo.posteingangsdatum is not None or sgo.fremdes_geschaeftszeichen is not None:
        return Dokumenttyp.EINGANG
    return Dokumenttyp.INTERN


def objektdaten(
    sgo: Schriftgutobjekt,
    *,
    prozess_id: str,
    xdomea_version: str,
    quelle: str | None,
    aktenplaneintrag: str | None = None,
) -> Objektdaten:
    """What the DMS keeps of ``sgo`` (children excluded)."""
    is_dokument = sgo.art in (SchriftgutobjektArt.DOKUMENT, SchriftgutobjektArt.ANLAGE)
    return Objektdaten(
        art=sgo.art,
        uuid=sgo.uuid,
        betreff=sgo.betreff,
        kennzeichen=sgo.kennzeichen,
        dokumenttyp=dokumenttyp(sgo) if is_dokument else None,
        fremdes_geschaeftszeichen=sgo.fremdes_geschaeftszeichen,
        posteingangsdatum=sgo.posteingangsdatum,
        formate=tuple(
            FormatEintrag(
                nummer=version.nummer,
                code=fmt.name_code,
                version=fmt.version,
                dateiname=fmt.primaerdokument.dateiname,
            )
            for version in sgo.versionen
            for fmt in version.formate
        ),
        aktenplaneintrag=aktenplaneintrag,
        prozess_id=prozess_id,
        xdomea_version=xdomea_version,
        quelle=quelle,
    )


#: Marks where a child object stood in a stored ``quelle`` element.
PLATZHALTER = "ikz-sgo:"


def object_sources(root: etree._Element) -> dict[str, str]:
    """Each Schriftgutobjekt's own original element, by UUID key.

    Its child objects are cut out and a comment ``ikz-sgo:<uuid>`` marks where each
    stood, so an export can put the children back in their place. This is what the
    DMS has no field for (Fristen, Vertraulichkeit, Bemerkung, …); it is stored with
    the object so that nothing of the message is lost.
    """
    ns = etree.QName(root).namespace
    sources: dict[str, str] = {}
    for element in root.iter(tag=etree.Element):
        ident = identifikation(element, ns)
        if ident is None:
            continue
        own = copy.deepcopy(element)
        children = [c for c in list(own.iter(tag=etree.Element))[1:] if _outermost(c, own, ns)]
        for child in children:
            marker = etree.Comment(PLATZHALTER + (identifikation(child, ns) or ""))
            marker.tail = child.tail
            parent = child.getparent()
            assert parent is not None  # a descendant of ``own`` has a parent
            parent.replace(child, marker)
        own.tail = None
        etree.cleanup_namespaces(own)
        sources[uuid_key(ident)] = etree.tostring(own, encoding="unicode")
    return sources


def _outermost(element: etree._Element, top: etree._Element, ns: str | None) -> bool:
    """Whether ``element`` is an object with no object between it and ``top``."""
    if identifikation(element, ns) is None:
        return False
    parent = element.getparent()
    while parent is not None and parent is not top:
        if identifikation(parent, ns) is not None:
            return False
        parent = parent.getparent()
    return True


def identifikation(element: etree._Element, ns: str | None) -> str | None:
    """The xdomea UUID if ``element`` is a Schriftgutobjekt of namespace ``ns``."""
    tag = element.tag
    if not isinstance(tag, str) or etree.QName(tag).namespace != ns:
        return None
    if etree.QName(tag).localname not in reader.SGO_ARTEN:
        return None
    ident = element.findtext(f"{{{ns}}}Identifikation/{{{ns}}}ID")
    return ident.strip() if ident and ident.strip() else None


# --------------------------------------------------------------------------- Aktenplan

_SEPARATORS = re.compile(r"[./\-\s]")


@dataclass(frozen=True)
class Aktenplan:
    """Which Aktenplaneintrag (DMS address) a new Akte is filed under.

    Keys are Aktenzeichen prefixes; an Akte's Kennzeichen ``63.01.02/2024`` matches
    ``63.01.02``, ``63.01`` and ``63`` (at separator boundaries), and the longest
    configured one wins. ``default`` takes Akten no key matches.
    """

    eintraege: Mapping[str, str]
    default: str | None = None

    def eintrag(self, kennzeichen: str | None) -> str | None:
        """The Aktenplaneintrag address for an Akte with ``kennzeichen``, or ``None``."""
        if kennzeichen:
            best: tuple[int, str] | None = None
            for prefix, adresse in self.eintraege.items():
                if _matches(kennzeichen.strip(), prefix.strip()) and (
                    best is None or len(prefix) > best[0]
                ):
                    best = (len(prefix), adresse)
            if best is not None:
                return best[1]
        return self.default


def _matches(kennzeichen: str, prefix: str) -> bool:
    if not prefix or not kennzeichen.startswith(prefix):
        return False
    rest = kennzeichen[len(prefix) :]
    return not rest or bool(_SEPARATORS.match(rest)) or bool(_SEPARATORS.match(prefix[-1]))


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Knoten:
    """An object read back from the DMS with its children, ready to become a spec."""

    daten: Objektdaten
    kinder: tuple[Knoten, ...]
    #: Names of the content objects the DMS holds for this Dokument, in order.
    inhalte: tuple[str, ...] = ()


def spec(knoten: Knoten) -> AkteSpec | VorgangSpec | DokumentSpec:
    """The builder spec of a tree read back from the DMS.

    Raises:
        BuildError: a tree xdomea cannot express (an Akte inside a Vorgang).
    """
    art = knoten.daten.art
    if art in AKTEN:
        return _akte(knoten)
    if art in VORGAENGE:
        return _vorgang(knoten)
    return _dokument(knoten)


def _akte(knoten: Knoten) -> AkteSpec:
    daten = knoten.daten
    return AkteSpec(
        uuid=daten.uuid,
        betreff=daten.betreff,
        kennzeichen=daten.kennzeichen,
        dokumente=tuple(_dokument(k) for k in _kinder(knoten, "Dokument")),
        vorgaenge=tuple(_vorgang(k) for k in _kinder(knoten, "Vorgang")),
        teilakten=tuple(_akte(k) for k in _kinder(knoten, "Akte")),
    )


def _vorgang(knoten: Knoten) -> VorgangSpec:
    daten = knoten.daten
    if _kinder(knoten, "Akte"):
        raise BuildError(
            f"Vorgang {daten.uuid} holds an Akte in the DMS; xdomea cannot express an Akte "
            "inside a Vorgang. Export the Akte on its own"
        )
    return VorgangSpec(
        uuid=daten.uuid,
        betreff=daten.betreff,
        kennzeichen=daten.kennzeichen,
        dokumente=tuple(_dokument(k) for k in _kinder(knoten, "Dokument")),
        teilvorgaenge=tuple(_vorgang(k) for k in _kinder(knoten, "Vorgang")),
    )


def _kinder(knoten: Knoten, gruppe: str) -> list[Knoten]:
    groups = {"Akte": AKTEN, "Vorgang": VORGAENGE}
    if gruppe in groups:
        return [k for k in knoten.kinder if k.daten.art in groups[gruppe]]
    return [k for k in knoten.kinder if k.daten.art not in AKTEN | VORGAENGE]


def _dokument(knoten: Knoten) -> DokumentSpec:
    daten = knoten.daten
    known = {f.dateiname for f in daten.formate}
    eintraege = [f for f in daten.formate if f.dateiname in knoten.inhalte]
    # Content objects added in the DMS after the import become further versions.
    eintraege += [_native_format(name) for name in knoten.inhalte if name not in known]
    versionen: dict[str, list[FormatSpec]] = {}
    for eintrag in eintraege:
        versionen.setdefault(eintrag.nummer or "1", []).append(
            FormatSpec(
                dateiname=eintrag.dateiname,
                code=eintrag.code or _SONSTIGES,
                version=eintrag.version or "unbekannt",
            )
        )
    return DokumentSpec(
        uuid=daten.uuid,
        betreff=daten.betreff,
        kennzeichen=daten.kennzeichen,
        fremdes_geschaeftszeichen=daten.fremdes_geschaeftszeichen,
        posteingangsdatum=daten.posteingangsdatum,
        versionen=tuple(
            VersionSpec(nummer=nummer, formate=tuple(formate))
            for nummer, formate in versionen.items()
        ),
    )


def _native_format(dateiname: str) -> FormatEintrag:
    extension = PurePosixPath(dateiname).suffix.lower().lstrip(".")
    return FormatEintrag(
        nummer="1", code=_FORMAT_CODES.get(extension, _SONSTIGES), version=None, dateiname=dateiname
    )


def check_tree(objekte: Sequence[Schriftgutobjekt]) -> None:
    """Refuse trees the import cannot file (an Anlage, which no DMS call can hold).

    Raises:
        BuildError: with the object and what to do.
    """
    for sgo in (o for top in objekte for o in top.walk()):
        if sgo.art is SchriftgutobjektArt.ANLAGE:
            raise BuildError(
                f"Anlage {sgo.uuid} (line {sgo.line}) cannot be imported: the DMS interface has "
                "no Anlage object; send it as a Dokument"
            )
