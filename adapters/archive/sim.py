"""An archive that behaves like x-man on the file level, for tests and the demo.

Landesarchiv Thüringen's x-man (and archives like it) exchange xdomea files with
an agency through a transfer directory: the agency writes into one sub-folder
(``to_archive``), the archive answers into another (``from_archive``). This
simulator plays the archive's part on any ``TransferFolder`` (local or WebDAV):

* it polls ``to_archive`` and takes each file once it is stable
  (``adapters.transfer.polling``), as ZIP container or bare ``.xml``, named in any
  of the styles ``adapters.xdomea.naming`` reads;
* it validates the message against its version's XSD, and a container's
  completeness; a file that fails is recorded as rejected and not answered;
* **0501** Anbieteverzeichnis → 0504 AnbietungEmpfangBestaetigen (when the Kopf asks
  for it), then the 0502 Bewertungsverzeichnis: each offered top-level object
  valued by the configured policy (``bewertung`` for all, ``bewertungen`` per UUID,
  which may also value nested objects), or a deliberately malformed 0502
  (``malformed_0502``: ``schema`` drops a required element, ``xml`` is cut off);
* **0505** BewertungEmpfangBestaetigen → recorded;
* **0503** Aussonderung → 0507 AussonderungEmpfangBestaetigen (xdomea ≥ 3.0, when
  asked for), then 0506 AussonderungImportBestaetigen reporting **every**
  Schriftgutobjekt, children included (``adapters.xdomea.receipts``): failed for
  the UUIDs in ``fail_objects`` and, as x-man checks, for top-level objects that
  this archive's 0502 did not value A; the others succeed with an Archivkennung
  (when ``RueckmeldungArchivkennung`` is set). Every primary document of an
  archived object is kept in ``store/documents/<sha256>``, so tests and the demo
  can compare what the archive holds bit for bit.

Answers are ZIP containers named in the configured style (x-man: long,
``<ProzessID>_Aussonderung.Bewertungsverzeichnis.0502.zip``), stamped with the
answered message's Erstellungszeitpunkt (plus one second per answer), so a file
processed twice gives the same bytes and the folder's no-replace rule counts the
second upload as done. Processed files are removed from ``to_archive`` like
x-man does, or left (``remove_processed = false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

import structlog
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from adapters.transfer.polling import StableFiles, poll_ready
from adapters.xdomea import builders, naming
from adapters.xdomea.container import Container
from adapters.xdomea.files import FileCheck, Verdict, check_file
from adapters.xdomea.naming import NamingStyle
from adapters.xdomea.receipts import build_receipt, requested_receipts
from adapters.xdomea.validation import CheckedMessage
from contracts.builders import ObjectResult, SendendesSystem
from contracts.transfer import TransferFolder
from contracts.xdomea import MessageType, Nachricht, Severity, uuid_key
from gateway.durable import create_exclusive, fsync_dir
from gateway.errors import DeliveryError, GatewayError

log = structlog.get_logger(__name__)

#: The codes the archive reads; everything else in ``to_archive`` is rejected.
_READS = frozenset({"0501", "0503", "0505"})
_CHUNK = 1024 * 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

Aussonderungsart = Literal["A", "B", "V"]


class ArchiveSimConfig(BaseModel):
    """How the simulated archive behaves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Sub-folder the agency writes into.
    to_archive: str = "to_archive"
    #: Sub-folder the archive writes its answers into.
    from_archive: str = "from_archive"
    #: Aussonderungsart of every offered top-level object not named in ``bewertungen``.
    bewertung: Aussonderungsart = "A"
    #: Aussonderungsart per object UUID (top-level or nested; case-insensitive).
    bewertungen: Mapping[str, Aussonderungsart] = Field(default_factory=dict)
    #: ``schema``: a 0502 the XSD refuses; ``xml``: one that is not well-formed.
    malformed_0502: Literal["none", "schema", "xml"] = "none"
    #: UUIDs whose import the 0506 reports as failed.
    fail_objects: frozenset[str] = frozenset()
    #: Remove each file from ``to_archive`` once processed (x-man does).
    remove_processed: bool = True
    #: How the archive names its answer files.
    naming: NamingStyle = NamingStyle.LONG
    settle_seconds: float = Field(default=0.5, ge=0)
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    #: Archivkennung of the n-th archived object: ``<prefix>-<prozess>-<n>``.
    archivkennung_prefix: str = "SIM"
    produktname: str = "x-man-sim"


@dataclass(frozen=True)
class ArchivedDocument:
    """One primary document the archive took over."""

    objekt: str
    dateiname: str
    sha256: str
    size: int


@dataclass
class ArchiveProcess:
    """What the archive saw and answered for one ProzessID."""

    prozess_id: str
    version: str
    #: Codes received, in order (``0501``, ``0505``, ``0503``).
    received: list[str] = field(default_factory=list)
    #: Answer codes written, in order, with their file names.
    sent: list[tuple[str, str]] = field(default_factory=list)
    #: Aussonderungsart per object UUID key, as this archive's 0502 gave it.
    bewertungen: dict[str, str] = field(default_factory=dict)
    #: Documents of the objects archived by the 0503.
    archived: list[ArchivedDocument] = field(default_factory=list)
    #: Per object UUID (as spelled in the 0503) its reported result.
    results: dict[str, ObjectResult] = field(default_factory=dict)

    def sent_codes(self) -> list[str]:
        """The answer codes in the order they were written."""
        return [code for code, _ in self.sent]


@dataclass(frozen=True)
class Rejection:
    """A file the archive could not take, and why."""

    name: str
    reason: str


class ArchiveSimulator:
    """The archive's side of an Aussonderung on one transfer folder."""

    def __init__(self, folder: TransferFolder, config: ArchiveSimConfig, store: Path) -> None:
        """Args:
        folder: the transfer directory shared with the agency (not closed here).
        config: the archive's behaviour.
        store: where downloads are staged and archived documents are kept (created).
        """
        self.folder = folder
        self.config = config
        self.store = store
        self.processes: dict[str, ArchiveProcess] = {}
        self.rejected: list[Rejection] = []
        self._fail = {uuid_key(u) for u in config.fail_objects}
        self._bewertungen = {uuid_key(u): code for u, code in config.bewertungen.items()}
        self._changed = asyncio.Condition()
        self._stable = StableFiles(config.settle_seconds)
        (store / "documents").mkdir(parents=True, exist_ok=True)
        (store / "incoming").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Poll ``to_archive`` and process each stable file, until cancelled."""
        log.info("archive_sim_started", to_archive=self.config.to_archive)
        async for entry in poll_ready(
            self.folder,
            self.config.to_archive,
            interval=self.config.poll_interval_seconds,
            settle_seconds=self.config.settle_seconds,
            stable=self._stable,
        ):
            try:
                await self.process(entry.name)
            except DeliveryError as exc:
                # The folder was unreachable mid-way: offer the file again later.
                log.warning("archive_sim_retry", file=entry.name, error=str(exc))
                self._stable.forget(entry.name)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ArchiveSimulator]:
        """Run the polling loop in a task while the block runs."""
        task = asyncio.create_task(self.run(), name="archive-sim")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_for(self, condition: Callable[[ArchiveSimulator], bool], timeout: float) -> None:
        """Wait until ``condition(self)`` holds after some file was processed.

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: condition(self))

    def document_path(self, sha256: str) -> Path:
        """Where the archive keeps the document with that SHA-256."""
        return self.store / "documents" / sha256

    # ------------------------------------------------------------------ one file

    async def process(self, name: str) -> None:
        """Read one file from ``to_archive`` and answer it as the archive would.

        Raises:
            DeliveryError: the folder could not be read or written (try again later).
        """
        parsed = naming.parse_name(name)
        if parsed is None or parsed.code not in _READS:
            await self._reject(
                name, "not an xdomea 0501, 0503 or 0505 file name this archive reads"
            )
            return
        staged = self.store / "incoming" / f"{name}.{os.urandom(4).hex()}"
        try:
            try:
                await self.folder.download(self.config.to_archive, name, staged)
            except FileNotFoundError:
                return
            checked = await asyncio.to_thread(check_file, staged)
            problem = _problem(checked, parsed.code)
            if problem is not None:
                await self._reject(name, problem)
                return
            assert checked.checked is not None
            await self._answer(name, checked, staged)
        finally:
            staged.unlink(missing_ok=True)
        if self.config.remove_processed:
            await self.folder.remove(self.config.to_archive, name)
        async with self._changed:
            self._changed.notify_all()

    async def _answer(self, name: str, checked: FileCheck, staged: Path) -> None:
        assert checked.checked is not None
        message = checked.checked
        nachricht = message.read()
        code = nachricht.typ.code
        process = self.processes.setdefault(
            nachricht.kopf.prozess_id,
            ArchiveProcess(prozess_id=nachricht.kopf.prozess_id, version=nachricht.version),
        )
        process.received.append(code)
        log.info("archive_sim_received", file=name, code=code, prozess_id=process.prozess_id)
        stamp = nachricht.kopf.erstellungszeitpunkt or datetime.now(UTC).replace(microsecond=0)
        system = SendendesSystem(produktname=self.config.produktname)
        if code == "0501":
            if "0504" in requested_receipts(message):
                await self._send(
                    process,
                    message,
                    "0504",
                    build_receipt(
                        message,
                        "0504",
                        erstellungszeitpunkt=stamp + timedelta(seconds=1),
                        sendendes_system=system,
                    ),
                )
            xml = self._bewertungsverzeichnis(message, nachricht, process, stamp, system)
            await self._send(process, message, "0502", xml)
        elif code == "0503":
            results = await asyncio.to_thread(self._archive, message, nachricht, process, staged)
            receipts = requested_receipts(message)
            if "0507" in receipts:
                await self._send(
                    process,
                    message,
                    "0507",
                    build_receipt(
                        message,
                        "0507",
                        erstellungszeitpunkt=stamp + timedelta(seconds=1),
                        sendendes_system=system,
                    ),
                )
            await self._send(
                process,
                message,
                "0506",
                build_receipt(
                    message,
                    "0506",
                    results=results,
                    erstellungszeitpunkt=stamp + timedelta(seconds=2),
                    sendendes_system=system,
                ),
            )

    def _bewertungsverzeichnis(
        self,
        message: CheckedMessage,
        nachricht: Nachricht,
        process: ArchiveProcess,
        stamp: datetime,
        system: SendendesSystem,
    ) -> bytes:
        """The 0502 for an offer: every top-level object, plus nested ones named in the policy."""
        bewertungen: dict[str, str] = {}
        for objekt in nachricht.schriftgutobjekte:
            bewertungen[objekt.uuid] = self._bewertungen.get(objekt.uuid_key, self.config.bewertung)
        for objekt in nachricht.walk():
            if objekt.uuid_key in self._bewertungen:
                bewertungen[objekt.uuid] = self._bewertungen[objekt.uuid_key]
        process.bewertungen = {uuid_key(u): c for u, c in bewertungen.items()}
        d = builders.dialect(nachricht.version)
        kopf = message.detected.root.find(d.q("Kopf"))
        assert kopf is not None  # a schema-valid 0501 has one
        root = builders.new_message(d, builders.MESSAGE_ELEMENTS["0502"])
        builders.write_kopf(
            root,
            d,
            "0502",
            builders.Kopfdaten(
                prozess_id=nachricht.kopf.prozess_id,
                erstellungszeitpunkt=stamp + timedelta(seconds=2),
                # The parties swapped, copied verbatim as the agency wrote them.
                absender=_required(kopf, d, "Empfaenger"),
                empfaenger=_required(kopf, d, "Absender"),
                sendendes_system=system,
            ),
            [("Empfangsbestaetigung", True)],
        )
        builders.write_bewertungen(root, d, bewertungen)
        if self.config.malformed_0502 == "schema":
            # A BewertetesObjekt without its ID: every version's XSD requires one.
            first = root.find(d.q("BewertetesObjekt"))
            assert first is not None
            ident = first.find(d.q("ID"))
            assert ident is not None
            first.remove(ident)
        xml = builders.to_bytes(root)
        if self.config.malformed_0502 == "xml":
            return xml[: len(xml) // 2]
        return xml

    def _archive(
        self, message: CheckedMessage, nachricht: Nachricht, process: ArchiveProcess, staged: Path
    ) -> dict[str, ObjectResult]:
        """Keep the documents of every object that may be archived; each object's result."""
        d = builders.dialect(nachricht.version)
        kopf = message.detected.root.find(d.q("Kopf"))
        flag = kopf.findtext(d.q("RueckmeldungArchivkennung")) if kopf is not None else None
        kennung_wanted = (flag or "").strip() in ("1", "true")
        refused: dict[str, str] = {}
        if process.bewertungen:
            # As x-man does: only what this archive's 0502 valued A may come.
            tops = {objekt.uuid_key for objekt in nachricht.schriftgutobjekte}
            for objekt in nachricht.walk():
                if objekt.uuid_key in refused:
                    continue
                valued = process.bewertungen.get(objekt.uuid_key)
                if valued == "A" or (valued is None and objekt.uuid_key not in tops):
                    continue
                reason = (
                    f"{objekt.uuid} wurde nicht als archivwürdig (A) bewertet, sondern "
                    f"{valued or 'gar nicht'}"
                )
                for child in objekt.walk():
                    refused[child.uuid_key] = reason
        results: dict[str, ObjectResult] = {}
        documents = self._keep_documents(staged, nachricht, refused)
        count = 0
        for objekt in nachricht.walk():
            if objekt.uuid_key in refused:
                results[objekt.uuid] = ObjectResult.failed(refused[objekt.uuid_key])
            elif objekt.uuid_key in self._fail:
                results[objekt.uuid] = ObjectResult.failed(
                    "Übernahme in das Archiv fehlgeschlagen (simulierter Fehler)"
                )
            else:
                count += 1
                kennung = f"{self.config.archivkennung_prefix}-{process.prozess_id[:8]}-{count}"
                results[objekt.uuid] = ObjectResult.ok(kennung if kennung_wanted else None)
                process.archived.extend(documents.get(objekt.uuid_key, ()))
        process.results = dict(results)
        return results

    def _keep_documents(
        self, staged: Path, nachricht: Nachricht, refused: Mapping[str, str]
    ) -> dict[str, list[ArchivedDocument]]:
        """Copy each primary document of an accepted object into the store, by SHA-256."""
        kept: dict[str, list[ArchivedDocument]] = {}
        if not zipfile.is_zipfile(staged):
            return kept
        with Container(staged) as container:
            for objekt in nachricht.walk():
                if objekt.uuid_key in refused:
                    continue
                for dateiname in objekt.dateinamen():
                    with container.open_document(dateiname) as source:
                        sha256, size = self._store_document(source)
                    kept.setdefault(objekt.uuid_key, []).append(
                        ArchivedDocument(
                            objekt=objekt.uuid, dateiname=dateiname, sha256=sha256, size=size
                        )
                    )
        return kept

    def _store_document(self, source: IO[bytes]) -> tuple[str, int]:
        documents = self.store / "documents"
        fd, temp_name = tempfile.mkstemp(prefix=".doc-", dir=documents)
        temp = Path(temp_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(temp, documents / digest.hexdigest())
            fsync_dir(documents)
        finally:
            temp.unlink(missing_ok=True)
        return digest.hexdigest(), size

    async def _send(
        self, process: ArchiveProcess, answered: CheckedMessage, code: str, xml: bytes
    ) -> None:
        """Wrap ``xml`` into a container named in the archive's style and upload it."""
        element = _answer_element(code)
        typ = MessageType(element=element, code=code)
        file_name = naming.container_name(process.prozess_id, typ, self.config.naming)
        entry_name = naming.message_name(process.prozess_id, typ, self.config.naming)
        path = self.store / "incoming" / f".out-{os.urandom(4).hex()}.zip"
        try:
            sha256 = await asyncio.to_thread(_write_zip, path, entry_name, xml)
            await self.folder.upload(self.config.from_archive, file_name, path, sha256)
        finally:
            path.unlink(missing_ok=True)
        process.sent.append((code, file_name))
        log.info("archive_sim_answered", code=code, file=file_name, prozess_id=process.prozess_id)

    async def _reject(self, name: str, reason: str) -> None:
        self.rejected.append(Rejection(name=name, reason=reason))
        log.warning("archive_sim_rejected", file=name, reason=reason)
        if self.config.remove_processed:
            await self.folder.remove(self.config.to_archive, name)
        async with self._changed:
            self._changed.notify_all()


def _problem(checked: FileCheck, code: str) -> str | None:
    """Why the archive cannot take the file, or ``None``."""
    if checked.verdict is Verdict.UNUSABLE:
        return f"unusable: {checked.error}"
    assert checked.checked is not None
    # An Anbieteverzeichnis lists documents it does not carry; only a 0503 must hold them.
    findings = checked.findings if code == "0503" else list(checked.checked.findings)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        return f"invalid: line {errors[0].line}: {errors[0].message}"
    if checked.checked.detected.typ.code != code:
        return f"the file name says {code}, the message is a {checked.checked.detected.typ.code}"
    return None


def _required(kopf: etree._Element, d: builders.Dialect, local: str) -> etree._Element:
    element = kopf.find(d.q(local))
    if element is None:
        raise GatewayError(f"the message's Kopf has no {local}")
    return element


def _answer_element(code: str) -> str:
    from adapters.xdomea.receipts import RECEIPTS

    if code in RECEIPTS:
        return RECEIPTS[code].element
    return builders.MESSAGE_ELEMENTS[code]


def _write_zip(path: Path, entry_name: str, xml: bytes) -> str:
    """A container holding only the message; the same bytes for the same message."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(entry_name, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        archive.writestr(info, xml)
    data = buffer.getvalue()
    with create_exclusive(path) as sink:
        sink.write(data)
        os.fsync(sink.fileno())
    return hashlib.sha256(data).hexdigest()


__all__ = [
    "ArchiveProcess",
    "ArchiveSimConfig",
    "ArchiveSimulator",
    "ArchivedDocument",
    "Rejection",
]
