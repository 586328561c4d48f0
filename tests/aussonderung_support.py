"""Shared pieces of the Aussonderung tests: a gateway with an archive, the DMS, the archive's part.

The gateway is the real ``build_app`` served on 127.0.0.1 (workers, archive inbox
and all); its DMS is the dmsin simulator, seeded by importing Akten through the
real ``dms`` destination. ``ArchivePart`` plays the archive on the file level
like x-man does: it reads the 0501/0503 ZIPs from the agency→archive folder
(taking them away) and writes its answers, built with the project's builders,
into the archive→agency folder under x-man's names.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from adapters.xdomea import builders
from adapters.xdomea.receipts import build_receipt
from adapters.xdomea.validation import check_message
from contracts.builders import AkteSpec, DokumentSpec, ObjectResult, VersionSpec, VorgangSpec
from contracts.config import GatewayConfig
from contracts.processes import ProcessStatus
from contracts.xdomea import Nachricht
from gateway import processes
from gateway.app import INTAKE, JOURNAL, build_app, local_sender
from gateway.aussonderung import Started, kontakt, start
from gateway.blobs import BlobStore
from gateway.journal.store import utcnow
from tests.delivery_support import eventually, outbound
from tests.dms_support import Sim, container, datei, dmsin_config, dmsin_destination, sha256

NODE = "060:0815"
ARCHIVE = "LA:LATh"
ARCHIVE_NAME = "landesarchiv"


def akte(betreff: str, *, dokumente: int = 2) -> AkteSpec:
    """An Akte > Vorgang > ``dokumente`` Dokumente, each with one PDF."""
    return AkteSpec(
        betreff=betreff,
        kennzeichen="63.01.02/2020",
        vorgaenge=(
            VorgangSpec(
                betreff=f"{betreff}: Vorgang",
                dokumente=tuple(
                    DokumentSpec(
                        betreff=f"{betreff}: Dokument {n}",
                        versionen=(VersionSpec(formate=(datei(f"dok{n}.pdf"),)),),
                    )
                    for n in range(dokumente)
                ),
            ),
        ),
    )


@dataclass(frozen=True)
class Seeded:
    """Akten filed into the DMS: address per Akte UUID, SHA-256 per document file name."""

    adressen: dict[str, str]
    documents: dict[str, str]


async def seed_dms(sim: Sim, folder: Path, pdf: bytes, akten: Sequence[AkteSpec]) -> Seeded:
    """File ``akten`` into the simulator through the real dms destination (an imported 0401)."""
    behaelter = container(folder, akten, pdf, version="3.1.0")
    destination = dmsin_destination(sim)
    blobs = BlobStore(folder / "seed-blobs")
    try:
        item = await outbound(blobs, behaelter.data, prozess_id=behaelter.prozess_id)
        ergebnis = await destination.import_message(item)
    finally:
        await destination.close()
        blobs.close()
    adressen = {a.uuid: ergebnis.adressen[a.uuid] for a in akten}
    return Seeded(adressen=adressen, documents=behaelter.documents)


def gateway_config(
    folder: Path, sim: Sim, *, stages: int = 4, version: str = "3.0.0", **archive: Any
) -> GatewayConfig:
    """A node with [dms] = the simulator and one archive on a local transfer folder."""
    transfer = folder / "transfer"
    (transfer / "to_archive").mkdir(parents=True, exist_ok=True)
    (transfer / "from_archive").mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "behoerdenkennung": ARCHIVE,
        "name": "Landesarchiv Thüringen",
        "xdomea_version": version,
        "stages": stages,
        "folder": {"type": "local", "path": str(transfer)},
        "poll_interval_seconds": 0.05,
        "settle_seconds": 0.0,
        "archived": {"action": "fachdatum", "field": "archiv", "value": "{archivkennung}"},
        "vernichten": {"action": "disposal-date", "delay_days": 30},
    }
    settings.update(archive)
    retry = {"initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.2, "max_attempts": 3}
    return GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-a", "behoerdenkennung": NODE},
            "storage": {
                "journal": f"sqlite:///{folder / 'journal.db'}",
                "blobs": str(folder / "blobs"),
            },
            "http": {"port": 0},
            "worker": {"poll_interval_seconds": 0.05},
            "dms": {"backend": "dmsin", "dmsin": dmsin_config(sim).model_dump()},
            "archives": {ARCHIVE_NAME: settings},
            "destinations": {
                "archiv": {"type": "archive", "archive": ARCHIVE_NAME, **retry},
                "aussonderung": {"type": "aussonderung", **retry},
            },
            "routes": [
                {"empfaenger": ARCHIVE, "destination": "archiv"},
                {
                    "empfaenger": NODE,
                    "destination": "aussonderung",
                    "nachrichtentyp": ["0502", "0504", "0506", "0507"],
                },
            ],
        }
    )


@dataclass
class Gateway:
    """A running gateway process (in this event loop) and its configuration."""

    config: GatewayConfig
    server: TestServer

    async def start(self, adressen: Sequence[str]) -> Started:
        """``aussonderung start`` through the running gateway's intake."""
        from adapters.dms.destination import build_port

        assert self.config.dms is not None
        port = build_port(self.config.dms.as_destination())
        try:
            return await start(
                self.config,
                akten=adressen,
                archive_name=ARCHIVE_NAME,
                port=port,
                journal=self.server.app[JOURNAL],
                intake=self.server.app[INTAKE],
                node=local_sender(self.config),
            )
        finally:
            await port.close()

    async def status(self, prozess_id: str) -> ProcessStatus:
        """What ``process show`` derives."""
        journal = self.server.app[JOURNAL]
        views = await journal.process(prozess_id)
        records = await journal.aussonderung_records(prozess_id)
        blobs = BlobStore(self.config.storage.blobs)
        try:
            return processes.derive(
                prozess_id,
                views,
                own_kennung=NODE,
                blobs=blobs,
                timeout=timedelta(days=1),
                now=utcnow(),
                records=records,
                archives=self.config.archives,
            )
        finally:
            blobs.close()

    async def reaches(self, prozess_id: str, state: str, timeout: float = 30.0) -> ProcessStatus:
        """Wait until the process is in ``state``; its status then."""

        async def there() -> bool:
            return (await self.status(prozess_id)).state.value == state

        await eventually(there, what=f"process {prozess_id} is {state}", timeout=timeout)
        return await self.status(prozess_id)


@asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[Gateway]:
    """``build_app(config)`` served on 127.0.0.1 with workers and the archive inbox."""
    app = await build_app(config)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Gateway(config=config, server=server)
    finally:
        await server.close()


# --------------------------------------------------------------------------- the archive


@dataclass
class Received:
    """One ZIP the archive took from its folder."""

    name: str
    nachricht: Nachricht
    xml: bytes
    documents: dict[str, bytes]


@dataclass
class ArchivePart:
    """The archive on the file level, answering as x-man would (answers built with builders).

    ``bewerte`` gives the Aussonderungsart per offered top-level UUID; ``ergebnisse``
    the 0506 outcome per UUID (default: every object archived with a signature).
    """

    transfer: Path
    bewerte: Callable[[str], str] = lambda _uuid: "A"
    ergebnisse: Mapping[str, ObjectResult] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    answer: bool = True

    @property
    def inbox(self) -> Path:
        """Where the gateway puts its messages."""
        return self.transfer / "to_archive"

    @property
    def outbox(self) -> Path:
        """Where the archive puts its answers."""
        return self.transfer / "from_archive"

    async def run(self, stop: asyncio.Event) -> None:
        """Take and answer every message until ``stop`` is set."""
        while not stop.is_set():
            await asyncio.to_thread(self.step)
            await asyncio.sleep(0.05)

    def step(self) -> None:
        """Read every complete ZIP in the inbox (taking it away) and answer it."""
        for path in sorted(self.inbox.iterdir()):
            if path.name.startswith(".") or not path.name.endswith(".zip"):
                continue
            received = _read_zip(path)
            path.unlink()
            self.received.append(received)
            if self.answer:
                self._answer(received)

    def codes(self) -> list[str]:
        """Nachrichtentyp codes of what the archive received, in order."""
        return [r.nachricht.typ.code for r in self.received]

    def _answer(self, received: Received) -> None:
        checked = check_message(received.xml)
        nachricht = received.nachricht
        pid = nachricht.kopf.prozess_id
        version = nachricht.version
        if nachricht.typ.code == "0501":
            self.write(
                pid, "Aussonderung.AnbietungEmpfangBestaetigen.0504", _receipt(checked, "0504")
            )
            bewertungen = {o.uuid: self.bewerte(o.uuid) for o in nachricht.schriftgutobjekte}
            self.write(
                pid,
                "Aussonderung.Bewertungsverzeichnis.0502",
                builders.build_bewertungsverzeichnis_0502(
                    version,
                    bewertungen,
                    absender=kontakt(ARCHIVE),
                    empfaenger=kontakt(NODE),
                    prozess_id=pid,
                ),
            )
        elif nachricht.typ.code == "0503":
            if builders.dialect(version).major >= 3:
                self.write(
                    pid,
                    "Aussonderung.AussonderungEmpfangBestaetigen.0507",
                    _receipt(checked, "0507"),
                )
            results = {
                sgo.uuid: self.ergebnisse.get(sgo.uuid, ObjectResult.ok(f"ARCH-{sgo.uuid[:8]}"))
                for sgo in nachricht.walk()
            }
            self.write(
                pid,
                "Aussonderung.AussonderungImportBestaetigen.0506",
                build_receipt(checked, "0506", results=results),
            )

    def write(self, prozess_id: str, element: str, xml: bytes) -> Path:
        """Publish an answer as ``<ProzessID>_<element>.zip`` (temp name, then rename)."""
        name = f"{prozess_id}_{element}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"{name}.xml", xml)
        temp = self.outbox / f".{uuid.uuid4().hex}.part"
        temp.write_bytes(buffer.getvalue())
        target = self.outbox / f"{name}.zip"
        temp.rename(target)
        return target


def _receipt(checked: Any, code: str) -> bytes:
    return build_receipt(checked, code)


def _read_zip(path: Path) -> Received:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        xml_name = next(n for n in names if n.endswith(".xml") and "/" not in n and "_" in n)
        xml = archive.read(xml_name)
        nachricht = check_message(xml).read()
        wanted = set(nachricht.dateinamen())
        documents = {n: archive.read(n) for n in names if n in wanted}
    return Received(name=path.name, nachricht=nachricht, xml=xml, documents=documents)


@asynccontextmanager
async def archive_running(part: ArchivePart) -> AsyncIterator[ArchivePart]:
    """``part`` answering in the background."""
    stop = asyncio.Event()
    task = asyncio.create_task(part.run(stop))
    try:
        yield part
    finally:
        stop.set()
        await task


def digests(documents: Mapping[str, bytes]) -> dict[str, str]:
    """SHA-256 per file name."""
    return {name: sha256(data) for name, data in documents.items()}
