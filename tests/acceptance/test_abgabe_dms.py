"""Abgabe from A's DMS to B's DMS: two gateways over mutual TLS, two dmsin simulators.

Everything runs as a user runs it: ``dev make-certs`` makes the certificates, the
simulators run as ``dev dms-sim`` processes, both gateways as ``serve`` processes,
and the Abgabe is started with ``abgabe start``. A's Akte is filed into A's
simulator first (by the dms import, as if a clerk had made it). A's gateway
exports it, sends it to B's gateway over mTLS, B files it into B's simulator and
answers 0403 and 0402; A's gateway closes the process and, with
``on_completed = "mark-abgegeben"``, writes the Abgabevermerk onto A's Akte.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.dms import dmsin_names as names
from adapters.dms.destination import DmsImport
from adapters.xdomea import builders
from contracts.builders import AkteSpec, DokumentSpec, VersionSpec, VorgangSpec
from contracts.config import DmsDestination, DmsinConfig
from gateway import demo_data
from gateway.blobs import BlobStore
from tests.acceptance.mtls_support import make_certs, mtls_config, probe_context
from tests.acceptance.processes import ROOT, GatewayProcess, environment, free_port, wait_until
from tests.delivery_support import outbound
from tests.dms_support import WSDL, container, container_from_xml, datei

pytestmark = pytest.mark.slow

AKTENPLAN = "63.01 Bauordnung"


@dataclass
class SimProcess:
    """A ``dev dms-sim`` process: its URL and Aktenplaneintrag."""

    process: subprocess.Popen[str]
    url: str
    aktenplaneintrag: str

    @staticmethod
    def start(data: Path) -> SimProcess:
        """Start the simulator on a free port and read what it prints."""
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "dev",
                "dms-sim",
                "--port",
                "0",
                "--wsdl",
                str(WSDL),
                "--data",
                str(data),
                "--aktenplan",
                AKTENPLAN,
            ],
            cwd=ROOT,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        facts: dict[str, str] = {}
        while "url" not in facts:
            line = process.stdout.readline()
            assert line, f"dms-sim exited with {process.wait(timeout=10)}"
            key, _, value = line.strip().partition(" ")
            facts[key] = value.split(" ")[0] if key == "aktenplan" else value
        return SimProcess(process, facts["url"], facts["aktenplan"])

    def objects(self) -> list[dict[str, Any]]:
        """Every live object in the simulator's store."""
        with urllib.request.urlopen(self.url + "_control/objects", timeout=10) as response:
            listing: list[dict[str, Any]] = json.loads(response.read())
        return [o for o in listing if o["objclass"] != names.AKTENPLANEINTRAG]

    def fault(self, **rule: Any) -> None:
        """Inject a fault rule (``adapters.dms.sim.faults``)."""
        request = urllib.request.Request(
            self.url + "_control/faults",
            data=json.dumps(rule).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    def stop(self) -> None:
        """Terminate the simulator."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        if self.process.stdout is not None:
            self.process.stdout.close()


def akte() -> AkteSpec:
    """An Akte with two Vorgänge and three documents."""
    return AkteSpec(
        betreff="Bauantrag Lindenweg 4",
        kennzeichen="63.01.02/2026",
        vorgaenge=(
            VorgangSpec(
                betreff="Antrag",
                dokumente=(
                    DokumentSpec(
                        betreff="Bauantrag",
                        fremdes_geschaeftszeichen="BA-4",
                        versionen=(VersionSpec(formate=(datei("bauantrag.pdf"),)),),
                    ),
                    DokumentSpec(
                        betreff="Lageplan",
                        versionen=(VersionSpec(formate=(datei("lageplan.pdf"),)),),
                    ),
                ),
            ),
            VorgangSpec(
                betreff="Stellungnahmen",
                dokumente=(
                    DokumentSpec(
                        betreff="Stellungnahme Feuerwehr",
                        versionen=(VersionSpec(formate=(datei("feuerwehr.pdf"),)),),
                    ),
                ),
            ),
        ),
    )


def dmsin_toml(table: str, sim: SimProcess) -> str:
    """A dmsin backend table against ``sim``."""
    return f"""
[{table}.dmsin]
wsdl = "{sim.url}?wsdl"
userlogin = "svc-ikz-gateway"
connect_timeout_seconds = 2
read_timeout_seconds = 10
"""


def config(
    home: Path, certs: Path, node: str, peer: str, ports: dict[str, int], peer_fp: str, sim: str
) -> str:
    """A gateway over mTLS; A exports from its [dms], B imports into a dms destination."""
    local = (
        f"""
[dms]
backend = "dmsin"
{sim}
[destinations.local]
type = "filesystem"
directory = "{home / "inbox"}"
"""
        if node == "kommune-a"
        else f"""
[destinations.local]
type = "dms"
backend = "dmsin"
aktenplan_default = "{{aktenplan}}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 0.5
{sim}"""
    )
    return mtls_config(
        home,
        certs,
        node,
        peer,
        ports,
        peer_fp,
        processes=f'on_completed = "{"mark-abgegeben" if node == "kommune-a" else "record"}"',
        # Short backoffs for the test, so a budget of attempts, not of time, outlasts B's start.
        delivery="initial_backoff_seconds = 0.3\nmax_backoff_seconds = 1.0\nmax_attempts = 1000",
        local=local,
    )


@dataclass
class Kommunen:
    """A's and B's gateway and DMS simulator; the Akte filed in A's DMS."""

    a: GatewayProcess
    b: GatewayProcess
    dms_a: SimProcess
    dms_b: SimProcess
    akte: str
    documents: dict[str, str]
    certs: Path

    def start_abgabe(self) -> dict[str, Any]:
        """``abgabe start --akte … --to kommune-b --json`` on A."""
        done = self.a.cli("abgabe", "start", "--akte", self.akte, "--to", "kommune-b", "--json")
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def process(self, prozess_id: str) -> dict[str, Any]:
        """``process show ID --json`` on A."""
        shown: dict[str, Any] = json.loads(
            self.a.cli("process", "show", prozess_id, "--json").stdout
        )
        return shown

    def wait_closed(self, prozess_id: str, timeout: float = 90) -> dict[str, Any]:
        """A's process once its Abgabe is closed (completed or partially imported)."""
        shown: dict[str, Any] = {}

        def closed() -> bool:
            shown.update(self.process(prozess_id))
            abgabe = shown.get("abgabe") or {}
            return abgabe.get("state") in ("completed", "partially-imported")

        try:
            wait_until(closed, timeout=timeout, interval=0.5, what=f"process {prozess_id} closed")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; A's process: {shown.get('state')}, abgabe {shown.get('abgabe')}, "
                f"messages {self.a.status()}"
            ) from exc
        return shown

    def contents_b(self) -> dict[str, str]:
        """File name → SHA-256 of every document in B's DMS."""
        return {
            f"{o['fields']['filename']}.{o['fields']['fileextension']}": o["sha256"]
            for o in self.dms_b.objects()
            if o["objclass"] == names.INHALT
        }

    def vermerk(self) -> dict[str, Any] | None:
        """The Abgabevermerk on A's Akte, if any."""
        [objekt] = [o for o in self.dms_a.objects() if o["address"] == self.akte]
        raw = objekt["userforms"].get("xdomea_abgabe")
        return json.loads(raw) if raw else None


def seed(sim: SimProcess, folder: Path, pdf: bytes) -> tuple[str, dict[str, str]]:
    """File ``akte()`` into ``sim`` as a clerk would have; its address and document hashes."""
    made = container(folder, [akte()], pdf)

    async def run() -> str:
        destination = DmsImport(
            "seed",
            DmsDestination(
                type="dms",
                backend="dmsin",
                dmsin=DmsinConfig(wsdl=sim.url + "?wsdl", userlogin="clerk"),
                aktenplan_default=sim.aktenplaneintrag,
            ),
        )
        blobs = BlobStore(folder / "blobs")
        try:
            ergebnis = await destination.import_message(
                await outbound(blobs, made.data, prozess_id=made.prozess_id)
            )
        finally:
            await destination.close()
            blobs.close()
        return next(iter(ergebnis.adressen.values()))

    return asyncio.run(run()), made.documents


@pytest.fixture
def kommunen(tmp_path: Path, pdf_bytes: bytes) -> Iterator[Kommunen]:
    """Certificates, both simulators running with the Akte in A's, both gateways configured."""
    certs = tmp_path / "certs"
    printed = make_certs(certs, "kommune-a", "kommune-b")
    sims = {n: SimProcess.start(tmp_path / f"dms-{n}") for n in ("kommune-a", "kommune-b")}
    try:
        adresse, documents = seed(sims["kommune-a"], tmp_path / "seed", pdf_bytes)
        ports = {"kommune-a": free_port(), "kommune-b": free_port()}
        gateways = {}
        for node, peer in (("kommune-a", "kommune-b"), ("kommune-b", "kommune-a")):
            home = tmp_path / node
            gateway = GatewayProcess(
                home=home, port=ports[node], env=environment(), tls=probe_context(certs, node)
            )
            sim = sims[node]
            text = config(
                home, certs, node, peer, ports, printed[(peer, "client")], dmsin_toml("x", sim)
            )
            table = "dms" if node == "kommune-a" else "destinations.local"
            text = text.replace("[x.dmsin]", f"[{table}.dmsin]")
            gateway.write_config(text.replace("{aktenplan}", sim.aktenplaneintrag))
            (home / "inbox").mkdir(parents=True)
            gateways[node] = gateway
        both = Kommunen(
            gateways["kommune-a"],
            gateways["kommune-b"],
            sims["kommune-a"],
            sims["kommune-b"],
            adresse,
            documents,
            certs,
        )
        yield both
        both.a.kill()
        both.b.kill()
    finally:
        for sim in sims.values():
            sim.stop()


def test_akte_moves_from_a_dms_to_b_dms_and_a_marks_it_abgegeben(kommunen: Kommunen) -> None:
    """Happy path: 0401 over mTLS, 0403 and 0402 back, documents identical, Akte marked."""
    kommunen.b.start()
    kommunen.a.start()

    started = kommunen.start_abgabe()
    shown = kommunen.wait_closed(started["prozess_id"])

    assert shown["state"] == "completed" and not shown["failures"]
    assert [e["nachrichtentyp"] for e in shown["timeline"]] == ["0401", "0403", "0402"]
    assert shown["abgabe"]["completion_state"] == "done"
    assert kommunen.contents_b() == kommunen.documents
    vermerk = kommunen.vermerk()
    assert vermerk is not None
    assert (vermerk["prozess_id"], vermerk["empfaenger"]) == (started["prozess_id"], "060:4711")
    assert not shown["dms_objects"], "A's gateway filed nothing into a DMS"


def test_b_process_show_lists_every_object_filed_with_address_and_sha256(
    kommunen: Kommunen,
) -> None:
    """On B, ``process show`` lists each object its DMS import created, at B's DMS address."""
    kommunen.b.start()
    kommunen.a.start()
    started = kommunen.start_abgabe()
    kommunen.wait_closed(started["prozess_id"])

    shown = json.loads(kommunen.b.cli("process", "show", started["prozess_id"], "--json").stdout)
    printed = kommunen.b.cli("process", "show", started["prozess_id"]).stdout

    held = {o["address"]: o for o in kommunen.dms_b.objects() if o["objclass"] != names.INHALT}
    assert sorted(o["adresse"] for o in shown["dms_objects"]) == sorted(held)
    assert {o["status"] for o in shown["dms_objects"]} == {"created"}
    contents = {i["dateiname"]: i["sha256"] for o in shown["dms_objects"] for i in o["inhalte"]}
    assert contents == kommunen.documents == kommunen.contents_b()
    for objekt in shown["dms_objects"]:
        assert f"created {objekt['art']} {objekt['uuid']}" in printed
        assert objekt["adresse"] in printed
    for name, digest in kommunen.documents.items():
        assert f"{name}  sha256 {digest}  created" in printed


def test_starting_the_open_abgabe_again_sends_nothing_new(kommunen: Kommunen) -> None:
    """A second ``abgabe start`` of the same Akte while it is open answers the same process."""
    kommunen.a.start()

    first = kommunen.start_abgabe()
    again = kommunen.start_abgabe()

    assert again["existing"] and again["prozess_id"] == first["prozess_id"]
    assert len(kommunen.a.status()) == 1


def test_b_down_for_a_while_a_retries_then_completes(kommunen: Kommunen) -> None:
    """B is not running when A sends: A's deliveries fail and are retried until B is up."""
    kommunen.a.start()
    started = kommunen.start_abgabe()

    def failed_attempt() -> bool:
        [view] = kommunen.a.status()
        return any(d["attempts"] >= 2 for d in view["deliveries"])

    wait_until(failed_attempt, timeout=60, interval=0.5, what="A's retries while B is down")
    kommunen.b.start()
    shown = kommunen.wait_closed(started["prozess_id"])

    assert shown["state"] == "completed"
    assert kommunen.contents_b() == kommunen.documents
    assert kommunen.vermerk() is not None


def test_document_b_refuses_shows_partially_imported_and_marks_nothing(
    kommunen: Kommunen,
) -> None:
    """B's DMS refuses one document: the 0402 reports it, A's Akte is not marked abgegeben."""
    refused = next(n for n in kommunen.documents if n.endswith("lageplan.pdf"))
    kommunen.dms_b.fault(
        operation="CreateContentObjectGI",
        kind="refuse",
        match=refused.rsplit(".", 1)[0],
        message="Format nicht zulässig",
    )
    kommunen.b.start()
    kommunen.a.start()

    started = kommunen.start_abgabe()
    shown = kommunen.wait_closed(started["prozess_id"])

    assert shown["state"] == "partially-imported"
    [failure] = shown["failures"]
    assert refused in failure["fehlermeldungen"][0]
    assert shown["abgabe"]["completion_state"] == "not-done"
    assert kommunen.vermerk() is None
    assert set(kommunen.contents_b()) == set(kommunen.documents) - {refused}


def test_replayed_0401_creates_nothing_new_in_b_dms(kommunen: Kommunen) -> None:
    """The same 0401 posted to B again over mTLS after the import: B's DMS is unchanged."""
    kommunen.b.start()
    kommunen.a.start()
    started = kommunen.start_abgabe()
    kommunen.wait_closed(started["prozess_id"])
    before = kommunen.dms_b.objects()
    [view] = [v for v in kommunen.a.status() if v["nachrichtentyp"] == "0401"]
    blob = kommunen.a.home / "data" / "blobs" / "sha256"
    data = next(blob.rglob(view["blob_sha256"])).read_bytes()

    status = post_as_a(kommunen, data, idempotency_key="replay-of-" + view["id"])

    assert status == 200  # B recognises the message it has (same ProzessID, sender, bytes)
    assert kommunen.dms_b.objects() == before


def test_third_party_with_a_valid_certificate_is_refused_403(
    kommunen: Kommunen, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Kommune C, certified by the same CA but no partner of B, sends as A: 403, nothing filed."""
    make_certs(kommunen.certs, "kommune-c")
    kommunen.b.start()
    xml = builders.build_abgabe_0401(
        "3.1.0", [akte()], absender=demo_data.KOMMUNE_A, empfaenger=demo_data.KOMMUNE_B
    )
    forged = container_from_xml(tmp_path / "forged", xml, pdf_bytes)

    status = post_as_a(kommunen, forged.data, idempotency_key="from-c", node="kommune-c")

    assert status == 403
    assert kommunen.dms_b.objects() == []
    assert "client_certificate_refused" in kommunen.b.log()


def post_as_a(
    kommunen: Kommunen, data: bytes, *, idempotency_key: str, node: str = "kommune-a"
) -> int:
    """POST ``data`` to B's API with ``node``'s client certificate; the HTTP status."""
    context = ssl.create_default_context(cafile=kommunen.certs / "ca.crt")
    context.load_cert_chain(
        kommunen.certs / node / "client.crt", kommunen.certs / node / "client.key"
    )
    request = urllib.request.Request(
        f"{kommunen.b.url}/v1/messages",
        data=data,
        method="POST",
        headers={"Content-Type": "application/zip", "Idempotency-Key": idempotency_key},
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
