"""Kommune B's DMS in ``ikz-gateway demo --dms sim``: the dmsin simulator and the checks.

With ``--dms sim`` the demo starts the dmsin simulator (``adapters.dms.sim``) in
its own event loop on 127.0.0.1, with its store in B's folder, and gives B's
gateway a ``type = "dms"`` destination with ``backend = "dmsin"`` that loads the
WSDL from the simulator's ``?wsdl`` URL, as it would from a Fabasoft server. The
simulator itself needs the WSDL file: ``--dms-wsdl PATH``, else ``$IKZ_DMSIN_WSDL``,
else ``../shared/wsdl/dmsin/dmsin-eai-1.10.wsdl`` beside the project (the layout of
a fresh clone next to ``shared``). The project never ships the WSDL.

After B's gateway reports the delivery into its DMS, the demo asks the same
destination to import the message again: an import finds what exists, so this
replay creates nothing (it is checked) and returns the DMS address of every
object. Each top-level object is then exported back into a 0401 container and
every document compared by SHA-256 with the one A sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from adapters.dms.destination import DmsImport
from adapters.dms.exporter import export_0401
from adapters.dms.importer import ImportErgebnis
from adapters.xdomea.container import read_container
from contracts.config import DmsDestination, DmsinConfig
from contracts.delivery import Outbound
from contracts.dms import DmsPort
from contracts.journal import DeliveryState, DeliveryView, MessageView
from contracts.xdomea import Nachricht, Schriftgutobjekt, uuid_key
from gateway.errors import ConfigError, GatewayError

#: How ``--dms`` names Kommune B's DMS.
DMS_KINDS = ("fs", "sim")
#: B's gateway names its DMS destination so.
DESTINATION = "dms"
#: The environment variable that names the dmsin WSDL file for the simulator.
WSDL_ENV = "IKZ_DMSIN_WSDL"
#: Where the WSDL lies relative to the project's parent folder (``../shared``).
SHARED_WSDL = Path("shared") / "wsdl" / "dmsin" / "dmsin-eai-1.10.wsdl"
#: The Aktenplaneintrag the simulator creates; every Akte of the demo is filed under it.
AKTENPLAN = "63 Bauaufsicht"
_HOST = "127.0.0.1"


class Reporter(Protocol):
    """The part of the demo's ``Journey`` this module prints through."""

    def check(self, ok: bool, label: str, detail: str = "") -> bool:
        """Record and print one check."""
        ...

    def info(self, text: str) -> None:
        """Print a line that is not a check."""
        ...


def find_wsdl(given: Path | None) -> Path:
    """The dmsin WSDL file the simulator serves.

    Args:
        given: ``--dms-wsdl``; wins over ``$IKZ_DMSIN_WSDL`` and ``../shared``.

    Raises:
        ConfigError: no readable WSDL file, with how to give one.
    """
    if given is not None:
        candidates = [("--dms-wsdl", given)]
    elif os.environ.get(WSDL_ENV):
        candidates = [(f"${WSDL_ENV}", Path(os.environ[WSDL_ENV]))]
    else:
        # A fresh clone sits next to ``shared``; look beside the project and the cwd.
        project = Path(__file__).resolve().parent.parent
        candidates = [
            ("../shared", project.parent / SHARED_WSDL),
            ("../shared", Path.cwd().parent / SHARED_WSDL),
        ]
    for _, path in candidates:
        if path.is_file():
            return path
    source, path = candidates[0]
    raise ConfigError(
        f"the dmsin WSDL for the DMS simulator is not at {path} ({source}); give the file "
        f"with --dms-wsdl PATH or {WSDL_ENV}=PATH (it is dmsin-eai-1.10.wsdl, the Fabasoft "
        "eGov-Suite interface), or run the demo with --dms fs"
    )


@dataclass(frozen=True)
class RunningSim:
    """The simulator as B's gateway sees it."""

    url: str
    aktenplaneintrag: str

    @property
    def wsdl_url(self) -> str:
        """Where the simulator serves its WSDL."""
        return self.url + "?wsdl"


@asynccontextmanager
async def running_simulator(wsdl: Path, data: Path) -> AsyncIterator[RunningSim]:
    """The dmsin simulator on a free port of 127.0.0.1, its store in ``data``.

    Raises:
        ConfigError: the WSDL cannot be read or is not the dmsin WSDL.
    """
    from adapters.dms.sim.app import SIMULATOR, aktenplaneintrag, create_app

    try:
        app = create_app(wsdl, data, aktenplan=[AKTENPLAN])
    except (ValueError, OSError) as exc:
        raise ConfigError(f"the DMS simulator cannot serve {wsdl}: {exc}") from exc
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, _HOST, 0)
        await site.start()
        port = runner.addresses[0][1]
        eintrag = await asyncio.to_thread(aktenplaneintrag, app[SIMULATOR].store, AKTENPLAN)
        yield RunningSim(url=f"http://{_HOST}:{port}/", aktenplaneintrag=eintrag)
    finally:
        await runner.cleanup()


def destination_toml(sim: RunningSim) -> str:
    """B's ``[destinations.dms]``: dmsin against the simulator, every Akte under its Aktenplan."""
    return f"""
[destinations.{DESTINATION}]
type = "dms"
backend = "dmsin"
aktenplan_default = "{sim.aktenplaneintrag}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 2

[destinations.{DESTINATION}.dmsin]
wsdl = "{sim.wsdl_url}"
userlogin = "svc-ikz-demo"
"""


async def wait_for_delivery(
    process: Callable[[], Awaitable[list[MessageView]]], *, timeout: float = 60
) -> tuple[MessageView, DeliveryView] | None:
    """Wait until the DMS delivery of the process's message is finished (delivered or dead)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for view in await process():
            for delivery in view.deliveries:
                if delivery.destination == DESTINATION and delivery.state in (
                    DeliveryState.DELIVERED,
                    DeliveryState.DEAD,
                ):
                    return view, delivery
        if loop.time() > deadline:
            return None
        await asyncio.sleep(0.1)


def outbound(view: MessageView, blob: Path) -> Outbound:
    """The delivery item the worker gave the DMS destination, rebuilt from the journal."""
    return Outbound(
        message_id=view.id,
        attempt=0,
        blob_path=blob,
        blob_sha256=view.blob_sha256,
        size=view.size,
        content_kind="container" if zipfile.is_zipfile(blob) else "message",
        prozess_id=view.prozess_id,
        nachrichtentyp=view.nachrichtentyp,
        message_element=view.message_element,
        file_name=view.file_name,
    )


@asynccontextmanager
async def seeded(
    sim: RunningSim, container: Path, *, userlogin: str
) -> AsyncIterator[tuple[ImportErgebnis, DmsPort]]:
    """File the 0401 container at ``container`` into ``sim`` as a clerk would have.

    Yields the import's result (the DMS address of every object by UUID) and the
    simulator's port, open until the block ends (e.g. to list what was filed).
    """
    data = await asyncio.to_thread(container.read_bytes)
    destination = DmsImport(
        "seed",
        DmsDestination(
            type="dms",
            backend="dmsin",
            dmsin=DmsinConfig(wsdl=sim.wsdl_url, userlogin=userlogin),
            aktenplan_default=sim.aktenplaneintrag,
        ),
    )
    try:
        # The container itself is the "blob": the import reads it by path and checks it.
        ergebnis = await destination.import_message(
            Outbound(
                message_id="seed",
                attempt=1,
                blob_path=container,
                blob_sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                content_kind="container",
                prozess_id="seed",
                nachrichtentyp="0401",
                message_element="Abgabe.Abgabe.0401",
            )
        )
        yield ergebnis, destination.port
    finally:
        await destination.close()


async def check_dms(
    journey: Reporter,
    destination: DmsImport,
    item: Outbound,
    nachricht: Nachricht,
    originals: dict[str, str],
    export_to: Path,
) -> None:
    """Show what B's DMS holds and prove every document comes back bit-identical.

    Args:
        journey: where checks and lines go.
        destination: B's DMS destination (the worker's own instance).
        item: the message as delivered to it.
        nachricht: the message's content, for the tree.
        originals: SHA-256 of each document A sent, by file name.
        export_to: folder for the exported containers.
    """
    try:
        ergebnis = await destination.import_message(item)
    except GatewayError as exc:
        journey.check(False, "B's DMS holds the message's objects", exc.message)
        return
    journey.check(
        ergebnis.angelegt == 0 and ergebnis.inhalte_angelegt == 0,
        "replaying the import creates nothing",
        f"{ergebnis.vorhanden} objects, {ergebnis.inhalte_vorhanden} documents found",
    )
    journey.info(f"objects in B's DMS ({destination.port.where}):")
    for sgo in nachricht.schriftgutobjekte:
        await _show(journey, destination, ergebnis, sgo, 1)
    exported: dict[str, str] = {}
    for sgo in nachricht.schriftgutobjekte:
        export = await export_0401(
            destination.port,
            _adresse(ergebnis, sgo),
            export_to,
            version=nachricht.version,
            absender=nachricht.kopf.empfaenger,
            empfaenger=nachricht.kopf.absender,
        )
        journey.info(f"exported {sgo.art.value} back into {export.path.name}")
        report = await asyncio.to_thread(read_container, export.path)
        journey.check(report.valid, "the export is a valid 0401 container", export.path.name)
        exported.update({e.name: e.sha256 for e in export.entries if e.role == "primaerdokument"})
    for name, expected in sorted(originals.items()):
        actual = exported.get(name)
        if actual is None:
            journey.check(False, name, "missing from the export")
            continue
        same = "=" if actual == expected else "≠"
        journey.check(
            actual == expected, name, f"sha256 {actual[:16]}… {same} sent {expected[:16]}…"
        )


def _adresse(ergebnis: ImportErgebnis, sgo: Schriftgutobjekt) -> str:
    by_key = {uuid_key(uuid): adresse for uuid, adresse in ergebnis.adressen.items()}
    return by_key[sgo.uuid_key]


async def _show(
    journey: Reporter,
    destination: DmsImport,
    ergebnis: ImportErgebnis,
    sgo: Schriftgutobjekt,
    depth: int,
) -> None:
    adresse = _adresse(ergebnis, sgo)
    betreff = f' "{sgo.betreff}"' if sgo.betreff else ""
    journey.info("  " * depth + f"{sgo.art.value}{betreff}  {adresse}")
    if sgo.dateinamen():
        for inhalt in (await destination.port.read(adresse)).inhalte:
            journey.info("  " * (depth + 1) + f"Inhalt {inhalt.dateiname}  {inhalt.adresse}")
    for kind in sgo.kinder:
        await _show(journey, destination, ergebnis, kind, depth + 1)
