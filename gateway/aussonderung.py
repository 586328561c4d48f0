"""Aussonderung: the agency side of handing closed Akten to an archive (xdomea 0501–0507).

Four stages (``[archives.NAME] stages = 4``)::

    aussonderung start ── 0501 Anbieteverzeichnis (metadata from [dms]) ──► archive
    archive ── 0504 (offer received), 0502 Bewertungsverzeichnis (A / V / B per object) ──►
        engine: 0505 (Bewertung received) + 0503 with only the objects valued A and
                their primary documents (exported from [dms] again) ──► archive
    archive ── 0507 (3.x: received), 0506 per-object import result ──►
        engine: DMS action per archived object (``archived``) and per V-valued
                object (``vernichten``); nothing for objects the 0506 reports failed

Two stages: ``start`` sends the 0503 at once; the 0506 ends the process.

Every message goes through intake and the journal: ``start`` submits as the node,
the archive's answers come in through ``ArchiveInbox`` (polling the archive's
transfer folder) as partner ``archive.NAME`` and are routed to the ``aussonderung``
destination, ``AussonderungEngine``. The engine answers through the ``NodeOutbox``
with keys derived from the answered message (``aussonderung:<id>:0505``) and
timestamps taken from it, so a redelivery after a crash journals nothing twice.
What the messages cannot hold is recorded in ``aussonderung_records`` (journal):
the DMS address of each offered Akte (``start``), each DMS action done
(``action:<uuid>``; an action is done before it is recorded and is idempotent, so a
crash in between repeats it harmlessly and never loses it), and answer files
intake refused (``refused:<sha256>``). The DMS is never asked to delete anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import structlog
from pydantic import BaseModel, ConfigDict

from adapters.dms import mapping
from adapters.dms.destination import build_port
from adapters.dms.exporter import AussonderungExport, export_aussonderung
from adapters.transfer.archive import answer_name
from adapters.transfer.folders import open_folder
from adapters.transfer.polling import StableFiles
from adapters.xdomea import builders, naming
from adapters.xdomea.bewertung import read_bewertungen
from adapters.xdomea.receipts import (
    ImportResults,
    build_receipt,
    read_import_results,
    requested_receipts,
)
from adapters.xdomea.validation import CheckedMessage
from contracts.builders import AkteSpec, DokumentSpec, ObjectResult, VorgangSpec, new_uuid
from contracts.config import ArchiveConfig, DmsActionConfig, GatewayConfig, PartnerConfig
from contracts.delivery import NodeOutbox, Outbound
from contracts.dms import DmsPort
from contracts.journal import AussonderungRecord, MessageState, MessageView
from contracts.transfer import FolderEntry, TransferFolder
from contracts.xdomea import Behoerdenkennung, Kontakt, MessageType, Nachricht, uuid_key
from gateway.blobs import BlobStore
from gateway.errors import (
    AussonderungRefused,
    GatewayError,
    IntakeRejected,
    JournalUnavailable,
    PermanentDeliveryError,
    ReceiptError,
    TransientDeliveryError,
)
from gateway.intake import Intake, Submission
from gateway.journal.store import Journal
from gateway.receipts import read_message

log = structlog.get_logger(__name__)

#: The archive's answers the engine takes (route them to the ``aussonderung`` destination).
ANSWER_CODES = ("0502", "0504", "0506", "0507")

Spec = AkteSpec | VorgangSpec | DokumentSpec
T = TypeVar("T")


class StartRecord(BaseModel):
    """What ``start`` records for a process: the archive and the DMS address of each object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    archive: str
    stages: int
    xdomea_version: str
    #: Top-level object UUID (as the DMS spells it) → its DMS address.
    objekte: dict[str, str]


class ActionRecord(BaseModel):
    """One DMS action after the archive's answer (or why none was made)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objekt: str
    adresse: str | None
    #: ``archiviert``, ``vernichten`` or ``nicht-archiviert`` (skipped: the 0506 failed it).
    ergebnis: str
    action: str
    detail: str | None = None


@dataclass(frozen=True)
class Started:
    """What ``start`` journaled."""

    prozess_id: str
    message_id: str
    nachrichtentyp: str
    objekte: tuple[str, ...]
    duplicate: bool


def archive_partner(name: str, archive: ArchiveConfig) -> PartnerConfig:
    """The archive as the sender of its answers (never reachable through the HTTP API)."""
    return PartnerConfig(
        id=f"archive.{name}",
        behoerdenkennung=archive.behoerdenkennung,
        token_sha256=hashlib.sha256(os.urandom(32)).hexdigest(),
    )


def kontakt(kennung: str, institution: str | None = None) -> Kontakt:
    """A Kopf party from a ``praefix:kennung`` Behördenkennung."""
    praefix, schluessel = kennung.split(":", 1)
    return Kontakt(
        behoerdenkennung=Behoerdenkennung(praefix=praefix, kennung=schluessel),
        institution=institution,
    )


def depth(knoten: mapping.Knoten) -> int:
    """Nesting depth of a tree: 1 for an object without children."""
    return 1 + max((depth(kind) for kind in knoten.kinder), default=0)


def _check_depth(baeume: Sequence[mapping.Knoten], archive_name: str, maximum: int) -> None:
    for knoten in baeume:
        if depth(knoten) > maximum:
            raise AussonderungRefused(
                f"{knoten.daten.art.value} {knoten.daten.uuid} is nested {depth(knoten)} levels "
                f"deep; archive {archive_name} accepts at most {maximum} (max_depth). Flatten "
                "it in the DMS or agree a deeper structure with the archive"
            )


def _builder(
    code: str,
    config: GatewayConfig,
    archive: ArchiveConfig,
    prozess_id: str,
    erstellt: datetime | None,
) -> Callable[[list[Spec]], bytes]:
    absender = kontakt(config.node.behoerdenkennung)
    empfaenger = kontakt(archive.behoerdenkennung, archive.name)
    version = archive.xdomea_version

    def build(objekte: list[Spec]) -> bytes:
        if code == "0501":
            return builders.build_anbieteverzeichnis_0501(
                version,
                objekte,
                absender=absender,
                empfaenger=empfaenger,
                prozess_id=prozess_id,
                erstellungszeitpunkt=erstellt,
            )
        return builders.build_aussonderung_0503(
            version,
            objekte,
            absender=absender,
            empfaenger=empfaenger,
            prozess_id=prozess_id,
            erstellungszeitpunkt=erstellt,
        )

    return build


def _archive(config: GatewayConfig, name: str) -> ArchiveConfig:
    try:
        return config.archives[name]
    except KeyError:
        known = ", ".join(sorted(config.archives)) or "none configured"
        raise AussonderungRefused(
            f"no archive {name!r} is configured (archives: {known}); add an [archives.{name}] "
            "section to gateway.toml"
        ) from None


async def start(
    config: GatewayConfig,
    *,
    akten: Sequence[str],
    archive_name: str,
    port: DmsPort,
    journal: Journal,
    intake: Intake,
    node: PartnerConfig,
    prozess_id: str | None = None,
) -> Started:
    """Offer (four stages: 0501) or hand over (two stages: 0503) the Akten at ``akten``.

    Everything that can fail for the input is checked before anything is journaled:
    the archive is configured and routed, every address is an Akte or Vorgang of the
    DMS, the nesting depth is within the archive's maximum.

    Raises:
        AussonderungRefused: unknown archive, no route, a failed check.
        PermanentDeliveryError: an address names no object, or a Dokument.
        TransientDeliveryError: the DMS cannot be reached.
        IntakeRejected: the built message was refused (a gateway defect).
    """
    archive = _archive(config, archive_name)
    if not akten:
        raise AussonderungRefused("name at least one Akte (--akten ADDRESS)")
    if len(set(akten)) != len(akten):
        raise AussonderungRefused("an Akte is named twice in --akten; name each once")
    code = "0501" if archive.stages == 4 else "0503"
    if not config.routes_for(code, archive.behoerdenkennung):
        raise AussonderungRefused(
            f"there is no route for a {code} to archive {archive_name} "
            f"({archive.behoerdenkennung}); add [[routes]] empfaenger = "
            f'"{archive.behoerdenkennung}" with a destination of type "archive"'
        )
    prozess_id = prozess_id or new_uuid()
    with tempfile.TemporaryDirectory(prefix="ikz-aussonderung-") as folder:
        export = await export_aussonderung(
            port,
            list(akten),
            _builder(code, config, archive, prozess_id, None),
            version=archive.xdomea_version,
            documents_into=Path(folder) if code == "0503" else None,
        )
        for adresse, knoten in zip(akten, export.baeume, strict=True):
            if knoten.daten.art not in mapping.AKTEN | mapping.VORGAENGE:
                raise AussonderungRefused(
                    f"{adresse} is a {knoten.daten.art.value}; an Aussonderung offers Akten "
                    "and Vorgänge"
                )
        _check_depth(export.baeume, archive_name, archive.max_depth)
        body = await _body(export)
    record = StartRecord(
        archive=archive_name,
        stages=archive.stages,
        xdomea_version=archive.xdomea_version,
        objekte={k.daten.uuid: a for a, k in zip(akten, export.baeume, strict=True)},
    )
    await journal.record_aussonderung(prozess_id, "start", "start", record.model_dump_json())
    typ = MessageType(element=builders.MESSAGE_ELEMENTS[code], code=code)
    accepted = await intake.submit(
        _once(body),
        Submission(
            partner=node,
            channel="cli",
            idempotency_key=f"aussonderung:{prozess_id}:{code}",
            file_name=answer_name(prozess_id, typ, None, archive.naming),
        ),
    )
    log.info(
        "aussonderung_started",
        prozess_id=prozess_id,
        archive=archive_name,
        nachrichtentyp=code,
        objekte=len(akten),
    )
    return Started(
        prozess_id=prozess_id,
        message_id=accepted.message_id,
        nachrichtentyp=code,
        objekte=tuple(record.objekte),
        duplicate=accepted.duplicate,
    )


async def _body(export: AussonderungExport) -> bytes:
    if export.path is None:
        return export.xml
    return await asyncio.to_thread(export.path.read_bytes)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


# --------------------------------------------------------------------------- the engine


class AussonderungEngine:
    """The ``aussonderung`` destination: advances a process with each answer of the archive.

    Input problems (an answer for an unknown process, from another archive than the
    one offered to, a malformed Bewertung) are permanent: the answer is
    dead-lettered with the reason and the process does not advance. An unreachable
    DMS is transient.
    """

    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        journal: Journal,
        blobs: BlobStore,
        outbox: NodeOutbox,
        port: DmsPort | None = None,
    ) -> None:
        """An engine over the node's journal, blob store, outbox and ``[dms]``."""
        self.name = name
        self._config = config
        self._journal = journal
        self._blobs = blobs
        self._outbox = outbox
        if port is None:
            assert config.dms is not None  # the config validator guarantees it
            port = build_port(config.dms)
        self.port = port

    async def deliver(self, item: Outbound) -> None:
        """Take one answer of the archive (0502, 0504, 0506 or 0507).

        Raises:
            PermanentDeliveryError: the answer does not fit the process.
            TransientDeliveryError: the DMS or the journal is unavailable.
        """
        view = await self._journal.get_message(item.message_id)
        found = self._config.archive_for(view.absender)
        if found is None:
            raise PermanentDeliveryError(
                f"{item.nachrichtentyp} from {view.absender}, which is no configured archive; "
                "only archives' answers may be routed to an aussonderung destination"
            )
        archive_name, archive = found
        records = await self._journal.aussonderung_records(item.prozess_id)
        start_record = next((r for r in records if r.key == "start"), None)
        if start_record is None:
            raise PermanentDeliveryError(
                f"{item.nachrichtentyp} for ProzessID {item.prozess_id}, but this node started "
                "no Aussonderung with that ProzessID; check the archive's answer"
            )
        started = StartRecord.model_validate_json(start_record.detail)
        if started.archive != archive_name:
            raise PermanentDeliveryError(
                f"ProzessID {item.prozess_id} was offered to archive {started.archive}, but "
                f"this {item.nachrichtentyp} comes from archive {archive_name} "
                f"({archive.behoerdenkennung})"
            )
        with structlog.contextvars.bound_contextvars(
            prozess_id=item.prozess_id, archive=archive_name
        ):
            if item.nachrichtentyp == "0502":
                await self._bewertung(item, view, archive, started)
            elif item.nachrichtentyp == "0506":
                await self._importiert(item, view, archive, started, records)
            elif item.nachrichtentyp in ("0504", "0507"):
                log.info("aussonderung_confirmed", nachrichtentyp=item.nachrichtentyp)
            else:
                raise PermanentDeliveryError(
                    f"an aussonderung destination takes {', '.join(ANSWER_CODES)}, not "
                    f"{item.nachrichtentyp}; check the routes"
                )

    async def close(self) -> None:
        """Release the DMS connection."""
        await self.port.close()

    # ------------------------------------------------------------------ 0502

    async def _bewertung(
        self, item: Outbound, view: MessageView, archive: ArchiveConfig, started: StartRecord
    ) -> None:
        if started.stages != 4:
            raise PermanentDeliveryError(
                f"a 0502 Bewertungsverzeichnis for ProzessID {item.prozess_id}, but that "
                "process is two-stage (0503 sent directly); the archive answers it with a 0506"
            )
        views = await self._journal.process(item.prozess_id)
        angebot = self._own(views, "0501")
        if angebot is None:
            raise PermanentDeliveryError(
                f"a 0502 for ProzessID {item.prozess_id}, whose 0501 is not in the journal"
            )
        offered = await self._read(angebot, lambda checked: checked.read())
        erstellt = _whole_seconds(view.received_at)

        def read_0502(checked: CheckedMessage) -> tuple[dict[str, str], bytes | None]:
            # The 0505 carries the 0502's own time: rebuilt after a crash, it is the same.
            bewertungen = _bewertungen(checked)
            check_bewertungen(offered, bewertungen)
            if "0505" not in requested_receipts(checked):
                return bewertungen, None
            return bewertungen, build_receipt(checked, "0505", erstellungszeitpunkt=erstellt)

        bewertungen, receipt = await self._read(item, read_0502)
        if receipt is not None:
            await self._submit(receipt, item, "0505", view.file_name, archive)
        wertvoll = {
            uuid_key(top.uuid)
            for top in offered.schriftgutobjekte
            if _effective(top.uuid, bewertungen, None) == "A"
        }
        if not wertvoll:
            log.info("aussonderung_nothing_archived", objekte=len(offered.schriftgutobjekte))
            await self._vernichten(item.prozess_id, started, bewertungen, view, archive)
            return
        adressen = [a for uuid, a in started.objekte.items() if uuid_key(uuid) in wertvoll]
        with tempfile.TemporaryDirectory(prefix="ikz-aussonderung-") as folder:
            typ = MessageType(element=builders.MESSAGE_ELEMENTS["0503"], code="0503")
            export = await export_aussonderung(
                self.port,
                adressen,
                _builder("0503", self._config, archive, item.prozess_id, erstellt),
                version=started.xdomea_version,
                select=lambda knoten: select_archived(knoten, bewertungen, None),
                documents_into=Path(folder),
                file_name=answer_name(item.prozess_id, typ, view.file_name, archive.naming),
            )
            try:
                check_aussonderung(export.baeume, bewertungen)
                _check_depth(export.baeume, started.archive, archive.max_depth)
            except AussonderungRefused as exc:
                raise PermanentDeliveryError(exc.message) from exc
            body = await _body(export)
        await self._submit(body, item, "0503", view.file_name, archive)

    # ------------------------------------------------------------------ 0506

    async def _importiert(
        self,
        item: Outbound,
        view: MessageView,
        archive: ArchiveConfig,
        started: StartRecord,
        records: list[AussonderungRecord],
    ) -> None:
        views = await self._journal.process(item.prozess_id)
        uebergabe = self._own(views, "0503")
        if uebergabe is None:
            raise PermanentDeliveryError(
                f"a 0506 for ProzessID {item.prozess_id}, but this node sent no 0503 in it"
            )
        uebergeben = await self._read(uebergabe, lambda checked: checked.read())
        ergebnisse, per_object = await self._read(item, _import_results)
        at = _whole_seconds(view.received_at)
        done = {r.key for r in records}
        adressen = {uuid_key(u): a for u, a in started.objekte.items()}
        for top in uebergeben.schriftgutobjekte:
            key = f"action:{top.uuid_key}"
            if key in done:
                continue
            failures = [
                text
                for sgo in top.walk()
                for text in _failure(ergebnisse.result_for(sgo.uuid), ergebnisse, per_object)
            ]
            eigenes = ergebnisse.result_for(top.uuid)
            if failures:
                await self._record_action(
                    item.prozess_id,
                    ActionRecord(
                        objekt=top.uuid,
                        adresse=adressen.get(top.uuid_key),
                        ergebnis="nicht-archiviert",
                        action="none",
                        detail="; ".join(failures),
                    ),
                )
                continue
            archivkennung = eigenes.archivkennung if eigenes is not None else None
            await self._act(
                item.prozess_id,
                top.uuid,
                adressen.get(top.uuid_key),
                archive.archived,
                "archiviert",
                at,
                archivkennung,
            )
        if started.stages == 4:
            bewertung = next(
                (
                    v
                    for v in reversed(views)
                    if v.nachrichtentyp == "0502" and v.absender == view.absender
                ),
                None,
            )
            if bewertung is not None:
                bewertungen = await self._read(bewertung, _bewertungen)
                await self._vernichten(item.prozess_id, started, bewertungen, view, archive)

    # ------------------------------------------------------------------ actions

    async def _vernichten(
        self,
        prozess_id: str,
        started: StartRecord,
        bewertungen: Mapping[str, str],
        view: MessageView,
        archive: ArchiveConfig,
    ) -> None:
        """The ``vernichten`` action for every offered top-level object valued V."""
        done = {r.key for r in await self._journal.aussonderung_records(prozess_id)}
        at = _whole_seconds(view.received_at)
        for uuid, adresse in started.objekte.items():
            if bewertungen.get(uuid_key(uuid)) != "V" or f"action:{uuid_key(uuid)}" in done:
                continue
            await self._act(prozess_id, uuid, adresse, archive.vernichten, "vernichten", at, None)

    async def _act(
        self,
        prozess_id: str,
        uuid: str,
        adresse: str | None,
        action: DmsActionConfig,
        ergebnis: str,
        at: datetime,
        archivkennung: str | None,
    ) -> None:
        """Run one DMS action, then record it (a crash in between repeats an idempotent set)."""
        detail: str | None = None
        if adresse is not None and action.action == "disposal-date":
            when = at + timedelta(days=action.delay_days)
            await self.port.set_disposal_date(adresse, when)
            detail = f"offltscheduled={when.isoformat()}"
        elif adresse is not None and action.action == "fachdatum":
            assert action.field is not None and action.value is not None  # validated
            value = action.value.replace("{archivkennung}", archivkennung or "")
            await self.port.write_fachdaten(adresse, {action.field: value})
            detail = f"{action.field}={value}"
        elif archivkennung:
            detail = f"archivkennung={archivkennung}"
        await self._record_action(
            prozess_id,
            ActionRecord(
                objekt=uuid,
                adresse=adresse,
                ergebnis=ergebnis,
                action=action.action if adresse is not None else "none",
                detail=detail,
            ),
        )

    async def _record_action(self, prozess_id: str, record: ActionRecord) -> None:
        await self._journal.record_aussonderung(
            prozess_id, f"action:{uuid_key(record.objekt)}", "action", record.model_dump_json()
        )
        log.info(
            "aussonderung_dms_action",
            objekt=record.objekt,
            ergebnis=record.ergebnis,
            action=record.action,
        )

    # ------------------------------------------------------------------ helpers

    def _own(self, views: list[MessageView], code: str) -> MessageView | None:
        kennung = self._config.node.behoerdenkennung
        return next(
            (
                v
                for v in reversed(views)
                if v.nachrichtentyp == code
                and v.absender == kennung
                and v.state is not MessageState.DEAD
            ),
            None,
        )

    async def _read(self, message: MessageView | Outbound, use: Callable[[CheckedMessage], T]) -> T:
        if isinstance(message, Outbound):
            sha256, kind = message.blob_sha256, message.content_kind
        else:
            sha256, kind = message.blob_sha256, None

        path = await self._blobs.file(sha256)

        def work() -> T:
            with ExitStack() as stack:
                return use(read_message(path, kind, stack))

        try:
            return await asyncio.to_thread(work)
        except FileNotFoundError as exc:
            raise PermanentDeliveryError(
                f"blob {sha256} is missing from the blob store; restore it and replay"
            ) from exc

    async def _submit(
        self, body: bytes, item: Outbound, code: str, like: str | None, archive: ArchiveConfig
    ) -> None:
        typ = MessageType(element=_ELEMENTS[code], code=code)
        try:
            message_id = await self._outbox.submit(
                body,
                idempotency_key=f"aussonderung:{item.message_id}:{code}",
                file_name=answer_name(item.prozess_id, typ, like, archive.naming),
            )
        except IntakeRejected as exc:
            raise PermanentDeliveryError(
                f"the {code} answering {item.nachrichtentyp} {item.message_id} was refused by "
                f"this node's intake: {exc.message}"
            ) from exc
        log.info("aussonderung_answered", nachrichtentyp=code, message_id=message_id)


_ELEMENTS = {
    "0503": builders.MESSAGE_ELEMENTS["0503"],
    "0505": "Aussonderung.BewertungEmpfangBestaetigen.0505",
}


def _bewertungen(checked: CheckedMessage) -> dict[str, str]:
    try:
        return read_bewertungen(checked)
    except ReceiptError as exc:
        raise PermanentDeliveryError(
            f"malformed 0502 Bewertungsverzeichnis: {exc.message}"
        ) from exc


def _whole_seconds(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def _failure(result: ObjectResult | None, ergebnisse: ImportResults, per_object: bool) -> list[str]:
    """Why an object is not archived according to the 0506 (empty: archived).

    3.x lists every Schriftgutobjekt; one it leaves out is not confirmed. 2.x gives
    one verdict for the whole message.
    """
    if not per_object:
        if ergebnisse.erfolgreich:
            return []
        return list(ergebnisse.fehlermeldungen) or ["the 0506 reports the import failed"]
    if result is None:
        return ["the 0506 does not list this object"]
    if result.erfolgreich:
        return []
    return list(result.fehlermeldungen) or ["the 0506 reports the import failed"]


def _import_results(checked: CheckedMessage) -> tuple[ImportResults, bool]:
    per_object = builders.dialect(checked.detected.version).results_per_object
    return read_import_results(checked), per_object


# --------------------------------------------------------------------------- checks


def _effective(uuid: str, bewertungen: Mapping[str, str], inherited: str | None) -> str | None:
    return bewertungen.get(uuid_key(uuid), inherited)


def check_bewertungen(offered: Nachricht, bewertungen: Mapping[str, str]) -> None:
    """Refuse a Bewertung that does not fit the offer.

    Every offered top-level object must be valued; nothing may be valued that was not
    offered (nested objects may be valued on their own).

    Raises:
        PermanentDeliveryError: with the objects at fault.
    """
    angeboten = {sgo.uuid_key for sgo in offered.walk()}
    fremd = sorted(set(bewertungen) - angeboten)
    if fremd:
        raise PermanentDeliveryError(
            f"malformed 0502 Bewertungsverzeichnis: it values {', '.join(fremd)}, which the "
            "0501 did not offer"
        )
    fehlend = [top.uuid for top in offered.schriftgutobjekte if top.uuid_key not in bewertungen]
    if fehlend:
        raise PermanentDeliveryError(
            f"malformed 0502 Bewertungsverzeichnis: it does not value {', '.join(fehlend)}, "
            "which the 0501 offered; every offered object needs an Aussonderungsart"
        )


def select_archived(
    knoten: mapping.Knoten, bewertungen: Mapping[str, str], inherited: str | None
) -> mapping.Knoten | None:
    """The part of a tree valued A (an object without its own valuation inherits its parent's)."""
    code = _effective(knoten.daten.uuid, bewertungen, inherited)
    if code != "A":
        return None
    kinder = tuple(
        kept
        for kind in knoten.kinder
        if (kept := select_archived(kind, bewertungen, code)) is not None
    )
    return mapping.Knoten(daten=knoten.daten, kinder=kinder, inhalte=knoten.inhalte)


def check_aussonderung(baeume: Sequence[mapping.Knoten], bewertungen: Mapping[str, str]) -> None:
    """Refuse a 0503 holding an object not valued A (what the archive would refuse).

    Raises:
        AussonderungRefused: the first object at fault.
    """

    def walk(knoten: mapping.Knoten, inherited: str | None) -> None:
        code = _effective(knoten.daten.uuid, bewertungen, inherited)
        if code != "A":
            raise AussonderungRefused(
                f"{knoten.daten.art.value} {knoten.daten.uuid} would go into the 0503 but is "
                f"valued {code or 'not at all'}; only objects valued A are handed over"
            )
        for kind in knoten.kinder:
            walk(kind, code)

    for knoten in baeume:
        walk(knoten, None)


# --------------------------------------------------------------------------- inbox


class ArchiveInbox:
    """Polls an archive's archive→agency folder and hands each complete answer to intake.

    A file is read once it is stable (``adapters.transfer.polling.StableFiles``:
    unchanged across listings ``settle_seconds`` apart, no temporary name; the
    archive may not write atomically). It is journaled as sent by ``archive.NAME``
    (key: archive and SHA-256, so a file seen again is the same message) and then
    removed when ``remove_answers = "after-journal"``. A file intake refuses (e.g. a
    0502 that is not schema-valid) stays where it is, is recorded for its process
    (``process show``) and is not read again until it changes; one that could not
    be journaled for a transient reason is read again at the next poll.
    """

    def __init__(
        self,
        name: str,
        archive: ArchiveConfig,
        intake: Intake,
        journal: Journal,
        folder: TransferFolder | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An inbox for archive ``name`` submitting through ``intake``."""
        self.name = name
        self.archive = archive
        self.folder = folder or open_folder(archive.folder)
        self._intake = intake
        self._journal = journal
        self._partner = archive_partner(name, archive)
        self._clock = clock
        self._stable = StableFiles(archive.settle_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; a failing poll is logged and tried again."""
        try:
            while not stop.is_set():
                try:
                    await self.poll_once()
                except (GatewayError, OSError) as exc:
                    log.warning("archive_poll_failed", archive=self.name, error=str(exc))
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.archive.poll_interval_seconds)
        finally:
            await self.folder.close()

    async def poll_once(self) -> int:
        """One listing of the folder; how many files were journaled."""
        entries = await self.folder.list(self.archive.incoming)
        taken = 0
        for entry in self._stable.observe(entries, self._clock()):
            if not entry.name.lower().endswith((".zip", ".xml")):
                continue
            try:
                if await self._take(entry):
                    taken += 1
            except (TransientDeliveryError, JournalUnavailable) as exc:
                log.warning(
                    "archive_answer_retry", archive=self.name, file=entry.name, error=str(exc)
                )
                self._stable.forget(entry.name)
        return taken

    async def _take(self, entry: FolderEntry) -> bool:
        with tempfile.TemporaryDirectory(prefix="ikz-archive-in-") as folder:
            target = Path(folder) / "answer"
            try:
                sha256 = await self.folder.download(self.archive.incoming, entry.name, target)
            except FileNotFoundError:
                return False
            data = await asyncio.to_thread(target.read_bytes)
        try:
            accepted = await self._intake.submit(
                _once(data),
                Submission(
                    partner=self._partner,
                    channel="archive",
                    idempotency_key=f"archive:{self.name}:{sha256}",
                    file_name=entry.name,
                ),
            )
        except IntakeRejected as exc:
            await self._refuse(entry, sha256, exc)
            return False
        log.info(
            "archive_answer_taken",
            archive=self.name,
            file=entry.name,
            message_id=accepted.message_id,
            duplicate=accepted.duplicate,
        )
        if self.archive.remove_answers == "after-journal":
            await self.folder.remove(self.archive.incoming, entry.name)
        return True

    async def _refuse(self, entry: FolderEntry, sha256: str, exc: IntakeRejected) -> None:
        parsed = naming.parse_name(entry.name)
        prozess_id = parsed.prozess_id if parsed is not None else f"unknown:{entry.name}"
        detail = json.dumps(
            {"file": entry.name, "sha256": sha256, "status": exc.status, "error": exc.message},
            ensure_ascii=False,
        )
        await self._journal.record_aussonderung(prozess_id, f"refused:{sha256}", "refused", detail)
        log.warning(
            "archive_answer_refused",
            archive=self.name,
            file=entry.name,
            prozess_id=prozess_id,
            reason=exc.kind,
            error=exc.message,
        )
