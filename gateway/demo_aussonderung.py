"""``ikz-gateway demo --scenario aussonderung``: a Kommune hands closed Akten to an archive.

Everything runs on loopback in this process: the Kommune's DMS (the dmsin
simulator, seeded with two Akten by importing them through a ``dms`` destination),
the archive's transfer share (a WebDAV server, ``gateway.dev_webdav``, below
``/dav/archiv``), the archive itself (``adapters.archive.sim``, x-man on the file
level) and the Kommune's gateway (``build_app`` with its ``gateway.toml`` in the
work folder, an ``archive`` destination and an ``aussonderung`` destination).

Four stages: the gateway offers both Akten (0501), the archive values the first A
and the second V (0502), the gateway confirms (0505) and hands over the first with
its documents (0503), the archive confirms (0507, 0506), and the gateway marks the
archived Akte in the DMS (Fachdatum ``archiv`` = the Archivkennung) and sets the
disposal date of the other. Two stages: both Akten go at once (0503). The run
passes only when the 0506 confirms every archived object, every document the
archive holds is bit-identical to the DMS's, and the process is ``completed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from aiohttp import web

from adapters.archive.sim import ArchiveSimConfig, ArchiveSimulator
from adapters.dms.destination import build_port
from adapters.transfer.folders import open_folder
from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from contracts.builders import AkteSpec
from contracts.config import GatewayConfig
from contracts.processes import ProcessState, ProcessStatus
from gateway import demo_data, demo_dms, processes
from gateway.app import INTAKE, JOURNAL, build_app, local_sender
from gateway.aussonderung import start
from gateway.blobs import BlobStore
from gateway.config import load_config
from gateway.demo import Journey
from gateway.dev_webdav import webdav_server

Echo = Callable[[str], None]

NODE = "060:0815"
ARCHIVE = "LA:LATh"
PASSWORD_ENV = "IKZ_DEMO_WEBDAV_PASSWORD"
_DONE = (
    ProcessState.COMPLETED,
    ProcessState.PARTIALLY_ARCHIVED,
    ProcessState.ENDED_WITHOUT_ARCHIVING,
    ProcessState.VALUATION_REFUSED,
    ProcessState.UNDELIVERABLE,
)


def run_aussonderung_demo(
    workdir: Path,
    *,
    stages: int = 4,
    version: str = "3.0.0",
    echo: Echo = print,
    dms_wsdl: Path | None = None,
    timeout: float = 120.0,
) -> bool:
    """Run the Aussonderung scenario in ``workdir``; whether every check passed.

    Raises:
        ConfigError: the dmsin WSDL for the DMS simulator cannot be found.
    """
    wsdl = demo_dms.find_wsdl(dms_wsdl)
    return asyncio.run(_run(workdir, stages, version, echo, wsdl, timeout))


async def _run(
    workdir: Path, stages: int, version: str, echo: Echo, wsdl: Path, timeout: float
) -> bool:
    journey = Journey(echo)
    share = workdir / "archive-share"
    for sub in ("to_archive", "from_archive"):
        (share / sub).mkdir(parents=True, exist_ok=True)
    async with demo_dms.running_simulator(wsdl, workdir / "dms") as sim:
        journey.step(f"1. The Kommune's DMS (dmsin simulator at {sim.url}) holds two closed Akten")
        akten = [
            demo_data.bauakte()[0],
            demo_data.bauakte()[0].model_copy(
                update={"betreff": "Bauantrag Birkenweg 5, zurückgenommen"}
            ),
        ]
        seeded, documents = await _seed(sim, akten, workdir)
        for akte in akten:
            journey.info(f"Akte {akte.uuid} ({akte.betreff}) at {seeded[akte.uuid]}")
        with webdav_server(share) as dav:
            os.environ[PASSWORD_ENV] = dav.password
            journey.step(f"2. The archive's transfer share: WebDAV {dav.url}")
            config = _config(workdir / "kommune", sim, dav.url, stages, version)
            folder = open_folder(config.archives["archiv"].folder)
            bewertungen: dict[str, Literal["A", "B", "V"]] = {
                akten[0].uuid: "A",
                akten[1].uuid: "V",
            }
            archive = ArchiveSimulator(
                folder,
                ArchiveSimConfig(
                    bewertungen=bewertungen, settle_seconds=0.2, poll_interval_seconds=0.1
                ),
                workdir / "archive-store",
            )
            try:
                async with archive.running():
                    status = await _gateway_run(journey, config, seeded, akten, timeout)
            finally:
                await folder.close()
        _check(journey, status, archive, documents, stages, akten)
    echo("")
    echo("PASSED" if journey.passed else f"FAILED: {', '.join(journey.failures)}")
    return journey.passed


async def _seed(
    sim: demo_dms.RunningSim, akten: list[AkteSpec], workdir: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Import ``akten`` into the simulator; their addresses and every document's SHA-256."""
    documents: dict[str, bytes] = {}
    for akte in akten:
        for vorgang in akte.vorgaenge:
            for dokument in vorgang.dokumente:
                name = dokument.versionen[0].formate[0].dateiname
                documents[name] = demo_data.simple_pdf(f"{akte.betreff} / {dokument.betreff}")
    xml = builders.build_abgabe_0401(
        "3.1.0", akten, absender=demo_data.KOMMUNE_A, empfaenger=demo_data.KOMMUNE_A
    )
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        path, _ = write_container(Path(folder), xml, documents)
        async with demo_dms.seeded(sim, path, userlogin="svc-ikz-demo") as (ergebnis, _):
            adressen = {akte.uuid: ergebnis.adressen[akte.uuid] for akte in akten}
    return adressen, {n: hashlib.sha256(d).hexdigest() for n, d in documents.items()}


def _config(
    folder: Path, sim: demo_dms.RunningSim, dav_url: str, stages: int, version: str
) -> GatewayConfig:
    """The Kommune's gateway.toml, written for inspection, then loaded like ``serve`` does."""
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""\
[node]
id = "kommune-a"
behoerdenkennung = "{NODE}"

[storage]
journal = "sqlite:///journal.db"
blobs = "blobs"

[http]
port = 0

[worker]
poll_interval_seconds = 0.1

[dms]
backend = "dmsin"

[dms.dmsin]
wsdl = "{sim.wsdl_url}"
userlogin = "svc-ikz-demo"

[archives.archiv]
behoerdenkennung = "{ARCHIVE}"
name = "Landesarchiv (x-man simulator)"
xdomea_version = "{version}"
stages = {stages}
poll_interval_seconds = 0.2
settle_seconds = 0.2
archived = {{ action = "fachdatum", field = "archiv", value = "{{archivkennung}}" }}
vernichten = {{ action = "disposal-date", delay_days = 365 }}

[archives.archiv.folder]
type = "webdav"
url = "{dav_url}"
username = "gateway"
password_env = "{PASSWORD_ENV}"

[destinations.archiv]
type = "archive"
archive = "archiv"
initial_backoff_seconds = 0.2

[destinations.aussonderung]
type = "aussonderung"
initial_backoff_seconds = 0.2

[[routes]]
empfaenger = "{ARCHIVE}"
destination = "archiv"

[[routes]]
empfaenger = "{NODE}"
nachrichtentyp = ["0502", "0504", "0506", "0507"]
destination = "aussonderung"
"""
    path = folder / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


async def _gateway_run(
    journey: Journey,
    config: GatewayConfig,
    seeded: dict[str, str],
    akten: list[AkteSpec],
    timeout: float,
) -> ProcessStatus | None:
    """Start the gateway, start the Aussonderung, wait until the process ends; its status."""
    app = await build_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        assert config.dms is not None
        port = build_port(config.dms)
        try:
            started = await start(
                config,
                akten=[seeded[a.uuid] for a in akten],
                archive_name="archiv",
                port=port,
                journal=app[JOURNAL],
                intake=app[INTAKE],
                node=local_sender(config),
            )
        finally:
            await port.close()
        journey.step(
            f"3. aussonderung start: process {started.prozess_id} ({started.nachrichtentyp})"
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen: ProcessState | None = None
        while True:
            status = await _status(app, config, started.prozess_id)
            if status.state is not seen:
                journey.info(f"process is {status.state.value}")
                seen = status.state
            if status.state in _DONE or loop.time() > deadline:
                return status
            await asyncio.sleep(0.2)
    finally:
        await runner.cleanup()


async def _status(app: web.Application, config: GatewayConfig, prozess_id: str) -> ProcessStatus:
    journal = app[JOURNAL]
    views = await journal.process(prozess_id)
    blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
    try:
        return await processes.status(config, journal, blobs, prozess_id, views)
    finally:
        blobs.close()


def _check(
    journey: Journey,
    status: ProcessStatus | None,
    archive: ArchiveSimulator,
    documents: dict[str, str],
    stages: int,
    akten: list[AkteSpec],
) -> None:
    journey.step("4. Checks")
    if status is None or status.aussonderung is None:
        journey.check(False, "the process ran")
        return
    journey.check(status.state is ProcessState.COMPLETED, "process completed", status.state.value)
    details = status.aussonderung
    for entry in status.timeline:
        journey.info(
            f"{entry.nachrichtentyp} {entry.message_element}  {entry.absender} -> "
            f"{entry.empfaenger}  sha256 {entry.sha256[:16]}…"
        )
    ergebnisse = details.ergebnisse
    journey.check(
        bool(ergebnisse) and all(e.erfolgreich for e in ergebnisse),
        "the 0506 confirms every archived object",
        f"{sum(e.erfolgreich for e in ergebnisse)}/{len(ergebnisse)}",
    )
    process = archive.processes.get(status.prozess_id)
    held = {d.dateiname: d.sha256 for d in process.archived} if process is not None else {}
    identical = all(
        hashlib.sha256(archive.document_path(sha).read_bytes()).hexdigest() == documents.get(name)
        for name, sha in held.items()
    )
    handed = akten if stages == 2 else akten[:1]
    expected = {
        d.versionen[0].formate[0].dateiname
        for a in handed
        for v in a.vorgaenge
        for d in v.dokumente
    }
    journey.check(
        identical and set(held) == expected,
        "the archive holds exactly the documents handed over, bit-identical to the DMS",
        f"{len(held)} document(s)",
    )
    for action in details.aktionen:
        journey.info(
            f"DMS {action.adresse}: {action.ergebnis}, {action.action}"
            + (f" ({action.detail})" if action.detail else "")
        )
    journey.check(
        len(details.aktionen) == len(akten), "a DMS action (or none by config) per offered Akte"
    )
