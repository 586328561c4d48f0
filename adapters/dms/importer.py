"""Carry out an import plan against a DMS port, idempotently.

Each object is looked up by its xdomea UUID before it is created, and each
primary document by its name inside its Dokument before it is stored, so running
the same import again — after a crash, a timeout, a lost answer — finds what the
earlier attempt made and continues where it stopped. Nothing here keeps state
between attempts: the DMS itself is the record of what is done (adapters never
touch the journal).

A content object that already exists is read back and compared by SHA-256: the
same bytes count as done, different bytes are a conflict an operator must look at.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

from adapters.dms.plan import Datei, Plan, Schritt
from contracts.delivery import DmsContent, DmsObject
from contracts.dms import DmsPort, Inhalt
from contracts.xdomea import uuid_key
from gateway.errors import ObjectRefused, PermanentDeliveryError

log = structlog.get_logger(__name__)

#: Opens a primary document of the container by its name; called in a worker thread.
DocumentSource = Callable[[str], IO[bytes]]


class UuidLocks:
    """One lock per xdomea UUID within this process.

    Two imports carrying the same object (two Abgaben of one Akte) must not both
    search, miss and create it, nor both store its documents.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, uuid: str) -> asyncio.Lock:
        """The lock of ``uuid`` (compared case-insensitively)."""
        key = uuid_key(uuid)
        found = self._locks.get(key)
        if found is None:
            found = asyncio.Lock()
            self._locks[key] = found
        return found


@dataclass
class ImportErgebnis:
    """What one import run did: the DMS address of every object, by xdomea UUID."""

    prozess_id: str
    adressen: dict[str, str] = field(default_factory=dict)
    angelegt: int = 0
    vorhanden: int = 0
    inhalte_angelegt: int = 0
    inhalte_vorhanden: int = 0
    #: Dokumente (by UUID) the DMS refused a document of, with its reasons (for the 0402).
    fehler: dict[str, list[str]] = field(default_factory=dict)
    #: Every object filed or found, in plan order, with its stored documents' SHA-256.
    objekte: list[DmsObject] = field(default_factory=list)


async def run_import(
    port: DmsPort,
    plan: Plan,
    source: DocumentSource,
    locks: UuidLocks | None = None,
    *,
    root: str | None = None,
) -> ImportErgebnis:
    """File every object and document of ``plan`` into ``port``; resume what exists.

    ``root`` is the DMS address the plan's top-level objects go into (an FVDaten
    request's ``IDContainer``); without it they go to the DMS's top level, or to
    the plan's ``ablage`` for kinds the DMS does not keep at the top.

    Raises:
        TransientDeliveryError: the DMS failed in a way worth retrying; what was filed
            stays and the next attempt continues from there.
        PermanentDeliveryError: the DMS refused, or holds different bytes under a
            document's name.
    """
    ergebnis = ImportErgebnis(prozess_id=plan.prozess_id)
    locks = locks or UuidLocks()
    adressen: list[str] = []
    for schritt in plan.schritte:
        parent = adressen[schritt.parent] if schritt.parent is not None else root
        if parent is None and schritt.daten.art not in port.top_level:
            parent = plan.ablage
        # The lock covers the object and its documents: each is looked up, then made.
        async with locks.lock(schritt.daten.uuid):
            adresse, neu = await _objekt(port, parent, schritt, ergebnis)
            inhalte = (
                await _inhalte(port, adresse, neu, schritt, source, ergebnis)
                if schritt.dateien
                else ()
            )
        adressen.append(adresse)
        ergebnis.adressen[schritt.daten.uuid] = adresse
        ergebnis.objekte.append(
            DmsObject(
                uuid=schritt.daten.uuid,
                art=schritt.daten.art.value,
                adresse=adresse,
                status="created" if neu else "found",
                inhalte=inhalte,
            )
        )
    log.info(
        "dms_import_done",
        dms=port.where,
        prozess_id=plan.prozess_id,
        created=ergebnis.angelegt,
        existing=ergebnis.vorhanden,
        contents_created=ergebnis.inhalte_angelegt,
        contents_existing=ergebnis.inhalte_vorhanden,
        refused=len(ergebnis.fehler),
    )
    return ergebnis


async def _objekt(
    port: DmsPort, parent: str | None, schritt: Schritt, ergebnis: ImportErgebnis
) -> tuple[str, bool]:
    daten = schritt.daten
    found = await port.find(parent, daten)
    if found is not None:
        ergebnis.vorhanden += 1
        log.info("dms_object_exists", art=daten.art.value, uuid=daten.uuid, adresse=found)
        return found, False
    adresse = await port.create(parent, daten)
    ergebnis.angelegt += 1
    log.info("dms_object_created", art=daten.art.value, uuid=daten.uuid, adresse=adresse)
    return adresse, True


async def _inhalte(
    port: DmsPort,
    dokument: str,
    neu: bool,
    schritt: Schritt,
    source: DocumentSource,
    ergebnis: ImportErgebnis,
) -> tuple[DmsContent, ...]:
    """Store the Dokument's primary documents; returns those it holds now (not refused ones).

    Each SHA-256 returned is the document's as sent: the port checks a new content
    object against it, and an existing one is read back and compared.
    """
    # A Dokument made just now holds nothing yet; only a resumed one is asked.
    vorhanden = {} if neu else {i.dateiname: i for i in (await port.read(dokument)).inhalte}
    gespeichert: list[DmsContent] = []
    for datei in schritt.dateien:
        existing = vorhanden.get(datei.dateiname)
        if existing is not None:
            await _require_same(port, existing, datei, schritt)
            ergebnis.inhalte_vorhanden += 1
            gespeichert.append(
                DmsContent(dateiname=datei.dateiname, sha256=datei.sha256, status="found")
            )
            continue
        try:
            inhalt = await port.add_content(
                dokument,
                datei.dateiname,
                functools.partial(source, datei.dateiname),
                datei.sha256,
                datei.size,
            )
        except ObjectRefused as exc:
            # One refused document must not cost the sender the whole Abgabe: the
            # rest is filed and the 0402 reports this Dokument as not imported.
            ergebnis.fehler.setdefault(schritt.daten.uuid, []).append(
                f"{datei.dateiname}: {exc.message}"
            )
            log.warning("dms_content_refused", uuid=schritt.daten.uuid, error=exc.message)
            continue
        ergebnis.inhalte_angelegt += 1
        gespeichert.append(
            DmsContent(dateiname=datei.dateiname, sha256=datei.sha256, status="created")
        )
        log.info("dms_content_created", uuid=schritt.daten.uuid, adresse=inhalt.adresse)
    return tuple(gespeichert)


async def _require_same(port: DmsPort, inhalt: Inhalt, datei: Datei, schritt: Schritt) -> None:
    """Accept an existing content object only if it holds exactly the document's bytes."""
    with tempfile.TemporaryDirectory(prefix="ikz-dms-") as folder:
        target = Path(folder) / "inhalt"
        digest = await port.read_content(inhalt, target)
        size = await asyncio.to_thread(lambda: target.stat().st_size)
    if digest == datei.sha256 and size == datei.size:
        return
    raise PermanentDeliveryError(
        f"Dokument {schritt.daten.uuid} in {port.where} already holds {datei.dateiname!r} "
        f"({inhalt.adresse}) with other bytes (SHA-256 {digest}, expected {datei.sha256}); "
        "someone changed it in the DMS. Compare both versions, remove the wrong one, and "
        "replay the message"
    )
