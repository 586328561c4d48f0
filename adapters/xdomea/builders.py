"""Schema-valid xdomea messages, written from immutable specs, for every supported version.

The builders serve the product (exports from a DMS) and the tests (the project's
own test-data factory). They write with lxml, never by string concatenation, under
the prefix ``xdomea``; code-type children ``code``/``name`` stay unqualified as the
XÖV code type demands.

What differs between the versions is collected in ``Dialect`` so that the writers
stay version-agnostic:

* the agency key is ``Kennung`` in 2.x and ``Behoerdenschluessel`` in 3.x;
* 2.x requires ``SendendesSystem`` in every Kopf (the builders always write it);
* only 3.x Abgabe (0401) and Aussonderung (0503) Kopf carry ``Empfangsbestaetigung``;
* a 2.x ``Akteninhalt`` holds either Dokumente or Vorgänge, and Teilakten follow it
  as siblings; in 3.x ``Akteninhalt`` holds Dokumente, Vorgänge and Teilakten;
* a 3.x Bewertung wraps the ``Aussonderungsart`` code in an ``Aussonderungsart``
  choice element; 2.x writes the code directly.

The building blocks (``dialect``, ``new_message``, ``write_kopf``, ``to_bytes`` …)
are public because ``adapters.xdomea.receipts`` writes its Kopf with them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from contracts.builders import (
    AkteSpec,
    DokumentSpec,
    SchriftgutobjektSpec,
    SendendesSystem,
    VorgangSpec,
    new_uuid,
)
from contracts.xdomea import Kontakt
from gateway.errors import BuildError, UnsupportedVersion
from schemas import catalog

PREFIX = "xdomea"

#: Root element of each message the builders write, by Nachrichtentyp code.
MESSAGE_ELEMENTS: Mapping[str, str] = {
    "0101": "Information.Information.0101",
    "0401": "Abgabe.Abgabe.0401",
    "0501": "Aussonderung.Anbieteverzeichnis.0501",
    "0502": "Aussonderung.Bewertungsverzeichnis.0502",
    "0503": "Aussonderung.Aussonderung.0503",
}

#: Codes of the Aussonderungsart code list (the same in every version).
AUSSONDERUNGSARTEN = frozenset({"A", "B", "V"})

_LIST_NACHRICHTENTYP = "urn:xoev-de:xdomea:codeliste:nachrichtentyp"
_LIST_DATEIFORMAT = "urn:xoev-de:xdomea:codeliste:dateiformat"
_LIST_AUSSONDERUNGSART = "urn:xoev-de:xdomea:codeliste:aussonderungsart"

DEFAULT_SYSTEM = SendendesSystem()


@dataclass(frozen=True)
class Dialect:
    """What a writer needs to know about one xdomea version."""

    version: str
    namespace: str
    major: int

    def q(self, local: str) -> str:
        """Clark-notation name of an xdomea element."""
        return f"{{{self.namespace}}}{local}"

    @property
    def behoerdenschluessel(self) -> str:
        """Element name of the agency key inside ``Behoerdenkennung``."""
        return "Kennung" if self.major == 2 else "Behoerdenschluessel"

    @property
    def nachrichtentyp_list_version(self) -> str:
        """The listVersionID the schema fixes for the Nachrichtentyp code list."""
        return "1.0" if self.major == 2 else "2.0"

    @property
    def import_kopf_has_empfangsbestaetigung(self) -> bool:
        """Whether the 0401 and 0503 Kopf carry ``Empfangsbestaetigung`` (3.x only)."""
        return self.major >= 3

    @property
    def akteninhalt_holds_everything(self) -> bool:
        """Whether ``Akteninhalt`` may mix Dokumente and Vorgänge and holds Teilakten (3.x)."""
        return self.major >= 3

    @property
    def nested_aussonderungsart(self) -> bool:
        """Whether a Bewertung wraps its code in an ``Aussonderungsart`` choice (3.x)."""
        return self.major >= 3

    @property
    def results_per_object(self) -> bool:
        """Whether 0402 and 0506 report per Schriftgutobjekt (3.x) or once per message (2.x)."""
        return self.major >= 3


def dialect(version: str) -> Dialect:
    """The writer's view of ``version``.

    Raises:
        UnsupportedVersion: the gateway does not know the version.
    """
    try:
        entry = catalog.get(version)
    except KeyError:
        known = ", ".join(catalog.versions())
        raise UnsupportedVersion(
            f"cannot write xdomea {version}; supported versions: {known}"
        ) from None
    return Dialect(version=entry.version, namespace=entry.namespace, major=entry.major)


@dataclass(frozen=True)
class Kopfdaten:
    """Everything a Kopf holds besides its type code and type-specific flags.

    A party is either a ``Kontakt`` to write or an ``Absender``/``Empfaenger``
    element of another message to copy verbatim (receipts answer that way).
    """

    prozess_id: str
    erstellungszeitpunkt: datetime
    absender: Kontakt | etree._Element
    empfaenger: Kontakt | etree._Element
    sendendes_system: SendendesSystem = DEFAULT_SYSTEM
    hinweis: str | None = None


def now() -> datetime:
    """The current time in UTC without microseconds, as the builders stamp messages."""
    return datetime.now(UTC).replace(microsecond=0)


# --- element helpers ---------------------------------------------------------------


def new_message(d: Dialect, element: str) -> etree._Element:
    """An empty message root ``element`` that declares the ``xdomea`` prefix."""
    return etree.Element(d.q(element), nsmap={PREFIX: d.namespace})


def add(parent: etree._Element, d: Dialect, local: str, text: str | None = None) -> etree._Element:
    """Append the xdomea element ``local`` to ``parent``, with ``text`` if given."""
    element = etree.SubElement(parent, d.q(local))
    if text is not None:
        element.text = text
    return element


def add_code(
    parent: etree._Element,
    d: Dialect,
    local: str,
    code: str,
    *,
    name: str | None = None,
    list_uri: str | None = None,
    list_version: str | None = None,
) -> etree._Element:
    """Append a code-type element: unqualified ``code`` and optional ``name`` children."""
    element = add(parent, d, local)
    if list_uri is not None:
        element.set("listURI", list_uri)
    if list_version is not None:
        element.set("listVersionID", list_version)
    # The XÖV code type declares its children with form="unqualified": no namespace.
    etree.SubElement(element, "code").text = code
    if name is not None:
        etree.SubElement(element, "name").text = name
    return element


def add_boolean(parent: etree._Element, d: Dialect, local: str, value: bool) -> etree._Element:
    """Append an ``xs:boolean`` element, spelled 1/0 as the schemas' fixed values are."""
    return add(parent, d, local, "1" if value else "0")


def to_bytes(root: etree._Element) -> bytes:
    """Serialize a message: UTF-8, XML declaration, two-space indentation."""
    # Copied elements bring namespace declarations of their old document along.
    etree.cleanup_namespaces(root)
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --- Kopf --------------------------------------------------------------------------


def write_kopf(
    root: etree._Element,
    d: Dialect,
    code: str,
    kopf: Kopfdaten,
    flags: Sequence[tuple[str, bool]] = (),
) -> etree._Element:
    """Write the Kopf: the NkBasisType sequence, then the type's ``flags`` in order.

    Args:
        root: the message root.
        d: the version being written.
        code: the Nachrichtentyp code; it must match the root element.
        kopf: ids, time and parties.
        flags: the boolean elements the message type appends to NkBasisType
            (``Importbestaetigung``, ``RueckmeldungArchivkennung``, ``Empfangsbestaetigung``),
            in schema order.
    """
    element = add(root, d, "Kopf")
    add(element, d, "ProzessID", kopf.prozess_id)
    add_code(
        element,
        d,
        "Nachrichtentyp",
        code,
        list_uri=_LIST_NACHRICHTENTYP,
        list_version=d.nachrichtentyp_list_version,
    )
    add(element, d, "Erstellungszeitpunkt", kopf.erstellungszeitpunkt.isoformat())
    _write_party(element, d, "Absender", kopf.absender)
    _write_party(element, d, "Empfaenger", kopf.empfaenger)
    _write_system(element, d, kopf.sendendes_system)
    if kopf.hinweis is not None:
        add(element, d, "Hinweis", kopf.hinweis)
    for name, value in flags:
        add_boolean(element, d, name, value)
    return element


def _write_party(
    kopf: etree._Element, d: Dialect, tag: str, party: Kontakt | etree._Element
) -> None:
    if isinstance(party, Kontakt):
        _write_kontakt(kopf, d, tag, party)
        return
    # The other message's XML is the source of truth: keep every sub-element.
    copied = copy.deepcopy(party)
    copied.tag = d.q(tag)
    copied.tail = None
    kopf.append(copied)


def _write_kontakt(parent: etree._Element, d: Dialect, tag: str, kontakt: Kontakt) -> None:
    element = add(parent, d, tag)
    kennung = kontakt.behoerdenkennung
    if kennung is not None and (kennung.kennung is not None or kennung.praefix is not None):
        behoerde = add(element, d, "Behoerdenkennung")
        if kennung.kennung is not None:
            add_code(behoerde, d, d.behoerdenschluessel, kennung.kennung, name=kennung.kennung_name)
        if kennung.praefix is not None:
            add_code(behoerde, d, "Praefix", kennung.praefix, name=kennung.praefix_name)
    if kontakt.institution is not None or kontakt.institution_kurz is not None:
        institution = add(element, d, "Institution")
        if kontakt.institution is not None:
            add(institution, d, "Name", kontakt.institution)
        if kontakt.institution_kurz is not None:
            add(institution, d, "Kurzbezeichnung", kontakt.institution_kurz)


def _write_system(kopf: etree._Element, d: Dialect, system: SendendesSystem) -> None:
    element = add(kopf, d, "SendendesSystem")
    if system.instanz_id is not None:
        add(element, d, "InstanzID", system.instanz_id)
    add(element, d, "Produktname", system.produktname)
    if system.version is not None:
        add(element, d, "Version", system.version)


# --- Schriftgutobjekte -------------------------------------------------------------


def write_objekte(
    root: etree._Element, d: Dialect, objekte: Sequence[SchriftgutobjektSpec]
) -> None:
    """Write each top-level object in its own ``Schriftgutobjekt`` wrapper.

    Raises:
        BuildError: no objects (every message type here needs one), or a tree the
            version cannot express.
    """
    if not objekte:
        raise BuildError(
            f"{etree.QName(root).localname} needs at least one Schriftgutobjekt; none was given"
        )
    for objekt in objekte:
        wrapper = add(root, d, "Schriftgutobjekt")
        if isinstance(objekt, AkteSpec):
            _write_akte(wrapper, d, objekt, "Akte")
        elif isinstance(objekt, VorgangSpec):
            _write_vorgang(wrapper, d, objekt, "Vorgang")
        else:
            _write_dokument(wrapper, d, objekt)


def _write_head(
    parent: etree._Element,
    d: Dialect,
    tag: str,
    objekt: SchriftgutobjektSpec,
) -> etree._Element:
    """The element with the parts every kind starts with: Identifikation, Metadaten."""
    element = add(parent, d, tag)
    add(add(element, d, "Identifikation"), d, "ID", objekt.uuid)
    if objekt.betreff is not None or objekt.kennzeichen is not None:
        metadaten = add(element, d, "AllgemeineMetadaten")
        if objekt.betreff is not None:
            add(metadaten, d, "Betreff", objekt.betreff)
        if objekt.kennzeichen is not None:
            add(metadaten, d, "Kennzeichen", objekt.kennzeichen)
    return element


def _write_akte(parent: etree._Element, d: Dialect, akte: AkteSpec, tag: str) -> None:
    if akte.dokumente and akte.vorgaenge and not d.akteninhalt_holds_everything:
        raise BuildError(
            f"{tag} {akte.uuid} holds both Dokumente and Vorgänge directly; xdomea "
            f"{d.version} allows only one kind per Akteninhalt (3.x allows both). Put the "
            "Dokumente into a Vorgang"
        )
    element = _write_head(parent, d, tag, akte)
    # 3.x nests Teilakten in Akteninhalt after the Vorgänge; 2.x puts them after
    # Akteninhalt (and after Verweis/Kontakt, which the builders never write).
    teilakten_inside = d.akteninhalt_holds_everything
    needs_inhalt = akte.dokumente or akte.vorgaenge or (teilakten_inside and akte.teilakten)
    inhalt = add(element, d, "Akteninhalt") if needs_inhalt else element
    for dokument in akte.dokumente:
        _write_dokument(inhalt, d, dokument)
    for vorgang in akte.vorgaenge:
        _write_vorgang(inhalt, d, vorgang, "Vorgang")
    teilakten_parent = inhalt if teilakten_inside else element
    for teilakte in akte.teilakten:
        _write_akte(teilakten_parent, d, teilakte, "Teilakte")


def _write_vorgang(parent: etree._Element, d: Dialect, vorgang: VorgangSpec, tag: str) -> None:
    element = _write_head(parent, d, tag, vorgang)
    for dokument in vorgang.dokumente:
        _write_dokument(element, d, dokument)
    for teilvorgang in vorgang.teilvorgaenge:
        _write_vorgang(element, d, teilvorgang, "Teilvorgang")


def _write_dokument(parent: etree._Element, d: Dialect, dokument: DokumentSpec) -> None:
    element = _write_head(parent, d, "Dokument", dokument)
    # Every version puts these two right after AllgemeineMetadaten, in this order.
    if dokument.fremdes_geschaeftszeichen is not None:
        add(element, d, "FremdesGeschaeftszeichen", dokument.fremdes_geschaeftszeichen)
    if dokument.posteingangsdatum is not None:
        add(element, d, "Posteingangsdatum", dokument.posteingangsdatum.isoformat())
    for version in dokument.versionen:
        version_element = add(element, d, "Version")
        add(version_element, d, "Nummer", version.nummer)
        for fmt in version.formate:
            format_element = add(version_element, d, "Format")
            add_code(
                format_element,
                d,
                "Name",
                fmt.code,
                list_uri=_LIST_DATEIFORMAT,
                list_version=fmt.codeliste_version,
            )
            add(format_element, d, "Version", fmt.version)
            add(add(format_element, d, "Primaerdokument"), d, "Dateiname", fmt.dateiname)


def write_bewertungen(root: etree._Element, d: Dialect, bewertungen: Mapping[str, str]) -> None:
    """Write one ``BewertetesObjekt`` per UUID with its Aussonderungsart code.

    Raises:
        BuildError: no Bewertungen, or a code outside the Aussonderungsart code list.
    """
    if not bewertungen:
        raise BuildError("a Bewertungsverzeichnis needs at least one BewertetesObjekt")
    for uuid, code in bewertungen.items():
        if code not in AUSSONDERUNGSARTEN:
            allowed = ", ".join(sorted(AUSSONDERUNGSARTEN))
            raise BuildError(
                f"Aussonderungsart {code!r} for {uuid} is not in the code list ({allowed}: "
                "A archivwürdig, B bewerten, V vernichten)"
            )
        objekt = add(root, d, "BewertetesObjekt")
        add(objekt, d, "ID", uuid)
        holder = add(objekt, d, "Aussonderungsart") if d.nested_aussonderungsart else objekt
        add_code(
            holder, d, "Aussonderungsart", code, list_uri=_LIST_AUSSONDERUNGSART, list_version="1.0"
        )


# --- the builders ------------------------------------------------------------------


def _build(
    version: str,
    code: str,
    kopf: Kopfdaten,
    flags: Callable[[Dialect], Sequence[tuple[str, bool]]],
    body: Callable[[etree._Element, Dialect], None],
) -> bytes:
    d = dialect(version)
    root = new_message(d, MESSAGE_ELEMENTS[code])
    write_kopf(root, d, code, kopf, flags(d))
    body(root, d)
    return to_bytes(root)


def _kopfdaten(
    prozess_id: str | None,
    erstellungszeitpunkt: datetime | None,
    absender: Kontakt,
    empfaenger: Kontakt,
    sendendes_system: SendendesSystem,
    hinweis: str | None,
) -> Kopfdaten:
    return Kopfdaten(
        prozess_id=prozess_id or new_uuid(),
        erstellungszeitpunkt=erstellungszeitpunkt or now(),
        absender=absender,
        empfaenger=empfaenger,
        sendendes_system=sendendes_system,
        hinweis=hinweis,
    )


def _objects(objekte: Sequence[SchriftgutobjektSpec]) -> Callable[[etree._Element, Dialect], None]:
    return lambda root, d: write_objekte(root, d, objekte)


def _empfangsbestaetigung(requested: bool | None) -> list[tuple[str, bool]]:
    # None means "the version's default": ask for the receipt wherever it can be asked.
    return [("Empfangsbestaetigung", True if requested is None else requested)]


def _import_empfangsbestaetigung(
    d: Dialect, code: str, requested: bool | None
) -> list[tuple[str, bool]]:
    if d.import_kopf_has_empfangsbestaetigung:
        return _empfangsbestaetigung(requested)
    if requested:
        raise BuildError(
            f"a {code} Kopf has no Empfangsbestaetigung in xdomea {d.version}; it exists "
            "from 3.0.0 on. Leave empfangsbestaetigung unset for 2.x"
        )
    return []


def build_abgabe_0401(
    version: str,
    objekte: Sequence[SchriftgutobjektSpec],
    *,
    absender: Kontakt,
    empfaenger: Kontakt,
    prozess_id: str | None = None,
    erstellungszeitpunkt: datetime | None = None,
    empfangsbestaetigung: bool | None = None,
    sendendes_system: SendendesSystem = DEFAULT_SYSTEM,
    hinweis: str | None = None,
) -> bytes:
    """An Abgabe.Abgabe.0401: hand Schriftgutobjekte over to another agency.

    ``Importbestaetigung`` is fixed to 1 by every schema, so a 0402 is always due.

    Args:
        version: xdomea version, e.g. ``"3.1.0"``.
        objekte: the top-level Akten, Vorgänge and Dokumente.
        absender: the handing-over agency.
        empfaenger: the receiving agency.
        prozess_id: the process UUID; a fresh one by default.
        erstellungszeitpunkt: creation time; now (UTC, whole seconds) by default.
        empfangsbestaetigung: ask for a 0403 (3.x only). ``None`` asks for it in 3.x and
            leaves it out in 2.x, whose Kopf has no such element.
        sendendes_system: the sending system named in the Kopf.
        hinweis: free-text note in the Kopf.

    Returns:
        The message as UTF-8 XML with declaration.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: the spec cannot be expressed in ``version``.
    """
    return _build(
        version,
        "0401",
        _kopfdaten(
            prozess_id, erstellungszeitpunkt, absender, empfaenger, sendendes_system, hinweis
        ),
        lambda d: [
            ("Importbestaetigung", True),
            *_import_empfangsbestaetigung(d, "0401", empfangsbestaetigung),
        ],
        _objects(objekte),
    )


def build_anbieteverzeichnis_0501(
    version: str,
    objekte: Sequence[SchriftgutobjektSpec],
    *,
    absender: Kontakt,
    empfaenger: Kontakt,
    prozess_id: str | None = None,
    erstellungszeitpunkt: datetime | None = None,
    empfangsbestaetigung: bool | None = None,
    sendendes_system: SendendesSystem = DEFAULT_SYSTEM,
    hinweis: str | None = None,
) -> bytes:
    """An Aussonderung.Anbieteverzeichnis.0501: offer Schriftgutobjekte to an archive.

    Args:
        version: xdomea version, e.g. ``"3.1.0"``.
        objekte: the offered top-level Akten, Vorgänge and Dokumente.
        absender: the offering agency.
        empfaenger: the archive.
        prozess_id: the process UUID; a fresh one by default.
        erstellungszeitpunkt: creation time; now (UTC, whole seconds) by default.
        empfangsbestaetigung: ask for a 0504; ``None`` (default) asks for it.
        sendendes_system: the sending system named in the Kopf.
        hinweis: free-text note in the Kopf.

    Returns:
        The message as UTF-8 XML with declaration.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: the spec cannot be expressed in ``version``.
    """
    return _build(
        version,
        "0501",
        _kopfdaten(
            prozess_id, erstellungszeitpunkt, absender, empfaenger, sendendes_system, hinweis
        ),
        lambda d: _empfangsbestaetigung(empfangsbestaetigung),
        _objects(objekte),
    )


def build_bewertungsverzeichnis_0502(
    version: str,
    bewertungen: Mapping[str, str],
    *,
    absender: Kontakt,
    empfaenger: Kontakt,
    prozess_id: str | None = None,
    erstellungszeitpunkt: datetime | None = None,
    empfangsbestaetigung: bool | None = None,
    sendendes_system: SendendesSystem = DEFAULT_SYSTEM,
    hinweis: str | None = None,
) -> bytes:
    """An Aussonderung.Bewertungsverzeichnis.0502: the archive's appraisal of an offer.

    Args:
        version: xdomea version, e.g. ``"3.1.0"``.
        bewertungen: per offered object UUID (as spelled in the 0501) its Aussonderungsart
            code: ``A`` archivwürdig, ``V`` vernichten, ``B`` bewerten.
        absender: the archive.
        empfaenger: the offering agency.
        prozess_id: the process UUID; pass the 0501's to continue its process.
        erstellungszeitpunkt: creation time; now (UTC, whole seconds) by default.
        empfangsbestaetigung: ask for a 0505; ``None`` (default) asks for it.
        sendendes_system: the sending system named in the Kopf.
        hinweis: free-text note in the Kopf.

    Returns:
        The message as UTF-8 XML with declaration.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: no Bewertungen or an unknown code.
    """
    return _build(
        version,
        "0502",
        _kopfdaten(
            prozess_id, erstellungszeitpunkt, absender, empfaenger, sendendes_system, hinweis
        ),
        lambda d: _empfangsbestaetigung(empfangsbestaetigung),
        lambda root, d: write_bewertungen(root, d, bewertungen),
    )


def build_aussonderung_0503(
    version: str,
    objekte: Sequence[SchriftgutobjektSpec],
    *,
    absender: Kontakt,
    empfaenger: Kontakt,
    prozess_id: str | None = None,
    erstellungszeitpunkt: datetime | None = None,
    rueckmeldung_archivkennung: bool = True,
    empfangsbestaetigung: bool | None = None,
    sendendes_system: SendendesSystem = DEFAULT_SYSTEM,
    hinweis: str | None = None,
) -> bytes:
    """An Aussonderung.Aussonderung.0503: hand the archivable objects to the archive.

    ``Importbestaetigung`` is fixed to 1 by every schema, so a 0506 is always due.

    Args:
        version: xdomea version, e.g. ``"3.1.0"``.
        objekte: the top-level Akten, Vorgänge and Dokumente with their primary files.
        absender: the agency.
        empfaenger: the archive.
        prozess_id: the process UUID; pass the 0501's to continue its process.
        erstellungszeitpunkt: creation time; now (UTC, whole seconds) by default.
        rueckmeldung_archivkennung: ask the archive to report its signature per object
            in the 0506 (default yes, so the DMS can record where its files went).
        empfangsbestaetigung: ask for a 0507 (3.x only). ``None`` asks for it in 3.x and
            leaves it out in 2.x, whose Kopf has no such element.
        sendendes_system: the sending system named in the Kopf.
        hinweis: free-text note in the Kopf.

    Returns:
        The message as UTF-8 XML with declaration.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: the spec cannot be expressed in ``version``.
    """
    return _build(
        version,
        "0503",
        _kopfdaten(
            prozess_id, erstellungszeitpunkt, absender, empfaenger, sendendes_system, hinweis
        ),
        lambda d: [
            ("Importbestaetigung", True),
            ("RueckmeldungArchivkennung", rueckmeldung_archivkennung),
            *_import_empfangsbestaetigung(d, "0503", empfangsbestaetigung),
        ],
        _objects(objekte),
    )


def build_information_0101(
    version: str,
    objekte: Sequence[SchriftgutobjektSpec],
    *,
    absender: Kontakt,
    empfaenger: Kontakt,
    prozess_id: str | None = None,
    erstellungszeitpunkt: datetime | None = None,
    empfangsbestaetigung: bool | None = None,
    sendendes_system: SendendesSystem = DEFAULT_SYSTEM,
    hinweis: str | None = None,
) -> bytes:
    """An Information.Information.0101: send Schriftgutobjekte for information.

    Args:
        version: xdomea version, e.g. ``"3.1.0"``.
        objekte: the top-level Akten, Vorgänge and Dokumente.
        absender: the sending agency.
        empfaenger: the receiving agency.
        prozess_id: the process UUID; a fresh one by default.
        erstellungszeitpunkt: creation time; now (UTC, whole seconds) by default.
        empfangsbestaetigung: ask for a 0102; ``None`` (default) asks for it.
        sendendes_system: the sending system named in the Kopf.
        hinweis: free-text note in the Kopf.

    Returns:
        The message as UTF-8 XML with declaration.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: the spec cannot be expressed in ``version``.
    """
    return _build(
        version,
        "0101",
        _kopfdaten(
            prozess_id, erstellungszeitpunkt, absender, empfaenger, sendendes_system, hinweis
        ),
        lambda d: _empfangsbestaetigung(empfangsbestaetigung),
        _objects(objekte),
    )
