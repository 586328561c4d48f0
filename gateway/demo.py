"""``ikz-gateway demo``: a self-contained end-to-end run that proves its own result.

Scenario ``abgabe`` with ``--dms sims`` (the default): an Akte moves from Kommune
A's DMS to Kommune B's DMS, two dmsin simulators, two gateways over mutual TLS,
started with ``abgabe start`` (``demo_abgabe``).

With ``--dms fs|sim`` (and always with ``--container``): Kommune A builds an Abgabe 0401
container from its Akte, hands it to Kommune B's inbox, B checks and files every
document, B's gateway answers with 0403/0402, and A correlates those receipts. The run
passes only if every document arrives bit-identical (SHA-256) and every expected
receipt arrives, validates and reports success.

Each Kommune runs its own gateway (own gateway.toml, journal, blob store, HTTP API
and delivery worker) on loopback. The journals are SQLite files in the gateways'
folders, or, with ``--journal``, fresh ones derived from a SQLite or PostgreSQL URL
and removed at the end (``demo_journals``); messages travel A → B and receipts
B → A through them. With ``--dms sim`` B's gateway imports the Abgabe into a DMS
over SOAP (the dmsin simulator, ``demo_dms``) instead of a transfer folder, and the
demo exports it back from there to compare every document. B's gateway produces
the 0403 and 0402 itself (``gateway.receipts``), and A's gateway derives the
process from its journal (``gateway.processes``): the run also requires A's
process to be ``completed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from adapters.dms.destination import DmsImport
from adapters.xdomea import builders, naming, receipts
from adapters.xdomea.container import Container, ContainerReport, read_container, write_container
from adapters.xdomea.validation import check_message
from contracts.journal import DeliveryState
from contracts.processes import ProcessState
from contracts.xdomea import Kontakt, Nachricht, Schriftgutobjekt, Severity
from gateway import demo_abgabe, demo_data, demo_dms
from gateway.app import WORKER
from gateway.demo_gateways import Node, two_gateways, wait_for_files
from gateway.demo_journals import DemoJournals, demo_journals
from gateway.errors import SchemaNotInstalled
from schemas.loader import default_loader

Echo = Callable[[str], None]


@dataclass
class Journey:
    """The steps of one demo run and whether each check passed."""

    echo: Echo
    failures: list[str] = field(default_factory=list)

    def step(self, title: str) -> None:
        """Start a numbered section of the output."""
        self.echo("")
        self.echo(title)

    def check(self, ok: bool, label: str, detail: str = "") -> bool:
        """Record one end-to-end check and print it."""
        mark = "ok  " if ok else "FAIL"
        self.echo(f"  [{mark}] {label}" + (f"  {detail}" if detail else ""))
        if not ok:
            self.failures.append(label)
        return ok

    def info(self, text: str) -> None:
        """Print a line that is not a check."""
        self.echo(f"         {text}")

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return not self.failures


def run_demo(
    workdir: Path,
    *,
    container: Path | None = None,
    version: str = "3.1.0",
    echo: Echo = print,
    journal: str | None = None,
    keep_journals: bool = False,
    dms: str = "sims",
    dms_wsdl: Path | None = None,
) -> bool:
    """Run the Abgabe scenario in ``workdir``; return whether every check passed.

    Args:
        workdir: where both gateways keep their files.
        container: send this container instead of building one.
        version: xdomea version of the container the demo builds.
        echo: where the report goes, line by line.
        journal: ``sqlite:///PATH`` or ``postgresql://…`` from which both gateways'
            journals are derived (see ``demo_journals``); ``None``: SQLite in ``workdir``.
        keep_journals: leave derived journals in place at the end (else removed).
        dms: ``"sims"``: A and B each have a dmsin simulator, the gateways talk mTLS
            and A's operator starts the Abgabe from A's DMS (``demo_abgabe``; not with
            ``container``). Otherwise A sends a container with ``send`` and B's DMS is
            ``"fs"`` its transfer folder, filed by the demo, or ``"sim"`` a ``dms``
            destination (dmsin) on the simulator (``demo_dms``).
        dms_wsdl: the dmsin WSDL file for ``"sim"``/``"sims"`` (default: see
            ``demo_dms.find_wsdl``).

    Raises:
        ConfigError: ``dms`` is ``"sim"`` or ``"sims"`` and the dmsin WSDL cannot be found.
        JournalUnavailable: the journal server cannot be reached.
        JournalError: the journal URL is unsupported or its journals cannot be created.
        SchemaNotInstalled: no xdomea schemas are installed.
    """
    # Found before anything starts, so a missing WSDL costs nothing but the message.
    wsdl = demo_dms.find_wsdl(dms_wsdl) if dms in ("sim", "sims") else None
    if dms == "sims" and container is not None:
        raise ValueError("a given container is sent with 'send': use dms 'fs' or 'sim'")
    return asyncio.run(
        _with_journals(
            workdir,
            container=container,
            version=version,
            echo=echo,
            journal=journal,
            keep=keep_journals,
            dms_wsdl=wsdl,
            both_dms=dms == "sims",
        )
    )


async def _with_journals(
    workdir: Path,
    *,
    container: Path | None,
    version: str,
    echo: Echo,
    journal: str | None,
    keep: bool,
    dms_wsdl: Path | None,
    both_dms: bool,
) -> bool:
    # The journals exist before anything else happens, so an unreachable server
    # fails the demo at once, and they are removed however the run ends.
    async with demo_journals(journal, keep=keep, echo=echo) as journals:
        if both_dms:
            assert dms_wsdl is not None
            return await _run_dms_to_dms(workdir, version, echo, journals, dms_wsdl)
        return await _run(
            workdir,
            container=container,
            version=version,
            echo=echo,
            journals=journals,
            dms_wsdl=dms_wsdl,
        )


async def _run_dms_to_dms(
    workdir: Path, version: str, echo: Echo, journals: DemoJournals, wsdl: Path
) -> bool:
    journey = Journey(echo)
    _schemas(journey)
    await demo_abgabe.run(
        journey,
        workdir,
        wsdl=wsdl,
        version=version,
        journals=journals.urls,
        describe={key: journals.describe(key) for key in ("a", "b")},
    )
    return _result(journey)


def _schemas(journey: Journey) -> None:
    installed = default_loader().installed_versions()
    journey.step("1. Schemas")
    if not installed:
        raise SchemaNotInstalled(
            "no xdomea schemas installed; run 'ikz-gateway schemas import DIR|ZIP' or "
            "'ikz-gateway schemas fetch all' first"
        )
    journey.info(f"installed and verified: {', '.join(installed)}")


async def _run(
    workdir: Path,
    *,
    container: Path | None,
    version: str,
    echo: Echo,
    journals: DemoJournals,
    dms_wsdl: Path | None,
) -> bool:
    journey = Journey(echo)
    _schemas(journey)

    journey.step("2. Kommune A prepares the Abgabe")
    sent, originals = _prepare(journey, workdir / "kommune-a" / "outbox", container, version)
    if sent is None:
        return _result(journey)
    message = sent.nachricht
    journey.info(f"ProzessID {message.kopf.prozess_id}, xdomea {message.version}")
    journey.info(f"from {_party(message.kopf.absender)} to {_party(message.kopf.empfaenger)}")
    _print_tree(journey, message)
    kennung_a, kennung_b = _kennung(message.kopf.absender), _kennung(message.kopf.empfaenger)
    if kennung_a is None or kennung_b is None:
        journey.check(False, "Absender and Empfänger carry a Behördenkennung (Präfix and Kennung)")
        return _result(journey)

    async with AsyncExitStack() as stack:
        dms_b = None
        if dms_wsdl is not None:
            sim = await stack.enter_async_context(
                demo_dms.running_simulator(dms_wsdl, workdir / "kommune-b" / "dms-sim")
            )
            dms_b = (demo_dms.DESTINATION, demo_dms.destination_toml(sim))
        journey.step("3. Gateway A delivers to gateway B (HTTP on loopback, journaled both sides)")
        gateway_a, gateway_b = await stack.enter_async_context(
            two_gateways(workdir, kennung_a, kennung_b, journals=journals.urls, dms_b=dms_b)
        )
        journey.info(f"gateway A: {gateway_a.folder / 'gateway.toml'}")
        journey.info(f"  journal {journals.describe('a')}")
        journey.info(f"gateway B: {gateway_b.folder / 'gateway.toml'}")
        journey.info(f"  journal {journals.describe('b')}")
        if dms_b is not None:
            journey.info(f"  DMS: dmsin simulator {sim.url} (WSDL {dms_wsdl})")
        accepted = await gateway_a.send(Path(sent.path))
        journey.info(f"A accepted message {accepted.message_id}")
        if dms_b is None:
            received = await _into_transfer_folder(
                journey, workdir, gateway_a, gateway_b, message, originals
            )
        else:
            received = await _into_dms(journey, workdir, gateway_a, gateway_b, message, originals)
        if received is None:
            return _result(journey)

        if received.nachricht.typ.code == "0401":
            journey.step(
                "6. Kommune B's gateway answers with the receipts; A's gateway tracks them"
            )
            due = receipts.requested_receipts(received.checked)
            journey.check(bool(due), "receipts requested by the Kopf", ", ".join(due) or "none")
        else:
            # The gateway answers Abgaben (0401) itself; other messages (a given 0503,
            # say) get their receipts from the demo in B's role, as an importer would.
            journey.step("6. Kommune B answers through its gateway; A's gateway delivers them")
            outbox = workdir / "kommune-b" / "outbox"
            due = await _send_receipts(journey, received, gateway_b, outbox)
        arrived = await wait_for_files(gateway_a.local_folder, len(due))
        _check_receipts(journey, received, arrived, due)
        if received.nachricht.typ.code == "0401":
            await _check_process(journey, gateway_a, received.nachricht.kopf.prozess_id)
    return _result(journey)


async def _into_transfer_folder(
    journey: Journey,
    workdir: Path,
    gateway_a: Node,
    gateway_b: Node,
    message: Nachricht,
    originals: dict[str, str],
) -> ContainerReport | None:
    """``--dms fs``: B's gateway writes the container into its transfer folder; B files it."""
    found = await wait_for_files(gateway_b.local_folder, 1)
    delivered = found[0] if found else None
    if not journey.check(delivered is not None, "B's gateway delivered into its DMS folder"):
        return None
    assert delivered is not None
    await _show_journals(journey, gateway_a, gateway_b, message.kopf.prozess_id)
    received = _check_received(journey, delivered, message)

    journey.step("5. Kommune B files every document (SHA-256 end to end)")
    _file_documents(journey, delivered, workdir / "kommune-b" / "dms", originals)
    return received


async def _into_dms(
    journey: Journey,
    workdir: Path,
    gateway_a: Node,
    gateway_b: Node,
    message: Nachricht,
    originals: dict[str, str],
) -> ContainerReport | None:
    """``--dms sim``: B's gateway imports into its DMS over SOAP; B exports it back."""
    prozess_id = message.kopf.prozess_id
    finished = await demo_dms.wait_for_delivery(lambda: gateway_b.process(prozess_id))
    state = "not finished after 60 s" if finished is None else finished[1].state.value
    error = finished[1].last_error if finished is not None else None
    if not journey.check(
        finished is not None and finished[1].state is DeliveryState.DELIVERED,
        "B's gateway imported the message into its DMS (dmsin over SOAP)",
        "" if error is None and finished is not None else f"{state}: {error or ''}",
    ):
        return None
    assert finished is not None
    view = finished[0]
    await _show_journals(journey, gateway_a, gateway_b, prozess_id)
    worker = gateway_b.app[WORKER]
    blob = await worker.blobs.file(view.blob_sha256)
    received = _check_received(journey, blob, message)

    journey.step("5. Kommune B's DMS holds every object; each document exported back (SHA-256)")
    destination = worker.destinations[demo_dms.DESTINATION]
    assert isinstance(destination, DmsImport)
    await demo_dms.check_dms(
        journey,
        destination,
        demo_dms.outbound(view, blob),
        received.nachricht,
        originals,
        workdir / "kommune-b" / "dms-export",
    )
    return received


def _check_received(journey: Journey, path: Path, message: Nachricht) -> ContainerReport:
    journey.step("4. Kommune B checks the container")
    received = read_container(path)
    journey.check(
        received.valid, "container valid against the xdomea schema", _first_error(received)
    )
    journey.check(
        _kennung(received.nachricht.kopf.empfaenger) == _kennung(message.kopf.empfaenger),
        "addressed to Kommune B",
    )
    return received


def _result(journey: Journey) -> bool:
    journey.step("Result")
    if journey.passed:
        journey.echo(
            "  PASSED: every document bit-identical, every receipt arrived and correlates."
        )
    else:
        journey.echo(f"  FAILED: {len(journey.failures)} check(s): " + "; ".join(journey.failures))
    return journey.passed


def _kennung(kontakt: Kontakt) -> str | None:
    kennung = kontakt.behoerdenkennung
    if kennung is None or not kennung.praefix or not kennung.kennung:
        return None
    return f"{kennung.praefix}:{kennung.kennung}"


async def _show_journals(journey: Journey, a: Node, b: Node, prozess_id: str) -> None:
    for node in (a, b):
        for view in await node.process(prozess_id):
            for delivery in view.deliveries:
                journey.info(
                    f"{node.name} journal: {view.message_element} -> {delivery.destination}: "
                    f"{delivery.state.value} after {delivery.attempts} attempt(s)"
                )


def _prepare(
    journey: Journey, outbox: Path, container: Path | None, version: str
) -> tuple[ContainerReport | None, dict[str, str]]:
    """Build (or take) the container A sends and the SHA-256 of each original document."""
    if container is None:
        akte, documents = demo_data.bauakte()
        xml = builders.build_abgabe_0401(
            version, [akte], absender=demo_data.KOMMUNE_A, empfaenger=demo_data.KOMMUNE_B
        )
        path, _ = write_container(outbox, xml, documents)
        originals = {name: hashlib.sha256(data).hexdigest() for name, data in documents.items()}
        journey.info(f"built {path.name} with {len(documents)} documents")
        return read_container(path), originals
    report = read_container(container)
    if not journey.check(
        report.valid, f"given container {container.name} is valid", _first_error(report)
    ):
        return None, {}
    outbox.mkdir(parents=True, exist_ok=True)
    copied = _copy_durably(container, outbox)
    originals = {e.name: e.sha256 for e in report.entries if e.role == "primaerdokument"}
    journey.info(f"took {container} with {len(originals)} documents")
    return read_container(copied), originals


def _file_documents(
    journey: Journey, delivered: Path, dms: Path, originals: dict[str, str]
) -> None:
    """Stream each document into B's filing folder, hashing on the way."""
    with Container(delivered) as container:
        for name, expected in sorted(originals.items()):
            target = dms / name
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with container.open_document(name) as source, target.open("wb") as sink:
                while chunk := source.read(1024 * 1024):
                    digest.update(chunk)
                    sink.write(chunk)
            actual = digest.hexdigest()
            same = "=" if actual == expected else "≠"
            journey.check(
                actual == expected, name, f"sha256 {actual[:16]}… {same} sent {expected[:16]}…"
            )


async def _check_process(journey: Journey, gateway_a: Node, prozess_id: str) -> None:
    """A's gateway derives the process from its journal: 0401 sent, 0403 and 0402 back."""
    status = await gateway_a.process_status(prozess_id)
    for entry in status.timeline:
        journey.info(
            f"{entry.at:%H:%M:%S} {entry.message_element} {entry.absender} → {entry.empfaenger}"
            f"  sha256 {entry.sha256[:16]}…"
        )
    journey.check(
        status.state is ProcessState.COMPLETED, "A's process is completed", status.state.value
    )


async def _send_receipts(
    journey: Journey, received: ContainerReport, gateway_b: Node, outbox: Path
) -> tuple[str, ...]:
    """B writes the receipts the Kopf asks for and hands them to its own gateway."""
    incoming = received.checked
    due = receipts.requested_receipts(incoming)
    journey.check(bool(due), "receipts requested by the Kopf", ", ".join(due) or "none")
    outbox.mkdir(parents=True, exist_ok=True)
    for code in due:
        xml = receipts.build_receipt(incoming, code)
        answer = check_message(xml)
        path = outbox / naming.message_name(received.nachricht.kopf.prozess_id, answer.detected.typ)
        path.write_bytes(xml)
        accepted = await gateway_b.send(path)
        journey.info(f"B sent {answer.detected.typ.element} as message {accepted.message_id}")
    return due


def _check_receipts(
    journey: Journey, received: ContainerReport, arrived: list[Path], due: tuple[str, ...]
) -> None:
    """A validates each receipt that arrived in its inbox and correlates it."""
    kopf = received.nachricht.kopf
    by_code: dict[str, Path] = {}
    for path in arrived:
        parsed = naming.parse_name(path.name)
        if parsed is not None:
            by_code[parsed.code] = path
    for code in due:
        found = by_code.get(code)
        if not journey.check(found is not None, f"{code} arrived in Kommune A's inbox"):
            continue
        assert found is not None
        path = found
        answer = check_message(path.read_bytes())
        answer_kopf = answer.read().kopf
        journey.check(answer.valid, f"{answer.detected.typ.element} valid", path.name)
        journey.check(
            answer_kopf.prozess_id == kopf.prozess_id
            and answer_kopf.absender.behoerdenkennung == kopf.empfaenger.behoerdenkennung
            and answer_kopf.empfaenger.behoerdenkennung == kopf.absender.behoerdenkennung,
            f"{code} correlates (same ProzessID, parties swapped)",
        )
        if code in ("0402", "0506"):
            results = receipts.read_import_results(answer)
            journey.check(results.erfolgreich, f"{code} reports every object imported")


def _copy_durably(source: Path, directory: Path) -> Path:
    """Copy into ``directory`` under a temporary name, fsync, then rename into place."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    partial = directory / f".{source.name}.part"
    shutil.copyfile(source, partial)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    return target


def _first_error(report: ContainerReport) -> str:
    errors = [f for f in report.all_findings if f.severity is Severity.ERROR]
    if not errors:
        return ""
    first = errors[0]
    return f"{len(errors)} error(s), first: line {first.line}: {first.message}"


def _party(kontakt: Kontakt) -> str:
    kennung = kontakt.behoerdenkennung
    key = f"{kennung.praefix}:{kennung.kennung}" if kennung else "?"
    return f"{kontakt.institution or '?'} ({key})"


def _print_tree(journey: Journey, message: Nachricht) -> None:
    def show(sgo: Schriftgutobjekt, depth: int) -> None:
        betreff = f' "{sgo.betreff}"' if sgo.betreff else ""
        journey.info("  " * depth + f"{sgo.art.value}{betreff}")
        for child in sgo.kinder:
            show(child, depth + 1)

    for sgo in message.schriftgutobjekte:
        show(sgo, 0)
