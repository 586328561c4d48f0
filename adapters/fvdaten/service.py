"""Carry out a Fachverfahren's FVDaten request on the DMS port and say how it went.

``FVDatenService.answer`` maps one request onto ``contracts.dms.DmsPort`` calls and
returns the content of the 0630 that answers it (``adapters.xdomea.fvdaten.Antwort``):

====  ========================  ==============================================================
code  request                   DMS calls → answer
====  ========================  ==============================================================
0604  SGOErstellen              per object: ``locate`` its IDContainer, plan and import it with
                                its documents (idempotent by UUID) → Ablageort = DMS address
0605  SGOAblegen                the same; its files come in the container
0602  SGOAnsehen                ``locate`` + ``read`` → Ablageort (a gateway opens no screen)
0608  SGOSuchen                 ``search`` Betreff/Kennzeichen → one IDSGO + Ablageort per hit
0609  MetadatenAnlegen          ``locate``, ``read_fachdaten``, ``write_fachdaten`` (new names)
0610  MetadatenAktualisieren    the same, for names the object has
0625  SystemstatusAbfragen      ``probe`` (SystemstatusID 1: is the DMS available?)
0631  PrimaerdokumentExportieren ``locate`` + ``read`` + ``read_content`` → the files travel in
                                the answer's container, Ablageort = their entry names
====  ========================  ==============================================================

Only requests whose Absender is one of the configured Fachverfahren are carried
out; any other is answered with 0000005 and touches nothing.

Errors: a request the DMS refuses, an unknown UUID, an invalid value is answered
(``Erfolgreich`` 0 and the request's SpezifischeFehlermeldung code, in 3.x with
a SonstigeFehlermeldung saying what and why); other request types are answered
with 0000499 and a text naming the supported ones. A DMS that is down or failing
(``TransientDeliveryError``) is not answered: the error propagates and the
delivery is retried — except for 0625, whose very question is whether the DMS
answers (0000001). Every operation is safe to repeat: creating finds what an
earlier attempt made, Metadaten already set to the same value count as set.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog
from lxml import etree

from adapters.dms import mapping
from adapters.dms.importer import UuidLocks, run_import
from adapters.dms.plan import Ziel, plan_objekte
from adapters.xdomea import builders
from adapters.xdomea import fvdaten as fv
from adapters.xdomea.container import ContainerReport
from contracts.dms import DmsObjekt, DmsPort, Inhalt
from contracts.xdomea import Schriftgutobjekt, SchriftgutobjektArt, uuid_key
from gateway.errors import PermanentDeliveryError, TransientDeliveryError

log = structlog.get_logger(__name__)

#: Operations the service carries out.
SUPPORTED = ("0602", "0604", "0605", "0608", "0609", "0610", "0625", "0631")
#: SystemstatusID 1 asks whether the DMS is available (the one status a gateway knows).
SYSTEMSTATUS_VERFUEGBARKEIT = 1
#: Fachdaten names the gateway keeps for itself (the dmsin UUID and metadata fields).
RESERVED_PREFIX = "xdomea_"

_DOKUMENT_ARTEN = (SchriftgutobjektArt.DOKUMENT, SchriftgutobjektArt.ANLAGE)


@dataclass(frozen=True)
class Anfrage:
    """One request to carry out: its checked message (and container), and where it came from."""

    report: ContainerReport
    #: Opens a primary document of the request's container by name (in a thread).
    source: Callable[[str], IO[bytes]]
    #: How errors and logs name the request (message id, ProzessID).
    where: str


@dataclass(frozen=True)
class DmsZiel:
    """How objects are filed into this DMS (the destination's aktenplan and ablage)."""

    name: str
    aktenplan: mapping.Aktenplan
    ablage: str | None = None


class _Abgelehnt(Exception):
    """The request is refused as a whole with a code and a reason."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class FVDatenService:
    """Answers FVDaten requests from one DMS."""

    def __init__(
        self,
        port: DmsPort,
        ziel: DmsZiel,
        *,
        fachverfahren: Collection[str],
        max_search_results: int = 100,
        locks: UuidLocks | None = None,
    ) -> None:
        """A service on ``port`` for the Fachverfahren with the Behördenkennungen given."""
        self.port = port
        self.ziel = ziel
        self.fachverfahren = frozenset(fachverfahren)
        self.max_search_results = max_search_results
        self._locks = locks or UuidLocks()

    async def answer(self, anfrage: Anfrage, arbeitsordner: Path) -> fv.Antwort:
        """Carry out ``anfrage`` and return what the 0630 says.

        Args:
            anfrage: the checked request.
            arbeitsordner: an empty folder owned by the caller; 0631 writes the
                exported documents there (the ``Antwort.dateien`` point into it).

        Raises:
            TransientDeliveryError: the DMS is unreachable or failing; retry the request.
        """
        detected = anfrage.report.checked.detected
        d = builders.dialect(detected.version)
        code = detected.typ.code
        try:
            if not anfrage.report.valid:
                raise _Abgelehnt(
                    fv.XML_UNGUELTIG, f"the {code} is not valid xdomea {detected.version}"
                )
            absender = anfrage.report.nachricht.kopf.absender.behoerdenkennung
            if absender is None or str(absender) not in self.fachverfahren:
                raise _Abgelehnt(
                    fv.FACHVERFAHREN_UNBEKANNT,
                    f"Absender {absender or 'without Behördenkennung'} is no Fachverfahren this "
                    "DMS serves; the operator lists it in the destination's fachverfahren",
                )
            if code not in SUPPORTED:
                raise _Abgelehnt(
                    fv.UNBEKANNTER_FEHLER,
                    f"{detected.typ.element} is not carried out by this gateway; it supports "
                    f"{', '.join(fv.REQUESTS[c] for c in SUPPORTED)}",
                )
            self._check_stapel(detected.root, d, code)
            antwort = await self._carry_out(code, anfrage, d, arbeitsordner)
        except _Abgelehnt as refusal:
            log.warning(
                "fvdaten_refused", nachrichtentyp=code, code=refusal.code, reason=refusal.text
            )
            antwort = fv.Antwort(meldungen=_meldungen(d, refusal.code, refusal.text))
        log.info(
            "fvdaten_answered",
            nachrichtentyp=code,
            erfolgreich=antwort.erfolgreich,
            codes=list(antwort.codes()),
            results=len(antwort.rueckgaben),
        )
        return antwort

    async def _carry_out(
        self, code: str, anfrage: Anfrage, d: builders.Dialect, arbeitsordner: Path
    ) -> fv.Antwort:
        root = anfrage.report.checked.detected.root
        if code in ("0604", "0605"):
            return await self._erstellen(code, anfrage, d)
        if code == "0602":
            return await self._ansehen(_one(root, d, "SchriftgutobjektZumAnsehen"), d)
        if code == "0608":
            return await self._suchen(_one(root, d, "SchriftgutobjektZumSuchen"), d)
        if code in ("0609", "0610"):
            tag = "MetadatenZumAnlegen" if code == "0609" else "MetadatenZumAktualisieren"
            return await self._metadaten(code, _one(root, d, tag), d)
        if code == "0625":
            return await self._systemstatus(_one(root, d, "SystemstatusZumAbfragen"), d)
        return await self._exportieren(_one(root, d, "DokumentZumExportieren"), d, arbeitsordner)

    # ------------------------------------------------------------------ checks

    def _check_stapel(self, root: etree._Element, d: builders.Dialect, code: str) -> None:
        kopf = root.find(d.q("Kopf"))
        laenge = _text(kopf, d, "Stapellaenge") if kopf is not None else None
        if laenge is None:
            return
        count = sum(1 for child in root if isinstance(child.tag, str) and child.tag != d.q("Kopf"))
        if int(laenge) != count:
            raise _Abgelehnt(
                fv.STAPEL_UNGUELTIG,
                f"the Kopf says Stapellaenge {laenge}, but the {code} carries {count} objects",
            )

    # ------------------------------------------------------------------ 0604 / 0605

    async def _erstellen(self, code: str, anfrage: Anfrage, d: builders.Dialect) -> fv.Antwort:
        root = anfrage.report.checked.detected.root
        tag = "SchriftgutobjektZumErstellen" if code == "0604" else "SchriftgutobjektZumAblegen"
        # 0605 names its own codes for an unknown container and a failed filing.
        container_unbekannt = "0604001" if code == "0604" else "0605001"
        nicht_angelegt = "0604003" if code == "0604" else "0605005"
        objekte = {sgo.uuid_key: sgo for sgo in anfrage.report.nachricht.schriftgutobjekte}
        rueckgaben: list[fv.Rueckgabe] = []
        for item in root.iterfind(d.q(tag)):
            sgo = objekte[uuid_key(_sgo_id(item, d))]
            nummer = _number(_text(item, d, "NummerImStapel"))
            fv_id = _text(item, d, "FachverfahrenObjektID") or ""
            kennung = fv.Feld(name="FachverfahrenObjektID", wert=fv_id)
            try:
                adresse = await self._file(
                    anfrage,
                    sgo,
                    _text(item, d, "IDContainer"),
                    container_unbekannt=container_unbekannt,
                    nicht_angelegt=nicht_angelegt,
                )
            except _Abgelehnt as refusal:
                log.warning(
                    "fvdaten_object_refused", uuid=sgo.uuid, code=refusal.code, reason=refusal.text
                )
                rueckgaben.append(
                    fv.Rueckgabe(
                        erfolgreich=False,
                        idsgo=sgo.uuid,
                        nummer_im_stapel=nummer,
                        feld=kennung,
                        meldungen=(fv.Meldung(code=refusal.code), fv.Meldung(text=refusal.text)),
                    )
                )
                continue
            rueckgaben.append(
                fv.Rueckgabe(
                    erfolgreich=True, idsgo=sgo.uuid, nummer_im_stapel=nummer, ablageort=adresse
                )
            )
        failed = [r for r in rueckgaben if not r.erfolgreich]
        if not failed:
            return fv.Antwort(meldungen=(fv.Meldung(code=fv.ERFOLG),), rueckgaben=tuple(rueckgaben))
        first = failed[0].meldungen[0].code or nicht_angelegt
        text = f"{len(failed)} of {len(rueckgaben)} objects could not be filed"
        return fv.Antwort(meldungen=_meldungen(d, first, text), rueckgaben=tuple(rueckgaben))

    async def _file(
        self,
        anfrage: Anfrage,
        sgo: Schriftgutobjekt,
        id_container: str | None,
        *,
        container_unbekannt: str,
        nicht_angelegt: str,
    ) -> str:
        """Import one object with its documents; its DMS address."""
        container = None
        if id_container is not None:
            container = await self.port.locate(id_container)
            if container is None:
                raise _Abgelehnt(
                    container_unbekannt,
                    f"IDContainer {id_container} names no object in the DMS; create the Akte "
                    "or Vorgang first or leave IDContainer out",
                )
        ziel = Ziel(
            name=self.ziel.name,
            top_level=self.port.top_level,
            # Inside a container the object is no top-level Akte: no Aktenplan needed.
            needs_aktenplan=self.port.needs_aktenplan and container is None,
            aktenplan=self.ziel.aktenplan,
            ablage=container or self.ziel.ablage,
        )
        try:
            plan = plan_objekte(anfrage.report, [sgo], ziel, where=anfrage.where)
            ergebnis = await run_import(
                self.port, plan, anfrage.source, self._locks, root=container
            )
        except TransientDeliveryError:
            raise
        except PermanentDeliveryError as exc:
            raise _Abgelehnt(nicht_angelegt, exc.message) from exc
        if ergebnis.fehler:
            reasons = "; ".join(r for reasons in ergebnis.fehler.values() for r in reasons)
            raise _Abgelehnt(nicht_angelegt, f"the DMS refused documents: {reasons}")
        return ergebnis.adressen[sgo.uuid]

    # ------------------------------------------------------------------ 0602

    async def _ansehen(self, element: etree._Element, d: builders.Dialect) -> fv.Antwort:
        idsgo = _text(element, d, "IDSGO") or ""
        versionsnummer = _text(element, d, "Versionsnummer")
        objekt = await self._objekt(idsgo, "0602001", "0602002")
        if versionsnummer is not None and not _has_version(objekt, versionsnummer):
            raise _Abgelehnt("0602003", f"{idsgo} has no version {versionsnummer} (Versionsnummer)")
        return fv.Antwort(
            meldungen=(fv.Meldung(code=fv.ERFOLG),),
            rueckgaben=(fv.Rueckgabe(erfolgreich=True, idsgo=idsgo, ablageort=objekt.adresse),),
        )

    async def _objekt(self, idsgo: str, unbekannt: str, fehler: str) -> DmsObjekt:
        """The object with UUID ``idsgo``, or a refusal with the request's codes."""
        try:
            adresse = await self.port.locate(idsgo)
            if adresse is None:
                raise _Abgelehnt(unbekannt, f"no object in the DMS has the UUID {idsgo}")
            return await self.port.read(adresse)
        except TransientDeliveryError:
            raise
        except PermanentDeliveryError as exc:
            raise _Abgelehnt(fehler, exc.message) from exc

    # ------------------------------------------------------------------ 0608

    async def _suchen(self, element: etree._Element, d: builders.Dialect) -> fv.Antwort:
        begriffe = (_text(element, d, "Suchbegriffe") or "").strip()
        metadaten = _text(element, d, "Metadaten") in ("1", "true")
        if not metadaten:
            raise _Abgelehnt(
                "0608001",
                "this gateway searches Metadaten (Betreff, Kennzeichen) only, no full text; "
                "set Metadaten to 1",
            )
        if not begriffe:
            raise _Abgelehnt("0608001", "Suchbegriffe is empty")
        try:
            treffer = await self.port.search(begriffe, limit=self.max_search_results)
        except TransientDeliveryError:
            raise
        except PermanentDeliveryError as exc:
            raise _Abgelehnt(fv.UNBEKANNTER_FEHLER, exc.message) from exc
        return fv.Antwort(
            meldungen=(fv.Meldung(code=fv.ERFOLG),),
            rueckgaben=tuple(
                fv.Rueckgabe(erfolgreich=True, idsgo=t.uuid, ablageort=t.adresse) for t in treffer
            ),
        )

    # ------------------------------------------------------------------ 0609 / 0610

    async def _metadaten(
        self, code: str, element: etree._Element, d: builders.Dialect
    ) -> fv.Antwort:
        anlegen = code == "0609"
        idsgo = _text(element, d, "IDSGO") or ""
        objekt = await self._objekt(idsgo, f"{code}001", "0609006" if anlegen else "0610005")
        felder = [
            fv.Feld(
                name=_text(m, d, "Name") or "",
                wert=_text(m, d, "Wert"),
                datentyp=_text(m.find(d.q("Datentyp")), None, "code"),
            )
            for m in element.iterfind(d.q("Metadatum"))
        ]
        vorhanden = await self.port.read_fachdaten(objekt.adresse, [f.name for f in felder])
        rueckgaben: list[fv.Rueckgabe] = []
        schreiben: dict[str, str] = {}
        for feld in felder:
            problem = _metadatum_problem(feld, vorhanden, anlegen)
            if problem is not None:
                fehler, text = problem
                rueckgaben.append(
                    fv.Rueckgabe(
                        erfolgreich=False,
                        idsgo=idsgo,
                        feld=fv.Feld(name=feld.name),
                        meldungen=(fv.Meldung(code=fehler), fv.Meldung(text=text)),
                    )
                )
                continue
            assert feld.wert is not None  # _metadatum_problem refuses a missing value
            schreiben[feld.name] = feld.wert
            rueckgaben.append(
                fv.Rueckgabe(
                    erfolgreich=True, idsgo=idsgo, feld=fv.Feld(name=feld.name, wert=feld.wert)
                )
            )
        if schreiben:
            try:
                await self.port.write_fachdaten(objekt.adresse, schreiben)
            except TransientDeliveryError:
                raise
            except PermanentDeliveryError as exc:
                raise _Abgelehnt("0609006" if anlegen else "0610005", exc.message) from exc
        failed = [r for r in rueckgaben if not r.erfolgreich]
        if not failed:
            return fv.Antwort(meldungen=(fv.Meldung(code=fv.ERFOLG),), rueckgaben=tuple(rueckgaben))
        first = failed[0].meldungen[0].code or f"{code}001"
        done = "created" if anlegen else "updated"
        text = f"{len(failed)} of {len(rueckgaben)} Metadaten were not {done}"
        return fv.Antwort(meldungen=_meldungen(d, first, text), rueckgaben=tuple(rueckgaben))

    # ------------------------------------------------------------------ 0625

    async def _systemstatus(self, element: etree._Element, d: builders.Dialect) -> fv.Antwort:
        raw = _text(element, d, "SystemstatusID") or ""
        if _number(raw) != SYSTEMSTATUS_VERFUEGBARKEIT:
            raise _Abgelehnt(
                "0625001",
                f"SystemstatusID {raw} is unknown; this gateway answers SystemstatusID "
                f"{SYSTEMSTATUS_VERFUEGBARKEIT} (is the DMS available?)",
            )
        try:
            await self.port.probe()
        except (TransientDeliveryError, PermanentDeliveryError) as exc:
            # The question is whether the DMS answers: "no" is the answer, not a retry.
            log.warning("fvdaten_dms_unavailable", error=exc.message)
            return fv.Antwort(
                meldungen=_meldungen(d, fv.DMS_NICHT_VERFUEGBAR, exc.message),
                rueckgaben=(
                    fv.Rueckgabe(
                        erfolgreich=False,
                        feld=_status_feld("nicht verfügbar"),
                    ),
                ),
            )
        return fv.Antwort(
            meldungen=(fv.Meldung(code=fv.ERFOLG),),
            rueckgaben=(fv.Rueckgabe(erfolgreich=True, feld=_status_feld("verfügbar")),),
        )

    # ------------------------------------------------------------------ 0631

    async def _exportieren(
        self, element: etree._Element, d: builders.Dialect, arbeitsordner: Path
    ) -> fv.Antwort:
        idsgo = _text(element, d, "IDSGO") or ""
        versionsnummer = _text(element, d, "Versionsnummer")
        objekt = await self._objekt(idsgo, "0631001", fv.UNBEKANNTER_FEHLER)
        if objekt.daten.art not in _DOKUMENT_ARTEN:
            raise _Abgelehnt(
                "0631001",
                f"{idsgo} is a {objekt.daten.art.value}; primary documents are exported from a "
                "Dokument",
            )
        inhalte = _inhalte_der_version(objekt, versionsnummer)
        if inhalte is None:
            raise _Abgelehnt("0631002", f"Dokument {idsgo} has no version {versionsnummer}")
        dateien: dict[str, Path] = {}
        rueckgaben = []
        for index, inhalt in enumerate(inhalte):
            target = arbeitsordner / f"{index:04d}"
            try:
                await self.port.read_content(inhalt, target)
            except TransientDeliveryError:
                raise
            except PermanentDeliveryError as exc:
                raise _Abgelehnt(fv.UNBEKANNTER_FEHLER, exc.message) from exc
            dateien[inhalt.dateiname] = target
            rueckgaben.append(
                fv.Rueckgabe(erfolgreich=True, idsgo=idsgo, ablageort=inhalt.dateiname)
            )
        if not rueckgaben:
            raise _Abgelehnt("0631001", f"Dokument {idsgo} holds no primary document")
        return fv.Antwort(
            meldungen=(fv.Meldung(code=fv.ERFOLG),), rueckgaben=tuple(rueckgaben), dateien=dateien
        )


# --------------------------------------------------------------------------- helpers


def _meldungen(d: builders.Dialect, code: str, text: str) -> tuple[fv.Meldung, ...]:
    """The code and, where the version allows a second Rueckmeldung (3.x), the reason."""
    if d.major < 3:
        return (fv.Meldung(code=code),)
    return (fv.Meldung(code=code), fv.Meldung(text=text))


def _one(root: etree._Element, d: builders.Dialect, local: str) -> etree._Element:
    element = root.find(d.q(local))
    if element is None:  # pragma: no cover - the schema requires it
        raise _Abgelehnt(fv.XML_UNGUELTIG, f"the request has no {local}")
    return element


def _text(element: etree._Element | None, d: builders.Dialect | None, local: str) -> str | None:
    if element is None:
        return None
    value = element.findtext(d.q(local) if d is not None else local)
    return value.strip() if value and value.strip() else None


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().lstrip("-").isdigit() else None


def _sgo_id(item: etree._Element, d: builders.Dialect) -> str:
    wrapper = item.find(d.q("Schriftgutobjekt"))
    if wrapper is not None:
        for objekt in wrapper:
            ident = objekt.findtext(f"{d.q('Identifikation')}/{d.q('ID')}")
            if ident:
                return ident.strip()
    # pragma: no cover - the schema requires an Identifikation/ID
    raise _Abgelehnt(fv.XML_UNGUELTIG, "an object to create has no Identifikation/ID")


def _has_version(objekt: DmsObjekt, nummer: str) -> bool:
    return any(f.nummer == nummer for f in objekt.daten.formate)


def _inhalte_der_version(objekt: DmsObjekt, nummer: str | None) -> list[Inhalt] | None:
    """The content objects of version ``nummer`` (default: the latest); ``None`` if unknown."""
    formate = objekt.daten.formate
    if not formate:
        # A Dokument made in the DMS by hand has no xdomea versions: all its contents.
        return None if nummer is not None else list(objekt.inhalte)
    nummern = sorted({f.nummer or "1" for f in formate}, key=_version_key)
    wanted = nummer if nummer is not None else nummern[-1]
    namen = {f.dateiname for f in formate if (f.nummer or "1") == wanted}
    if not namen:
        return None
    return [i for i in objekt.inhalte if i.dateiname in namen]


def _version_key(nummer: str) -> tuple[int, str]:
    return (int(nummer), nummer) if nummer.isdigit() else (-1, nummer)


def _metadatum_problem(
    feld: fv.Feld, vorhanden: dict[str, str], anlegen: bool
) -> tuple[str, str] | None:
    """What is wrong with setting ``feld`` (code and reason), or ``None``."""
    code = "0609" if anlegen else "0610"
    if not feld.name or feld.name.startswith(RESERVED_PREFIX):
        reason = f"Metadatum name {feld.name!r} is empty or reserved ({RESERVED_PREFIX}*)"
        return f"{code}002", reason
    if feld.wert is None:
        return ("0609008" if anlegen else "0610007"), f"Metadatum {feld.name} has no Wert"
    existing = vorhanden.get(feld.name)
    if anlegen and existing is not None and existing != feld.wert:
        return "0609006", f"Metadatum {feld.name} exists already; use a 0610 to change it"
    if not anlegen and existing is None:
        return "0610005", f"Metadatum {feld.name} does not exist; use a 0609 to create it"
    return None


def _status_feld(wert: str) -> fv.Feld:
    return fv.Feld(name="DMS", wert=wert, beschreibung="Verfügbarkeit des DMS (SystemstatusID 1)")
