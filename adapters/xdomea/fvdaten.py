"""FVDaten (Fachverfahrensdaten austauschen): requests a Fachverfahren sends a DMS, and the answer.

A request whose Kopf sets ``Empfangsbestaetigung`` first gets a
``FVDaten.EmpfangBestaetigen.0629`` (Kopf only). Every FVDaten request (0601–0628,
0631, 0632) is answered with one message type,
``FVDaten.ImportBestaetigen.0630``: its ``ErfolgOderMisserfolg`` holds message-level
``Rueckmeldung`` codes (``AllgemeineRueckmeldung``, e.g. ``0000000`` success,
``0000001`` DMS not available; or ``SpezifischeFehlermeldung06xx`` from the
request's own code list, e.g. ``0604003`` "Schriftgutobjekt kann nicht angelegt
werden"; or ``SonstigeFehlermeldung`` free text) and a ``Rueckgabeparameter`` per
result (the IDSGO, a ``Parameter`` such as the ``Ablageort``, ``Erfolgreich``).
Primary documents travel as in an Abgabe: the request or answer XML names them by
``Primaerdokument/Dateiname`` and the ZIP container holds them.

What differs between the versions (``Dialect.major``):

* 3.x: ``Rueckmeldung`` may repeat; each ``Rueckgabeparameter`` has ``NummerImStapel``
  and ``IDSGO`` first, a ``Parameter`` choice with ``Ablageort``, ``Erfolgreich`` and
  its own ``Rueckmeldung`` list; the request Kopf may carry ``DMSSessionID``.
* 2.x: exactly one message-level ``Rueckmeldung``; ``Rueckgabeparameter`` is
  ``Parameter`` (no ``Ablageort`` choice: written as an ``AllgemeinerRueckgabeparameter``
  named ``Ablageort``), ``Erfolgreich``, ``NummerImStapel``, ``IDSGO``, ``Hinweis``;
  ``EmpfangendesSystem`` is required in every FVDaten Kopf.

The builders write ``EmpfangendesSystem`` always (valid in both). Codes are written
without ``listURI``/``listVersionID`` (optional; their fixed values differ per version).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lxml import etree

from adapters.xdomea import builders
from adapters.xdomea.validation import CheckedMessage
from contracts.builders import SchriftgutobjektSpec, SendendesSystem, new_uuid
from contracts.xdomea import Kontakt
from gateway.errors import BuildError

FAMILY = "FVDaten"

#: Root element of every FVDaten request, by Nachrichtentyp code.
REQUESTS: Mapping[str, str] = {
    "0601": "FVDaten.DokumentAktualisieren.0601",
    "0602": "FVDaten.SGOAnsehen.0602",
    "0603": "FVDaten.SGOBearbeiten.0603",
    "0604": "FVDaten.SGOErstellen.0604",
    "0605": "FVDaten.SGOAblegen.0605",
    "0606": "FVDaten.SGODrucken.0606",
    "0607": "FVDaten.ProtokolleintragErstellen.0607",
    "0608": "FVDaten.SGOSuchen.0608",
    "0609": "FVDaten.MetadatenAnlegen.0609",
    "0610": "FVDaten.MetadatenAktualisieren.0610",
    "0611": "FVDaten.MetadatenAnsehen.0611",
    "0612": "FVDaten.MetadatenLoeschen.0612",
    "0613": "FVDaten.SGOLoeschenMarkieren.0613",
    "0614": "FVDaten.SGOLoeschmarkierungAufheben.0614",
    "0615": "FVDaten.SGOEndgueltigLoeschen.0615",
    "0616": "FVDaten.SGOLoeschstatusAbfragen.0616",
    "0617": "FVDaten.SGOUngueltigKennzeichnen.0617",
    "0618": "FVDaten.DatensatzLoeschen.0618",
    "0619": "FVDaten.BenachrichtigungAbrufen.0619",
    "0620": "FVDaten.VertretungAktivierenOderDeaktivieren.0620",
    "0621": "FVDaten.VertretungsstatusAbfragen.0621",
    "0622": "FVDaten.ZustaendigkeitAendern.0622",
    "0623": "FVDaten.GesamtprotokollAblegen.0623",
    "0624": "FVDaten.SGOZDAVerfuegen.0624",
    "0625": "FVDaten.SystemstatusAbfragen.0625",
    "0626": "FVDaten.KonfigurationsparameterErstellen.0626",
    "0627": "FVDaten.KonfigurationsparameterAktualisieren.0627",
    "0628": "FVDaten.KonfigurationsparameterAbrufen.0628",
    "0631": "FVDaten.PrimaerdokumentExportieren.0631",
    "0632": "FVDaten.SGOZDAAufheben.0632",
}
#: The answer to every request.
ANTWORT_CODE = "0630"
ANTWORT_ELEMENT = "FVDaten.ImportBestaetigen.0630"
#: The receipt a request asks for with ``Empfangsbestaetigung`` 1.
EMPFANG_CODE = "0629"
EMPFANG_ELEMENT = "FVDaten.EmpfangBestaetigen.0629"

# AllgemeineRueckmeldung codes (code list AllgemeineRueckmeldung 1.0/1.1).
ERFOLG = "0000000"
DMS_NICHT_VERFUEGBAR = "0000001"
KENNUNG_UNBEKANNT = "0000003"
FACHVERFAHREN_UNBEKANNT = "0000005"
XML_UNGUELTIG = "0000008"
STAPEL_UNGUELTIG = "0000013"
UNBEKANNTER_FEHLER = "0000499"

#: Codes of the code lists the gateway writes, with the meaning the code list gives.
CODES: Mapping[str, str] = {
    ERFOLG: "Ausführung wurde erfolgreich beendet.",
    DMS_NICHT_VERFUEGBAR: "Das DMS ist nicht verfügbar oder antwortet nicht in angemessener Zeit.",
    KENNUNG_UNBEKANNT: "Die Kennung ist dem DMS nicht bekannt.",
    FACHVERFAHREN_UNBEKANNT: "Die ID des Fachverfahrens ist unbekannt.",
    XML_UNGUELTIG: "Die übergebene XML-Struktur entspricht nicht dem Schema.",
    STAPEL_UNGUELTIG: "Die Länge des Stapels stimmt nicht mit der Anzahl der Objekte überein.",
    UNBEKANNTER_FEHLER: "Unbekannter Fehler (Fachverfahren an DMS).",
    "0602001": "Die ID des Dokuments ist unbekannt/ungültig.",
    "0602002": "Das Dokument kann nicht geöffnet werden.",
    "0602003": "Die Versionsnummer ist ungültig.",
    "0604001": "Die ID des Containerobjekts ist unbekannt/ungültig.",
    "0604002": "Der Schriftgutobjekttyp ist nicht definiert.",
    "0604003": "Das Schriftgutobjekt kann nicht angelegt werden.",
    "0605001": "Die ID des Containers ist im DMS unbekannt/ungültig.",
    "0605005": "Datei kann im DMS nicht abgelegt werden.",
    "0608001": "Suchtyp ist unbekannt/ungültig.",
    "0609001": "Die ID des Objektes ist unbekannt/ungültig.",
    "0609002": "Der Name des Metadatums ist ungültig.",
    "0609006": "Das Metadatum kann nicht angelegt werden.",
    "0609008": "Der Wert für das Metadatum wurde nicht angegeben.",
    "0610001": "Die ID des Objektes ist unbekannt/ungültig.",
    "0610002": "Der Name des Metadatums ist ungültig.",
    "0610005": "Das Metadatum kann nicht aktualisiert werden.",
    "0610007": "Der Wert des Metadatums wurde nicht gesetzt.",
    "0625001": "Die Systemstatus-ID ist unbekannt/ungültig.",
    "0625002": "Der Status kann nicht abgefragt werden.",
    "0631001": "Die ID des Dokuments ist unbekannt/ungültig.",
    "0631002": "Die Versionsnummer ist ungültig.",
}


# --------------------------------------------------------------------------- inputs

_DMS_SYSTEM = SendendesSystem(produktname="DMS")


@dataclass(frozen=True)
class FVKopf:
    """What a request Kopf holds besides its type: parties, ids, the Fachverfahren's flags."""

    absender: Kontakt
    empfaenger: Kontakt
    #: Who in the Fachverfahren asks (user id); ``Erstellerkennung``.
    erstellerkennung: str
    prozess_id: str | None = None
    erstellungszeitpunkt: datetime | None = None
    erstellerrolle: str | None = None
    empfangsbestaetigung: bool = False
    sendendes_system: SendendesSystem = builders.DEFAULT_SYSTEM
    #: The DMS the request is meant for (``EmpfangendesSystem``).
    empfangendes_system: SendendesSystem = _DMS_SYSTEM
    dms_session_id: str | None = None
    hinweis: str | None = None


@dataclass(frozen=True)
class Erstellen:
    """One object of a 0604 (or, with ``ablageort``, 0605)."""

    objekt: SchriftgutobjektSpec
    #: The Fachverfahren's own id of the object (``FachverfahrenObjektID``).
    fachverfahren_objekt_id: str
    #: xdomea UUID of an existing Akte or Vorgang to create the object in.
    id_container: str | None = None
    #: 0605 only: where the object's files lie for the DMS to take.
    ablageort: str | None = None


@dataclass(frozen=True)
class Feld:
    """An xdomea ``FeldType``: a named value (a Metadatum or a general return value)."""

    name: str
    wert: str | None = None
    beschreibung: str | None = None
    #: Datentyp code (code list Datentyp), e.g. ``001`` for a string.
    datentyp: str | None = None


# --------------------------------------------------------------------------- the answer


@dataclass(frozen=True)
class Meldung:
    """One ``Rueckmeldung``: a code from a code list, or a free-text message.

    A 7-digit code starting ``0000`` is an AllgemeineRueckmeldung; one starting with
    a request's Nachrichtentyp (``0604…``) is that request's SpezifischeFehlermeldung.
    """

    code: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if (self.code is None) == (self.text is None):
            raise BuildError("a Rueckmeldung is either a code or a text, exactly one of them")
        if self.code is not None and (len(self.code) != 7 or not self.code.isdigit()):
            raise BuildError(f"{self.code!r} is no Rueckmeldung code; they have seven digits")

    @property
    def element(self) -> str:
        """The choice element the Meldung is written as."""
        if self.code is None:
            return "SonstigeFehlermeldung"
        if self.code.startswith("0000"):
            return "AllgemeineRueckmeldung"
        return f"SpezifischeFehlermeldung{self.code[:4]}"

    @property
    def erfolg(self) -> bool:
        """Whether this is the success code."""
        return self.code == ERFOLG


@dataclass(frozen=True)
class Rueckgabe:
    """One ``Rueckgabeparameter``: the outcome for one object of the request."""

    erfolgreich: bool
    idsgo: str | None = None
    nummer_im_stapel: int | None = None
    #: Where the object is (its DMS address) or where its files were put.
    ablageort: str | None = None
    #: A general return value, e.g. a system status.
    feld: Feld | None = None
    meldungen: tuple[Meldung, ...] = ()


@dataclass(frozen=True)
class Antwort:
    """A 0630 ImportBestaetigen: message-level Rueckmeldungen and one Rueckgabe per result."""

    meldungen: tuple[Meldung, ...]
    rueckgaben: tuple[Rueckgabe, ...] = ()
    #: Files the answer carries in its container (0631): entry name → where the bytes lie.
    dateien: Mapping[str, Path] = field(default_factory=dict)

    @property
    def erfolgreich(self) -> bool:
        """Success at message level and for every result."""
        return all(m.erfolg for m in self.meldungen) and all(r.erfolgreich for r in self.rueckgaben)

    def codes(self) -> tuple[str, ...]:
        """Every code, message level first, then per result."""
        found = [m.code for m in self.meldungen if m.code]
        for rueckgabe in self.rueckgaben:
            found.extend(m.code for m in rueckgabe.meldungen if m.code)
        return tuple(found)


# --------------------------------------------------------------------------- requests


def _request(
    version: str, code: str, kopf: FVKopf, *, stapel: int | None = None
) -> tuple[builders.Dialect, etree._Element]:
    d = builders.dialect(version)
    root = builders.new_message(d, REQUESTS[code])
    element = builders.write_kopf(
        root,
        d,
        code,
        builders.Kopfdaten(
            prozess_id=kopf.prozess_id or new_uuid(),
            erstellungszeitpunkt=kopf.erstellungszeitpunkt or builders.now(),
            absender=kopf.absender,
            empfaenger=kopf.empfaenger,
            sendendes_system=kopf.sendendes_system,
            hinweis=kopf.hinweis,
        ),
    )
    write_system(element, d, "EmpfangendesSystem", kopf.empfangendes_system)
    builders.add_boolean(element, d, "Empfangsbestaetigung", kopf.empfangsbestaetigung)
    builders.add_boolean(element, d, "Importbestaetigung", True)
    builders.add(element, d, "Erstellerkennung", kopf.erstellerkennung)
    if kopf.erstellerrolle is not None:
        builders.add(element, d, "ErstellerRolle", kopf.erstellerrolle)
    builders.add_boolean(element, d, "Stapel", stapel is not None)
    if stapel is not None:
        builders.add(element, d, "Stapellaenge", str(stapel))
    if kopf.dms_session_id is not None:
        if d.major < 3:
            raise BuildError(f"an FVDaten Kopf has no DMSSessionID in xdomea {d.version}")
        builders.add(element, d, "DMSSessionID", kopf.dms_session_id)
    return d, root


def write_system(
    parent: etree._Element, d: builders.Dialect, tag: str, system: SendendesSystem
) -> None:
    """Append a ``SystemType`` element (InstanzID, Produktname, Version)."""
    element = builders.add(parent, d, tag)
    if system.instanz_id is not None:
        builders.add(element, d, "InstanzID", system.instanz_id)
    builders.add(element, d, "Produktname", system.produktname)
    if system.version is not None:
        builders.add(element, d, "Version", system.version)


def _stapel(count: int) -> int | None:
    # One object is dialogue processing; several are a Stapel with its length.
    return count if count > 1 else None


def _write_erstellen(
    root: etree._Element, d: builders.Dialect, tag: str, items: Sequence[Erstellen], code: str
) -> None:
    if not items:
        raise BuildError(f"a {code} needs at least one Schriftgutobjekt")
    stapel = len(items) > 1
    for number, item in enumerate(items, start=1):
        element = builders.add(root, d, tag)
        if stapel:
            builders.add(element, d, "NummerImStapel", str(number))
        builders.add(element, d, "FachverfahrenObjektID", item.fachverfahren_objekt_id)
        if item.id_container is not None:
            builders.add(element, d, "IDContainer", item.id_container)
        builders.write_objekte(element, d, [item.objekt])
        if code == "0605":
            if item.ablageort is not None:
                builders.add(element, d, "Ablageort", item.ablageort)
        elif item.ablageort is not None:
            raise BuildError("only a 0605 SGOAblegen names an Ablageort")


def build_sgo_erstellen_0604(version: str, items: Sequence[Erstellen], kopf: FVKopf) -> bytes:
    """A FVDaten.SGOErstellen.0604: create Schriftgutobjekte (with documents) in the DMS.

    Args:
        version: xdomea version, e.g. ``"3.1.0"``.
        items: the objects; several make a Stapel (numbered in order).
        kopf: parties, ids and the Fachverfahren's user.

    Returns:
        The message as UTF-8 XML; its documents go beside it into a container.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: no objects, or an object the version cannot express.
    """
    d, root = _request(version, "0604", kopf, stapel=_stapel(len(items)))
    _write_erstellen(root, d, "SchriftgutobjektZumErstellen", items, "0604")
    return builders.to_bytes(root)


def build_sgo_ablegen_0605(version: str, items: Sequence[Erstellen], kopf: FVKopf) -> bytes:
    """A FVDaten.SGOAblegen.0605: file Schriftgutobjekte the Fachverfahren made into the DMS.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: no objects, or an object the version cannot express.
    """
    d, root = _request(version, "0605", kopf, stapel=_stapel(len(items)))
    _write_erstellen(root, d, "SchriftgutobjektZumAblegen", items, "0605")
    return builders.to_bytes(root)


def build_sgo_ansehen_0602(
    version: str, idsgo: str, kopf: FVKopf, *, versionsnummer: str | None = None
) -> bytes:
    """A FVDaten.SGOAnsehen.0602: show the object ``idsgo`` (the DMS answers with where it is).

    Raises:
        UnsupportedVersion: unknown version.
    """
    d, root = _request(version, "0602", kopf)
    element = builders.add(root, d, "SchriftgutobjektZumAnsehen")
    builders.add(element, d, "IDSGO", idsgo)
    if versionsnummer is not None:
        builders.add(element, d, "Versionsnummer", versionsnummer)
    return builders.to_bytes(root)


def build_sgo_suchen_0608(
    version: str,
    suchbegriffe: str,
    kopf: FVKopf,
    *,
    volltext: bool = True,
    metadaten: bool = True,
) -> bytes:
    """A FVDaten.SGOSuchen.0608: search Schriftgutobjekte by terms.

    Raises:
        UnsupportedVersion: unknown version.
    """
    d, root = _request(version, "0608", kopf)
    element = builders.add(root, d, "SchriftgutobjektZumSuchen")
    builders.add(element, d, "Suchbegriffe", suchbegriffe)
    builders.add_boolean(element, d, "Volltext", volltext)
    builders.add_boolean(element, d, "Metadaten", metadaten)
    return builders.to_bytes(root)


def _build_metadaten(
    version: str, code: str, tag: str, idsgo: str, felder: Sequence[Feld], kopf: FVKopf
) -> bytes:
    if not felder:
        raise BuildError(f"a {code} needs at least one Metadatum")
    d, root = _request(version, code, kopf)
    element = builders.add(root, d, tag)
    builders.add(element, d, "IDSGO", idsgo)
    for feld in felder:
        write_feld(element, d, "Metadatum", feld)
    return builders.to_bytes(root)


def build_metadaten_anlegen_0609(
    version: str, idsgo: str, felder: Sequence[Feld], kopf: FVKopf
) -> bytes:
    """A FVDaten.MetadatenAnlegen.0609: add Metadaten (name, Datentyp, value) to an object.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: no Metadatum.
    """
    return _build_metadaten(version, "0609", "MetadatenZumAnlegen", idsgo, felder, kopf)


def build_metadaten_aktualisieren_0610(
    version: str, idsgo: str, felder: Sequence[Feld], kopf: FVKopf
) -> bytes:
    """A FVDaten.MetadatenAktualisieren.0610: change values of an object's Metadaten.

    Raises:
        UnsupportedVersion: unknown version.
        BuildError: no Metadatum.
    """
    return _build_metadaten(version, "0610", "MetadatenZumAktualisieren", idsgo, felder, kopf)


def build_systemstatus_abfragen_0625(version: str, systemstatus_id: int, kopf: FVKopf) -> bytes:
    """A FVDaten.SystemstatusAbfragen.0625: ask for the status ``systemstatus_id``.

    Raises:
        UnsupportedVersion: unknown version.
    """
    d, root = _request(version, "0625", kopf)
    element = builders.add(root, d, "SystemstatusZumAbfragen")
    builders.add(element, d, "SystemstatusID", str(systemstatus_id))
    return builders.to_bytes(root)


def build_primaerdokument_exportieren_0631(
    version: str, idsgo: str, kopf: FVKopf, *, versionsnummer: str | None = None
) -> bytes:
    """A FVDaten.PrimaerdokumentExportieren.0631: hand over a Dokument's primary documents.

    Raises:
        UnsupportedVersion: unknown version.
    """
    d, root = _request(version, "0631", kopf)
    element = builders.add(root, d, "DokumentZumExportieren")
    builders.add(element, d, "IDSGO", idsgo)
    if versionsnummer is not None:
        builders.add(element, d, "Versionsnummer", versionsnummer)
    return builders.to_bytes(root)


def write_feld(parent: etree._Element, d: builders.Dialect, tag: str, feld: Feld) -> None:
    """Append a ``FeldType`` element: Name, Beschreibung, Datentyp, Wert."""
    element = builders.add(parent, d, tag)
    builders.add(element, d, "Name", feld.name)
    if feld.beschreibung is not None:
        builders.add(element, d, "Beschreibung", feld.beschreibung)
    if feld.datentyp is not None:
        builders.add_code(element, d, "Datentyp", feld.datentyp)
    if feld.wert is not None:
        builders.add(element, d, "Wert", feld.wert)


# --------------------------------------------------------------------------- the answer


def build_antwort_0630(
    request: CheckedMessage,
    antwort: Antwort,
    *,
    erstellungszeitpunkt: datetime,
    sendendes_system: SendendesSystem = builders.DEFAULT_SYSTEM,
) -> bytes:
    """The FVDaten.ImportBestaetigen.0630 answering ``request``, in the request's version.

    Correlated like a receipt: the request's ProzessID, its Absender and Empfänger
    swapped (copied verbatim), its SendendesSystem as EmpfangendesSystem, and the
    ProzessID as FVSessionID (the Fachverfahren names no session of its own).

    Args:
        request: the FVDaten request being answered.
        antwort: the outcome.
        erstellungszeitpunkt: the answer's creation time; pass one derived from the
            request (not the clock) so building it again gives the same bytes.
        sendendes_system: the system that answers (the gateway).

    Raises:
        BuildError: the request is no FVDaten request or lacks a Kopf part, or the
            answer cannot be written in the request's version.
    """
    d = builders.dialect(request.detected.version)
    if not antwort.meldungen:
        raise BuildError("a 0630 needs at least one message-level Rueckmeldung")
    if d.major < 3 and len(antwort.meldungen) > 1:
        raise BuildError(
            f"a 0630 in xdomea {d.version} carries exactly one Rueckmeldung; "
            f"{len(antwort.meldungen)} were given"
        )
    root, kopf, prozess_id = _answer(
        request, ANTWORT_CODE, ANTWORT_ELEMENT, erstellungszeitpunkt, sendendes_system
    )
    builders.add(kopf, d, "FVSessionID", prozess_id)
    ergebnis = builders.add(root, d, "ErfolgOderMisserfolg")
    for meldung in antwort.meldungen:
        _write_meldung(builders.add(ergebnis, d, "Rueckmeldung"), d, meldung)
    for rueckgabe in antwort.rueckgaben:
        _write_rueckgabe(ergebnis, d, rueckgabe)
    return builders.to_bytes(root)


def build_empfang_0629(
    request: CheckedMessage,
    *,
    erstellungszeitpunkt: datetime,
    sendendes_system: SendendesSystem = builders.DEFAULT_SYSTEM,
) -> bytes:
    """The FVDaten.EmpfangBestaetigen.0629 a request with ``Empfangsbestaetigung`` 1 asks for.

    Correlated like the 0630 (same ProzessID, parties swapped); it has no body.

    Raises:
        BuildError: the request is no FVDaten request or lacks a Kopf part.
    """
    root, _, _ = _answer(
        request, EMPFANG_CODE, EMPFANG_ELEMENT, erstellungszeitpunkt, sendendes_system
    )
    return builders.to_bytes(root)


def asks_for_empfang(request: CheckedMessage) -> bool:
    """Whether the request's Kopf sets ``Empfangsbestaetigung`` (a 0629 is due)."""
    d = builders.dialect(request.detected.version)
    flag = request.detected.root.findtext(f"{d.q('Kopf')}/{d.q('Empfangsbestaetigung')}")
    return (flag or "").strip() in ("1", "true")


def _answer(
    request: CheckedMessage,
    code: str,
    element: str,
    erstellungszeitpunkt: datetime,
    sendendes_system: SendendesSystem,
) -> tuple[etree._Element, etree._Element, str]:
    """A new answer root with its Kopf up to EmpfangendesSystem; root, Kopf, ProzessID."""
    d = builders.dialect(request.detected.version)
    request_code = request.detected.typ.code
    if request.detected.typ.family != FAMILY or request_code not in REQUESTS:
        raise BuildError(
            f"{request.detected.typ.element} is no FVDaten request; only they are answered "
            f"with a {code}"
        )
    kopf = request.detected.root.find(d.q("Kopf"))
    if kopf is None:
        raise BuildError(f"the {request_code} has no Kopf to answer")
    prozess_id = (kopf.findtext(d.q("ProzessID")) or "").strip()
    absender = kopf.find(d.q("Absender"))
    empfaenger = kopf.find(d.q("Empfaenger"))
    if not prozess_id or absender is None or empfaenger is None:
        raise BuildError(f"the {request_code} Kopf lacks ProzessID, Absender or Empfaenger")
    root = builders.new_message(d, element)
    answer_kopf = builders.write_kopf(
        root,
        d,
        code,
        builders.Kopfdaten(
            prozess_id=prozess_id,
            erstellungszeitpunkt=erstellungszeitpunkt,
            absender=empfaenger,
            empfaenger=absender,
            sendendes_system=sendendes_system,
        ),
    )
    fachverfahren = kopf.find(d.q("SendendesSystem"))
    if fachverfahren is not None:
        copied = copy.deepcopy(fachverfahren)
        copied.tag = d.q("EmpfangendesSystem")
        copied.tail = None
        answer_kopf.append(copied)
    elif d.major < 3:  # pragma: no cover - 2.x requires SendendesSystem in every Kopf
        write_system(
            answer_kopf, d, "EmpfangendesSystem", SendendesSystem(produktname="Fachverfahren")
        )
    return root, answer_kopf, prozess_id


def _write_meldung(parent: etree._Element, d: builders.Dialect, meldung: Meldung) -> None:
    if meldung.code is None:
        builders.add(parent, d, "SonstigeFehlermeldung", meldung.text)
    else:
        builders.add_code(parent, d, meldung.element, meldung.code)


def _write_rueckgabe(parent: etree._Element, d: builders.Dialect, rueckgabe: Rueckgabe) -> None:
    if (rueckgabe.ablageort is None) == (rueckgabe.feld is None):
        raise BuildError("a Rueckgabeparameter carries exactly one of ablageort or feld")
    element = builders.add(parent, d, "Rueckgabeparameter")
    if d.major >= 3:
        if rueckgabe.nummer_im_stapel is not None:
            builders.add(element, d, "NummerImStapel", str(rueckgabe.nummer_im_stapel))
        if rueckgabe.idsgo is not None:
            builders.add(element, d, "IDSGO", rueckgabe.idsgo)
        _write_parameter(element, d, rueckgabe)
        builders.add_boolean(element, d, "Erfolgreich", rueckgabe.erfolgreich)
        for meldung in rueckgabe.meldungen:
            if meldung.element == "AllgemeineRueckmeldung":
                # Per result only the specific lists and free text exist.
                continue
            _write_meldung(builders.add(element, d, "Rueckmeldung"), d, meldung)
        return
    _write_parameter(element, d, rueckgabe)
    builders.add_boolean(element, d, "Erfolgreich", rueckgabe.erfolgreich)
    if rueckgabe.nummer_im_stapel is not None:
        builders.add(element, d, "NummerImStapel", str(rueckgabe.nummer_im_stapel))
    if rueckgabe.idsgo is not None:
        builders.add(element, d, "IDSGO", rueckgabe.idsgo)
    # 2.x has no per-result Rueckmeldung: codes and texts go into the Hinweis.
    hinweis = "; ".join(m.code or m.text or "" for m in rueckgabe.meldungen)
    if hinweis:
        builders.add(element, d, "Hinweis", hinweis)


def _write_parameter(element: etree._Element, d: builders.Dialect, rueckgabe: Rueckgabe) -> None:
    parameter = builders.add(element, d, "Parameter")
    if rueckgabe.ablageort is not None:
        if d.major >= 3:
            builders.add(parameter, d, "Ablageort", rueckgabe.ablageort)
        else:
            write_feld(
                parameter,
                d,
                "AllgemeinerRueckgabeparameter",
                Feld(name="Ablageort", wert=rueckgabe.ablageort),
            )
    elif rueckgabe.feld is not None:
        write_feld(parameter, d, "AllgemeinerRueckgabeparameter", rueckgabe.feld)


# --------------------------------------------------------------------------- reading


def read_antwort(message: CheckedMessage) -> Antwort:
    """Read a 0630 back (the Fachverfahren's side, and the tests').

    Raises:
        BuildError: the message is no 0630.
    """
    if message.detected.typ.element != ANTWORT_ELEMENT:
        raise BuildError(f"{message.detected.typ.element} is no FVDaten 0630 answer")
    d = builders.dialect(message.detected.version)
    ergebnis = message.detected.root.find(d.q("ErfolgOderMisserfolg"))
    if ergebnis is None:  # pragma: no cover - the schema requires it
        return Antwort(meldungen=())
    meldungen = tuple(
        m for r in ergebnis.iterfind(d.q("Rueckmeldung")) if (m := _read_meldung(r)) is not None
    )
    rueckgaben = []
    for element in ergebnis.iterfind(d.q("Rueckgabeparameter")):
        parameter = element.find(d.q("Parameter"))
        ablageort = _text(parameter, d, "Ablageort") if parameter is not None else None
        feld = None
        allgemein = None
        if parameter is not None:
            allgemein = parameter.find(d.q("AllgemeinerRueckgabeparameter"))
        if allgemein is not None:
            feld = Feld(
                name=_text(allgemein, d, "Name") or "",
                wert=_text(allgemein, d, "Wert"),
                beschreibung=_text(allgemein, d, "Beschreibung"),
            )
            if d.major < 3 and feld.name == "Ablageort":
                ablageort, feld = feld.wert, None
        nummer = _text(element, d, "NummerImStapel")
        eigene = tuple(
            m for r in element.iterfind(d.q("Rueckmeldung")) if (m := _read_meldung(r)) is not None
        )
        hinweis = _text(element, d, "Hinweis")
        if hinweis:
            eigene += tuple(
                Meldung(code=part) if part.isdigit() and len(part) == 7 else Meldung(text=part)
                for part in (p.strip() for p in hinweis.split(";"))
                if part
            )
        rueckgaben.append(
            Rueckgabe(
                erfolgreich=_text(element, d, "Erfolgreich") in ("1", "true"),
                idsgo=_text(element, d, "IDSGO"),
                nummer_im_stapel=int(nummer) if nummer else None,
                ablageort=ablageort,
                feld=feld,
                meldungen=eigene,
            )
        )
    return Antwort(meldungen=meldungen, rueckgaben=tuple(rueckgaben))


def _read_meldung(rueckmeldung: etree._Element) -> Meldung | None:
    for child in rueckmeldung:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child).localname
        if local == "SonstigeFehlermeldung":
            return Meldung(text=(child.text or "").strip() or "-")
        code = (child.findtext("code") or "").strip()
        if code:
            return Meldung(code=code)
    return None


def _text(element: etree._Element, d: builders.Dialect, local: str) -> str | None:
    value = element.findtext(d.q(local))
    return value.strip() if value and value.strip() else None
