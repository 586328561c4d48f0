"""The ``fvdaten`` destination in a gateway's runtime: real intake, SQLite journal, blob store.

Requests are delivered to the destination as the worker would; its answers go
through the real node outbox (``IntakeOutbox``) into the journal, routed to the
Fachverfahren's Postfach.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.fvdaten.destination import FVDatenDestination
from adapters.xdomea import fvdaten
from adapters.xdomea.container import read_container, write_container
from adapters.xdomea.validation import check_message
from contracts.config import (
    FilesystemDestination,
    FvdatenDestination,
    GatewayConfig,
    NodeConfig,
    PartnerConfig,
    RouteConfig,
    StorageConfig,
)
from contracts.delivery import Outbound
from contracts.journal import MessageView
from gateway.app import local_sender
from gateway.blobs import BlobStore
from gateway.config import token_digest
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.intake import Intake, IntakeOutbox
from gateway.journal.store import Journal
from tests import delivery_support
from tests import fvdaten_support as fv


@dataclass
class Runtime:
    """One gateway's pieces around the destination under test."""

    config: GatewayConfig
    journal: Journal
    blobs: BlobStore
    destination: FVDatenDestination
    dms: Path

    async def outbound(self, data: bytes, *, kind: str) -> Outbound:
        """The request stored as a blob, as the worker hands it over."""
        prozess_id = fv.ZEITPUNKT.isoformat()
        return await delivery_support.outbound(self.blobs, data, prozess_id=prozess_id, kind=kind)

    async def answers(self, prozess_id: str) -> list[MessageView]:
        """The 0630s journaled for the process."""
        return [m for m in await self.journal.process(prozess_id) if m.nachrichtentyp == "0630"]


def config(tmp_path: Path, *, route_back: bool = True) -> GatewayConfig:
    """The DMS side (060:0815) with an fvdaten destination and, optionally, the way back."""
    routes = [RouteConfig(empfaenger="060:0815", destination="fvdaten")]
    if route_back:
        routes.append(RouteConfig(empfaenger="060:0815-FV", destination="postfach"))
    return GatewayConfig(
        node=NodeConfig(id="stadt", behoerdenkennung="060:0815"),
        storage=StorageConfig(journal=f"sqlite:///{tmp_path / 'j.db'}", blobs=tmp_path / "blobs"),
        partners=(
            PartnerConfig(id="fv", behoerdenkennung="060:0815-FV", token_sha256=token_digest("t")),
        ),
        destinations={
            "fvdaten": FvdatenDestination(
                type="fvdaten",
                backend="filesystem",
                directory=tmp_path / "dms",
                fachverfahren=("060:0815-FV",),
            ),
            "postfach": FilesystemDestination(type="filesystem", directory=tmp_path / "postfach"),
        },
        routes=tuple(routes),
    )


async def runtime(tmp_path: Path, *, route_back: bool = True) -> AsyncIterator[Runtime]:
    """The runtime over a fresh journal and filesystem DMS."""
    cfg = config(tmp_path, route_back=route_back)
    (tmp_path / "dms").mkdir()
    journal = Journal.from_url(cfg.storage.journal)
    await journal.upgrade()
    blobs = BlobStore(cfg.storage.blobs, inline=journal.inline_content)
    outbox = IntakeOutbox(Intake(cfg, journal, blobs), local_sender(cfg))
    destination = FVDatenDestination("fvdaten", cfg.destinations["fvdaten"], outbox)  # type: ignore[arg-type]
    try:
        yield Runtime(cfg, journal, blobs, destination, tmp_path / "dms")
    finally:
        await destination.close()
        await journal.close()


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime with a route back to the Fachverfahren."""
    async for value in runtime(tmp_path):
        yield value


def request_container(tmp_path: Path, pdf_bytes: bytes) -> tuple[bytes, str]:
    """A 0604 container with the Akte and a PDF; its bytes and ProzessID."""
    xml = fv.erstellen("3.1.0", fv.akte())
    path, _ = write_container(tmp_path / "request", xml, fv.documents_of(xml, pdf_bytes))
    return path.read_bytes(), check_message(xml).read().kopf.prozess_id


async def test_answer_is_journaled_addressed_to_the_fachverfahren(
    rt: Runtime, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Delivering a 0604 journals one 0630 from the node to the Fachverfahren, routed back."""
    data, prozess_id = request_container(tmp_path, pdf_bytes)

    await rt.destination.deliver(await rt.outbound(data, kind="container"))

    (answer,) = await rt.answers(prozess_id)
    assert (answer.absender, answer.empfaenger) == ("060:0815", "060:0815-FV")
    assert [d.destination for d in answer.deliveries] == ["postfach"]
    checked = check_message((await rt.blobs.file(answer.blob_sha256)).read_bytes())
    assert checked.findings == ()
    assert fvdaten.read_antwort(checked).codes() == (fvdaten.ERFOLG,)


async def test_redelivery_journals_no_second_answer(
    rt: Runtime, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """The same request delivered twice (a crash before the outcome) gives one answer."""
    data, prozess_id = request_container(tmp_path, pdf_bytes)
    item = await rt.outbound(data, kind="container")

    await rt.destination.deliver(item)
    await rt.destination.deliver(item.model_copy(update={"attempt": 2}))

    assert len(await rt.answers(prozess_id)) == 1


async def test_export_answer_is_a_container_with_the_document(
    rt: Runtime, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0631's answer is a container carrying the Dokument's PDF bit-identical."""
    data, _ = request_container(tmp_path, pdf_bytes)
    await rt.destination.deliver(await rt.outbound(data, kind="container"))
    export = fvdaten.build_primaerdokument_exportieren_0631("3.1.0", fv.DOKUMENT_UUID, fv.kopf())
    prozess_id = check_message(export).read().kopf.prozess_id

    await rt.destination.deliver(await rt.outbound(export, kind="message"))

    (answer,) = await rt.answers(prozess_id)
    report = read_container(await rt.blobs.file(answer.blob_sha256))
    stored = [e for e in report.entries if e.role == "unreferenced"]
    sent = fv.documents_of(fv.erstellen("3.1.0", fv.akte()), pdf_bytes)
    assert report.valid
    assert len(stored) == 1
    assert stored[0].sha256 == delivery_support.sha256(next(iter(sent.values())))


async def test_request_without_a_route_back_is_a_permanent_failure_that_keeps_the_dms_work(
    tmp_path: Path, pdf_bytes: bytes
) -> None:
    """No route for the 0630: the delivery fails permanently, naming the route; the Akte stays."""
    data, _ = request_container(tmp_path, pdf_bytes)
    async for rt in runtime(tmp_path, route_back=False):
        item = await rt.outbound(data, kind="container")

        with pytest.raises(PermanentDeliveryError, match="route for nachrichtentyp 0630"):
            await rt.destination.deliver(item)

        assert await rt.destination.port.locate(fv.AKTE_UUID) is not None


async def test_a_message_that_is_no_fvdaten_request_is_refused(rt: Runtime) -> None:
    """A 0401 routed to the fvdaten destination fails permanently, pointing at the route."""
    abgabe = delivery_support.abgabe()

    with pytest.raises(PermanentDeliveryError, match="answers FVDaten requests"):
        await rt.destination.deliver(await rt.outbound(abgabe.container, kind="container"))


async def test_dms_down_is_transient_and_journals_nothing(
    rt: Runtime, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """With the DMS folder gone a 0604 fails transiently and no answer is journaled."""
    data, prozess_id = request_container(tmp_path, pdf_bytes)
    rt.dms.rmdir()

    with pytest.raises(TransientDeliveryError):
        await rt.destination.deliver(await rt.outbound(data, kind="container"))

    assert await rt.answers(prozess_id) == []


async def test_a_request_asking_for_empfangsbestaetigung_gets_a_0629_before_the_0630(
    rt: Runtime, tmp_path: Path
) -> None:
    """With Empfangsbestaetigung 1 the node journals a valid 0629 first, then the 0630."""
    xml = fvdaten.build_systemstatus_abfragen_0625("3.0.0", 1, fv.kopf(empfangsbestaetigung=True))
    prozess_id = check_message(xml).read().kopf.prozess_id

    await rt.destination.deliver(await rt.outbound(xml, kind="message"))

    codes = [m.nachrichtentyp for m in await rt.journal.process(prozess_id)]
    (empfang,) = [m for m in await rt.journal.process(prozess_id) if m.nachrichtentyp == "0629"]
    assert codes == ["0629", "0630"]
    assert check_message((await rt.blobs.file(empfang.blob_sha256)).read_bytes()).findings == ()


@pytest.mark.parametrize("version", ["2.3.0", "2.4.0", "3.0.0"])
async def test_answer_to_an_older_version_is_valid_in_that_version(
    rt: Runtime, tmp_path: Path, pdf_bytes: bytes, version: str
) -> None:
    """A 0604 in 2.3.0, 2.4.0 or 3.0.0 is answered with a schema-valid 0630 of that version."""
    xml = fv.erstellen(version, fv.akte())
    path, _ = write_container(tmp_path / "request", xml, fv.documents_of(xml, pdf_bytes))
    prozess_id = check_message(xml).read().kopf.prozess_id

    await rt.destination.deliver(await rt.outbound(path.read_bytes(), kind="container"))

    (answer,) = await rt.answers(prozess_id)
    checked = check_message((await rt.blobs.file(answer.blob_sha256)).read_bytes())
    assert checked.findings == ()
    assert checked.detected.version == version
    assert fvdaten.read_antwort(checked).erfolgreich


async def test_a_redelivery_whose_answer_changed_keeps_the_first_answer(
    rt: Runtime, tmp_path: Path
) -> None:
    """A 0625 redelivered after the DMS went down builds other bytes; the first answer stands."""
    xml = fv.REQUESTS["0625"]("3.1.0")
    prozess_id = check_message(xml).read().kopf.prozess_id
    item = await rt.outbound(xml, kind="message")
    await rt.destination.deliver(item)
    rt.dms.rmdir()

    await rt.destination.deliver(item.model_copy(update={"attempt": 2}))

    (answer,) = await rt.answers(prozess_id)
    antwort = fvdaten.read_antwort(
        check_message((await rt.blobs.file(answer.blob_sha256)).read_bytes())
    )
    assert antwort.codes() == (fvdaten.ERFOLG,)
