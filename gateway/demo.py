"""``ikz-gateway demo``: a self-contained end-to-end run that proves its own result.

Scenario ``abgabe`` (today, on the xdomea core): Kommune A builds an Abgabe 0401
container from its Akte, hands it to Kommune B's inbox, B checks and files every
document and answers with 0403/0402, and A correlates those receipts. The run
passes only if every document arrives bit-identical (SHA-256) and every expected
receipt arrives, validates and reports success.

The hand-over is a file copy for now; the gateway runtime (HTTP intake, journal,
delivery workers) replaces it with gateway-to-gateway transport.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapters.xdomea import builders, naming, receipts
from adapters.xdomea.container import Container, ContainerReport, read_container, write_container
from adapters.xdomea.validation import check_message
from contracts.xdomea import Kontakt, Nachricht, Schriftgutobjekt, Severity
from gateway import demo_data
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
    workdir: Path, *, container: Path | None = None, version: str = "3.1.0", echo: Echo = print
) -> bool:
    """Run the Abgabe scenario in ``workdir``; return whether every check passed."""
    journey = Journey(echo)
    kommune_a, kommune_b = workdir / "kommune-a", workdir / "kommune-b"
    installed = default_loader().installed_versions()
    journey.step("1. Schemas")
    if not installed:
        raise SchemaNotInstalled(
            "no xdomea schemas installed; run 'ikz-gateway schemas import DIR|ZIP' or "
            "'ikz-gateway schemas fetch all' first"
        )
    journey.info(f"installed and verified: {', '.join(installed)}")

    journey.step("2. Kommune A prepares the Abgabe")
    sent, originals = _prepare(journey, kommune_a / "outbox", container, version)
    if sent is None:
        return False
    message = sent.nachricht
    journey.info(f"ProzessID {message.kopf.prozess_id}, xdomea {message.version}")
    journey.info(f"from {_party(message.kopf.absender)} to {_party(message.kopf.empfaenger)}")
    _print_tree(journey, message)

    journey.step("3. Hand-over to Kommune B")
    inbox_b = kommune_b / "inbox"
    delivered = _copy_durably(Path(sent.path), inbox_b)
    journey.info(f"{delivered.name} -> {inbox_b}")

    journey.step("4. Kommune B checks the container")
    received = read_container(delivered)
    journey.check(
        received.valid, "container valid against the xdomea schema", _first_error(received)
    )
    journey.check(
        received.nachricht.kopf.empfaenger.behoerdenkennung
        == message.kopf.empfaenger.behoerdenkennung,
        "addressed to Kommune B",
    )

    journey.step("5. Kommune B files every document (SHA-256 end to end)")
    _file_documents(journey, delivered, kommune_b / "dms", originals)

    journey.step("6. Kommune B answers, Kommune A correlates the receipts")
    _exchange_receipts(journey, received, kommune_a / "inbox")

    journey.step("Result")
    if journey.passed:
        journey.echo(
            "  PASSED: every document bit-identical, every receipt arrived and correlates."
        )
    else:
        journey.echo(f"  FAILED: {len(journey.failures)} check(s): " + "; ".join(journey.failures))
    return journey.passed


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


def _exchange_receipts(journey: Journey, received: ContainerReport, inbox_a: Path) -> None:
    """B writes the receipts the Kopf asks for; A validates and correlates each one."""
    incoming = received.checked
    due = receipts.requested_receipts(incoming)
    journey.check(bool(due), "receipts requested by the Kopf", ", ".join(due) or "none")
    kopf = received.nachricht.kopf
    inbox_a.mkdir(parents=True, exist_ok=True)
    for code in due:
        xml = receipts.build_receipt(incoming, code)
        answer = check_message(xml)
        name = naming.message_name(kopf.prozess_id, answer.detected.typ)
        (inbox_a / name).write_bytes(xml)
        answer_kopf = answer.read().kopf
        journey.check(answer.valid, f"{answer.detected.typ.element} valid", name)
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
