"""Shared pieces of the Aussonderung tests: a gateway with an archive, the DMS, the archive.

The gateway is the real ``build_app`` served on 127.0.0.1 (workers, archive inbox
and all); its DMS is the dmsin simulator, seeded by importing Akten through the
real ``dms`` destination. The archive is ``adapters.archive.sim`` (x-man on the
file level) on a local folder or a WebDAV share (``gateway.dev_webdav``).
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from adapters.archive.sim import ArchiveSimConfig, ArchiveSimulator
from adapters.transfer.folders import open_folder
from contracts.builders import AkteSpec, DokumentSpec, VersionSpec, VorgangSpec
from contracts.config import GatewayConfig
from contracts.processes import ProcessStatus
from contracts.transfer import LocalFolderConfig, WebDavFolderConfig
from gateway import processes
from gateway.app import INTAKE, JOURNAL, build_app, local_sender
from gateway.aussonderung import Started, start
from gateway.blobs import BlobStore
from gateway.dev_webdav import WebDavServer
from gateway.journal.store import utcnow
from tests.delivery_support import eventually, outbound
from tests.dms_support import Sim, container, datei, dmsin_config, dmsin_destination, sha256
from tests.transfer_support import webdav_config

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
    folder: Path,
    sim: Sim,
    share: Archive,
    *,
    stages: int = 4,
    version: str = "3.0.0",
    **archive: Any,
) -> GatewayConfig:
    """A node with [dms] = the simulator and one archive on ``share``'s transfer folder."""
    settings: dict[str, Any] = {
        "behoerdenkennung": ARCHIVE,
        "name": "Landesarchiv Thüringen",
        "xdomea_version": version,
        "stages": stages,
        "folder": share.folder_config.model_dump(mode="json"),
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

    async def start(
        self, adressen: Sequence[str], *, archive_name: str = ARCHIVE_NAME, port: Any = None
    ) -> Started:
        """``aussonderung start`` through the running gateway's intake (DMS: ``[dms]``)."""
        from adapters.dms.destination import build_port

        assert self.config.dms is not None
        port = port or build_port(self.config.dms)
        try:
            return await start(
                self.config,
                akten=adressen,
                archive_name=archive_name,
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
        blobs = BlobStore(self.config.storage.blobs, inline=journal.inline_content)
        try:
            await processes.readable(blobs, views)
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

    async def journaled(self) -> int:
        """How many messages the journal holds."""
        return len(await self.server.app[JOURNAL].list_messages())

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
class Archive:
    """The archive's side: the shared transfer folder and, when answering, the x-man simulator."""

    folder_config: LocalFolderConfig | WebDavFolderConfig
    #: Where the share's files lie on this machine (the WebDAV server's disk for WebDAV).
    root: Path
    simulator: ArchiveSimulator | None = None

    def received(self, prozess_id: str) -> list[str]:
        """The codes the simulator took for the process, in order."""
        assert self.simulator is not None
        process = self.simulator.processes.get(prozess_id)
        return list(process.received) if process is not None else []

    def archived_documents(self, prozess_id: str) -> dict[str, str]:
        """SHA-256 (recomputed from the archive's copy) per primary document file name."""
        assert self.simulator is not None
        return {
            doc.dateiname: sha256(self.simulator.document_path(doc.sha256).read_bytes())
            for doc in self.simulator.processes[prozess_id].archived
        }

    def write_answer(self, prozess_id: str, element: str, xml: bytes) -> Path:
        """Publish an answer by hand as ``<ProzessID>_<element>.zip`` (temp name, then rename)."""
        name = f"{prozess_id}_{element}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"{name}.xml", xml)
        temp = self.root / "from_archive" / f".{uuid.uuid4().hex}.part"
        temp.write_bytes(buffer.getvalue())
        target = self.root / "from_archive" / f"{name}.zip"
        temp.rename(target)
        return target


@asynccontextmanager
async def archive(
    kind: str,
    tmp_path: Path,
    server: WebDavServer | None,
    *,
    answering: bool = True,
    **behaviour: Any,
) -> AsyncIterator[Archive]:
    """A transfer share of ``kind`` and, if ``answering``, the archive simulator on it."""
    if kind == "local":
        root = tmp_path / "transfer"
        config: LocalFolderConfig | WebDavFolderConfig = LocalFolderConfig(type="local", path=root)
    else:
        assert server is not None
        collection = f"aussonderung-{uuid.uuid4().hex[:8]}"
        root = server.root / collection
        config = webdav_config(server, collection)
    (root / "to_archive").mkdir(parents=True)
    (root / "from_archive").mkdir(parents=True)
    shared = Archive(folder_config=config, root=root)
    if not answering:
        yield shared
        return
    folder = open_folder(config)
    simulator = ArchiveSimulator(
        folder,
        ArchiveSimConfig(settle_seconds=0.0, poll_interval_seconds=0.05, **behaviour),
        tmp_path / "archive-store",
    )
    shared.simulator = simulator
    try:
        async with simulator.running():
            yield shared
    finally:
        await folder.close()
