"""``ikz-gateway demo`` (scenario ``abgabe``, ``--dms sims``): an Akte from A's DMS to B's DMS.

Each Kommune has its own dmsin DMS (the simulator, ``adapters.dms.sim``, on
loopback) and its own gateway; the gateways talk HTTPS with client certificates
(mutual TLS), made for the run by ``dev make-certs``'s functions into the work
folder. The run:

1. files the demo Bauakte into A's DMS (as a clerk would have made it);
2. starts the Abgabe as A's operator does (``gateway.app.start_abgabe``, the code
   behind ``abgabe start``): A's gateway exports the Akte and sends the 0401;
3. B's gateway imports it into B's DMS and answers 0403 and 0402; A's gateway
   closes the process and writes the Abgabevermerk onto its Akte
   (``on_completed = "mark-abgegeben"``);
4. prints A's process timeline (0401, 0403, 0402 with SHA-256), B's process
   view of the objects B's gateway filed (addresses, documents' SHA-256, from B's
   journal), B's DMS objects as the DMS itself lists them, and checks every
   document in B's DMS is bit-identical to A's and the Abgabevermerk is on A's Akte.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from adapters.dms.dmsin import DmsinPort
from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from adapters.xdomea.receipts import requested_receipts
from contracts.config import DmsinConfig, GatewayConfig
from contracts.dms import DmsPort, Objektdaten
from contracts.processes import AbgabeState, ProcessStatus
from contracts.xdomea import SchriftgutobjektArt
from gateway import abgabe, cli_certs, demo_data, demo_dms, processes, tls
from gateway.app import JOURNAL, build_app, start_abgabe
from gateway.blobs import BlobStore
from gateway.config import load_config
from gateway.demo_dms import Reporter, RunningSim
from gateway.demo_gateways import CONFIG_HEAD, DEFAULT_JOURNAL, Node
from gateway.errors import GatewayError
from gateway.journal.store import Journal
from gateway.receipts import read_message

#: How long the demo waits for B's 0402 to close A's process.
COMPLETION_SECONDS = 120.0

_CONFIG = (
    CONFIG_HEAD
    + """
[http.tls]
certificate = "{certs}/{node_id}/server.crt"
private_key = "{certs}/{node_id}/server.key"
client_ca = "{certs}/ca.crt"

[worker]
poll_interval_seconds = 0.2

[processes]
on_completed = "{on_completed}"

[[partners]]
id = "{peer_id}"
behoerdenkennung = "{peer_kennung}"
xdomea_versions = ["{version}"]
certificate_sha256 = "{peer_fingerprint}"

[destinations.{peer_id}]
type = "http"
url = "https://127.0.0.1:{peer_port}/v1/messages"
ca_file = "{certs}/ca.crt"
client_certificate = "{certs}/{node_id}/client.crt"
client_key = "{certs}/{node_id}/client.key"
initial_backoff_seconds = 0.2
max_backoff_seconds = 2

[[routes]]
empfaenger = "{peer_kennung}"
destination = "{peer_id}"

[[routes]]
empfaenger = "{kennung}"
destination = "local"
{own_dms}
"""
)

#: A's own DMS, which ``abgabe start`` exports from; its inbox takes the receipts.
_DMS_A = """
[dms]
backend = "dmsin"

[dms.dmsin]
wsdl = "{wsdl}"
userlogin = "svc-ikz-demo"

[destinations.local]
type = "filesystem"
directory = "inbox"
"""

#: B files what arrives for it into its DMS.
_DMS_B = """
[destinations.local]
type = "dms"
backend = "dmsin"
aktenplan_default = "{aktenplan}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 2

[destinations.local.dmsin]
wsdl = "{wsdl}"
userlogin = "svc-ikz-demo"
"""


class Steps(Reporter, Protocol):
    """The demo's ``Journey``: checks and lines, and numbered sections."""

    def step(self, title: str) -> None:
        """Start a numbered section of the output."""
        ...


@dataclass(frozen=True)
class Seeded:
    """The Akte filed into A's DMS: address, xdomea UUID, documents' SHA-256, tree lines."""

    adresse: str
    uuid: str
    originals: dict[str, str]
    tree: list[str]


async def run(
    journey: Steps,
    workdir: Path,
    *,
    wsdl: Path,
    version: str,
    journals: Mapping[str, str | None],
    describe: Mapping[str, str],
) -> None:
    """Run the DMS-to-DMS Abgabe in ``workdir``; every outcome is a check on ``journey``.

    Args:
        journey: where steps, checks and lines go (``gateway.demo.Journey``).
        wsdl: the dmsin WSDL file both simulators serve.
        version: the xdomea version both gateways agree on (the export's version).
        journals: journal URL per gateway (``"a"``, ``"b"``); ``None``: SQLite in its folder.
        describe: how to show each gateway's journal.
    """
    step = journey.step
    certs = workdir / "certs"
    step("2. Certificates for mutual TLS (a test CA, a server and client certificate each)")
    _, made = await asyncio.to_thread(
        cli_certs.issue_certificates, certs.absolute(), ["kommune-a", "kommune-b"]
    )
    fingerprints = {n.name: n.client.fingerprint for n in made}
    journey.info(f"CA {certs.absolute() / 'ca.crt'}")
    for issued in made:
        journey.info(f"{issued.name} client certificate sha256 {issued.client.fingerprint}")

    async with AsyncExitStack() as stack:
        sim_a = await stack.enter_async_context(
            demo_dms.running_simulator(wsdl, workdir / "kommune-a" / "dms-sim")
        )
        sim_b = await stack.enter_async_context(
            demo_dms.running_simulator(wsdl, workdir / "kommune-b" / "dms-sim")
        )
        step("3. Kommune A's Akte in A's DMS (dmsin simulator)")
        seeded = await _seed(sim_a, workdir / "kommune-a" / "seed", version)
        akte = seeded.adresse
        journey.info(f"A's DMS: {sim_a.url}")
        for line in seeded.tree:
            journey.info(line)

        step("4. Two gateways over mutual TLS; A's operator starts the Abgabe")
        node_a, node_b = await stack.enter_async_context(
            _gateways(workdir, certs.absolute(), fingerprints, (sim_a, sim_b), journals, version)
        )
        for key, node in (("a", node_a), ("b", node_b)):
            journey.info(f"gateway {key.upper()}: {node.folder / 'gateway.toml'}")
            journey.info(f"  journal {describe[key]}")
        try:
            started = await start_abgabe(node_a.config, akte, "kommune-b")
        except GatewayError as exc:
            journey.check(False, "abgabe start", exc.message)
            return
        prozess_id = started.abgabe.prozess_id
        journey.info(f"abgabe start --akte {akte} --to kommune-b")
        journey.info(f"  message {started.message_id}, ProzessID {prozess_id}")

        step("5. A's process: 0401 sent, 0403 and 0402 back (A's journal)")
        status = await _wait_closed(node_a, prozess_id)
        for entry in status.timeline:
            journey.info(
                f"{entry.at:%H:%M:%S} {entry.nachrichtentyp} {entry.message_element} "
                f"{entry.absender} → {entry.empfaenger}  sha256 {entry.sha256}"
            )
        journey.check(
            status.state.value == "completed", "A's process is completed", status.state.value
        )
        codes = [e.nachrichtentyp for e in status.timeline]
        expected = ["0401", *await _requested(node_a, status)]
        journey.check(
            sorted(codes) == sorted(expected),
            f"{', '.join(expected)} in A's timeline",
            " ".join(codes),
        )

        step("6. B's process: the objects B's gateway filed into its DMS (B's journal)")
        status_b = await _process(node_b, prozess_id)
        for objekt in status_b.dms_objects:
            journey.info(f"{objekt.at:%H:%M:%S} {objekt.status} {objekt.art}  {objekt.adresse}")
            for inhalt in objekt.inhalte:
                journey.info(f"  {inhalt.dateiname}  sha256 {inhalt.sha256}")
        recorded_hashes = {i.dateiname: i.sha256 for o in status_b.dms_objects for i in o.inhalte}
        journey.check(
            recorded_hashes == seeded.originals,
            "B's process records every document filed with A's SHA-256",
            f"{len(recorded_hashes)} of {len(seeded.originals)} documents",
        )

        step("7. B's DMS holds the Akte; every document bit-identical (SHA-256)")
        port_b = _port(sim_b)
        try:
            await _check_b(journey, port_b, seeded.uuid, seeded.originals)
        finally:
            await port_b.close()

        step("8. A's DMS: the Akte is marked abgegeben (completion action)")
        port_a = _port(sim_a)
        try:
            assert node_a.config.dms is not None
            vermerk = await abgabe.read_vermerk(port_a, akte, node_a.config.dms.abgabe_field)
        finally:
            await port_a.close()
        recorded = status.abgabe
        journey.check(
            recorded is not None and recorded.state is AbgabeState.COMPLETED,
            "A's Abgabe is closed as completed",
            recorded.completion_detail or "" if recorded else "",
        )
        journey.check(
            vermerk is not None and vermerk.prozess_id == prozess_id,
            f"Abgabevermerk on {akte}",
            vermerk.model_dump_json() if vermerk else "missing",
        )


async def _requested(node: Node, status: ProcessStatus) -> tuple[str, ...]:
    """The receipts A's 0401 asks for (xdomea 2.x has no 0403 for an Abgabe)."""
    sent = status.timeline[0]
    journal: Journal = node.app[JOURNAL]
    blobs = BlobStore(node.config.storage.blobs, inline=journal.inline_content)
    try:
        path = await blobs.file(sent.sha256)
        with ExitStack() as stack:
            return requested_receipts(read_message(path, None, stack))
    finally:
        blobs.close()


async def _seed(sim: RunningSim, folder: Path, version: str) -> Seeded:
    """File the demo Bauakte into ``sim`` as a clerk would have made it."""
    spec, documents = demo_data.bauakte()
    xml = builders.build_abgabe_0401(
        version, [spec], absender=demo_data.KOMMUNE_A, empfaenger=demo_data.KOMMUNE_A
    )
    path, _ = await asyncio.to_thread(write_container, folder, xml, documents)
    async with demo_dms.seeded(sim, path, userlogin="sachbearbeitung") as (ergebnis, port):
        akte = ergebnis.adressen[spec.uuid]
        tree = await _tree(port, akte, 0)
    originals = {name: hashlib.sha256(body).hexdigest() for name, body in documents.items()}
    return Seeded(adresse=akte, uuid=spec.uuid, originals=originals, tree=tree)


async def _tree(port: DmsPort, adresse: str, depth: int) -> list[str]:
    """One line per object and content object below ``adresse``, with addresses."""
    objekt = await port.read(adresse)
    betreff = f' "{objekt.daten.betreff}"' if objekt.daten.betreff else ""
    lines = ["  " * depth + f"{objekt.daten.art.value}{betreff}  {adresse}"]
    for inhalt in objekt.inhalte:
        lines.append("  " * (depth + 1) + f"Inhalt {inhalt.dateiname}  {inhalt.adresse}")
    for kind in objekt.kinder:
        lines.extend(await _tree(port, kind, depth + 1))
    return lines


def _port(sim: RunningSim) -> DmsinPort:
    return DmsinPort(DmsinConfig(wsdl=sim.wsdl_url, userlogin="sachbearbeitung"))


async def _check_b(journey: Reporter, port: DmsPort, uuid: str, originals: dict[str, str]) -> None:
    """Find the Akte in B's DMS by its xdomea UUID, show it, hash every document."""
    adresse = await port.find(None, Objektdaten(art=SchriftgutobjektArt.AKTE, uuid=uuid))
    if not journey.check(adresse is not None, "B's DMS holds the Akte", f"xdomea UUID {uuid}"):
        return
    assert adresse is not None
    journey.info(f"objects in B's DMS ({port.where}):")
    for line in await _tree(port, adresse, 1):
        journey.info(line)
    found: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ikz-demo-") as folder:
        await _contents(port, adresse, Path(folder), found)
    for name, expected in sorted(originals.items()):
        actual = found.get(name)
        if actual is None:
            journey.check(False, name, "missing from B's DMS")
            continue
        same = "=" if actual == expected else "≠"
        journey.check(actual == expected, name, f"sha256 {actual} {same} sent {expected}")
    extra = sorted(set(found) - set(originals))
    journey.check(not extra, "nothing else in B's Akte", ", ".join(extra))


async def _contents(port: DmsPort, adresse: str, folder: Path, found: dict[str, str]) -> None:
    objekt = await port.read(adresse)
    for inhalt in objekt.inhalte:
        found[inhalt.dateiname] = await port.read_content(inhalt, folder / str(len(found)))
    for kind in objekt.kinder:
        await _contents(port, kind, folder, found)


async def _process(node: Node, prozess_id: str) -> ProcessStatus:
    """The process as ``process show`` shows it on ``node`` (its operator's view)."""
    journal: Journal = node.app[JOURNAL]
    blobs = BlobStore(node.config.storage.blobs, inline=journal.inline_content)
    try:
        views = await journal.process(prozess_id)
        return await processes.status(node.config, journal, blobs, prozess_id, views)
    finally:
        blobs.close()


async def _wait_closed(node: Node, prozess_id: str) -> ProcessStatus:
    """A's process once its Abgabe is closed, or as it stands after the timeout."""
    journal: Journal = node.app[JOURNAL]
    blobs = BlobStore(node.config.storage.blobs, inline=journal.inline_content)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + COMPLETION_SECONDS
    try:
        while True:
            views = await journal.process(prozess_id)
            status = await processes.status(node.config, journal, blobs, prozess_id, views)
            closed = status.abgabe is not None and status.abgabe.state in (
                AbgabeState.COMPLETED,
                AbgabeState.PARTIALLY_IMPORTED,
            )
            if closed or loop.time() > deadline:
                return status
            await asyncio.sleep(0.2)
    finally:
        blobs.close()


@asynccontextmanager
async def _gateways(
    workdir: Path,
    certs: Path,
    fingerprints: Mapping[str, str],
    sims: tuple[RunningSim, RunningSim],
    journals: Mapping[str, str | None],
    version: str,
) -> AsyncIterator[tuple[Node, Node]]:
    """Write both configurations, serve both gateways over mTLS, stop them at the end."""
    ports = {"a": _free_port(), "b": _free_port()}
    specs = {
        "a": ("kommune-a", "060:0815", "kommune-b", "060:4711", "b", "mark-abgegeben"),
        "b": ("kommune-b", "060:4711", "kommune-a", "060:0815", "a", "record"),
    }
    own_dms = {
        "a": _DMS_A.format(wsdl=sims[0].wsdl_url),
        "b": _DMS_B.format(wsdl=sims[1].wsdl_url, aktenplan=sims[1].aktenplaneintrag),
    }
    nodes: dict[str, Node] = {}
    runners: list[web.AppRunner] = []
    try:
        for key, (node_id, kennung, peer_id, peer_kennung, peer, on_completed) in specs.items():
            folder = workdir / node_id
            (folder / "inbox").mkdir(parents=True, exist_ok=True)
            path = folder / "gateway.toml"
            path.write_text(
                _CONFIG.format(
                    path=path,
                    journal=json.dumps(journals.get(key) or DEFAULT_JOURNAL),
                    node_id=node_id,
                    kennung=kennung,
                    port=ports[key],
                    certs=certs,
                    on_completed=on_completed,
                    peer_id=peer_id,
                    peer_kennung=peer_kennung,
                    version=version,
                    peer_fingerprint=fingerprints[peer_id],
                    peer_port=ports[peer],
                    own_dms=own_dms[key],
                ),
                encoding="utf-8",
            )
            config: GatewayConfig = load_config(path)
            assert config.http.tls is not None
            app = await build_app(config)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            context = tls.server_context(config.http.tls)
            await web.TCPSite(runner, "127.0.0.1", ports[key], ssl_context=context).start()
            nodes[key] = Node(node_id, folder, config, folder / "inbox", app)
        yield nodes["a"], nodes["b"]
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
