"""A Fachverfahren files a Dokument over XTA 2 and fetches the gateway's answer from its message box.

Done means for issue 8: a zeep client built from the unchanged XTA.wsdl sends an
FVDaten 0604 with a PDF as MTOM attachment (with the gateway's MTOM transport),
a plain zeep client sends one base64-inline; the document lands in the dmsin
simulator bit-identical, and the client fetches the 0630 with getStatusList and
getMessage, then closes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.dms import dmsin_names as names
from adapters.xdomea import fvdaten
from adapters.xdomea.container import write_container
from adapters.xdomea.validation import check_message
from contracts.config import (
    FvdatenDestination,
    GatewayConfig,
    NodeConfig,
    PartnerConfig,
    RouteConfig,
    StorageConfig,
    WorkerConfig,
    XtaMsgBoxDestination,
    XtaServerConfig,
)
from gateway.config import token_digest
from tests import fvdaten_support as fv
from tests.delivery_support import eventually
from tests.dms_support import Sim, dmsin_config, running_sim
from tests.xta_support import WSDL, Client, Gateway, call, meta, new_message_id, running_gateway

TOKEN = "token-of-the-bau-fachverfahren"
FVDATEN_CODES = ("0602", "0604", "0605", "0608", "0609", "0610", "0625", "0631")


def _config(tmp_path: Path, sim: Sim) -> GatewayConfig:
    return GatewayConfig(
        node=NodeConfig(id="stadt-musterstadt", behoerdenkennung="060:0815"),
        storage=StorageConfig(
            journal=f"sqlite:///{tmp_path / 'journal.db'}", blobs=tmp_path / "blobs"
        ),
        worker=WorkerConfig(poll_interval_seconds=0.05),
        partners=(
            PartnerConfig(
                id="bau-fachverfahren",
                behoerdenkennung="060:0815-FV",
                token_sha256=token_digest(TOKEN),
            ),
        ),
        destinations={
            "fvdaten": FvdatenDestination(
                type="fvdaten",
                fachverfahren=("060:0815-FV",),
                backend="dmsin",
                dmsin=dmsin_config(sim),
                aktenplan={"63": sim.aktenplaneintrag},
            ),
            "fv-postfach": XtaMsgBoxDestination(type="xta-msgbox", partner="bau-fachverfahren"),
        },
        routes=(
            RouteConfig(empfaenger="060:0815", nachrichtentyp=FVDATEN_CODES, destination="fvdaten"),
            RouteConfig(empfaenger="060:0815-FV", destination="fv-postfach"),
        ),
        xta=XtaServerConfig(wsdl=WSDL),
    )


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Sim]]:
    """The dmsin simulator and the gateway with [xta] filing into it."""
    async with (
        running_sim(tmp_path / "sim") as sim,
        running_gateway(_config(tmp_path / "gateway", sim)) as gateway,
    ):
        yield gateway, sim


def _request(tmp_path: Path, pdf: bytes) -> tuple[bytes, str, Path]:
    """The 0604 XML, its document's file name and the request as a container."""
    xml = fv.erstellen("3.1.0", fv.akte())
    (name,) = check_message(xml).read().dateinamen()
    container, _ = write_container(tmp_path / "out", xml, {name: pdf})
    return xml, name, container


async def _answer(xta: Client) -> bytes:
    """Wait for the one message in the box, fetch it with getMessage and close it."""

    async def waiting() -> bool:
        listing = await call(xta.box.getStatusList, maxListItems=10)
        return bool(listing.body.MsgAttributes)

    await eventually(waiting, what="the 0630 waits in the Fachverfahren's box", timeout=60)
    listing = await call(xta.box.getStatusList, maxListItems=10)
    (entry,) = listing.body.MsgAttributes
    xta_id = str(entry.MessageID._value_1)
    fetched = await call(xta.box.getMessage, MsgSelector={"MessageID": [xta_id]})
    request_id = fetched.header.FetchResponseHeader.MsgBoxRequestID
    await call(xta.box.close, MsgBoxRequestID=request_id, LastMsgReceived=[{"_value_1": xta_id}])
    after = await call(xta.box.getStatusList, maxListItems=10)
    assert after.body.MsgAttributes == []
    return bytes(fetched.body.ContentContainer.Message._value_1)


async def _check(sim: Sim, answer: bytes, xml: bytes, pdf: bytes) -> None:
    checked = check_message(answer)
    antwort = fvdaten.read_antwort(checked)
    contents = [o for o in await sim.objects() if o["objclass"] == names.INHALT]
    assert checked.findings == ()
    assert checked.detected.typ.code == "0630"
    assert antwort.codes() == (fvdaten.ERFOLG,)
    assert checked.read().kopf.prozess_id == check_message(xml).read().kopf.prozess_id
    assert [c["sha256"] for c in contents] == [hashlib.sha256(pdf).hexdigest()]


async def test_mtom_0604_with_the_pdf_as_attachment_lands_bit_identical_and_is_answered(
    setup: tuple[Gateway, Sim], tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Message = the 0604 XML, Attachment = the PDF, both MTOM parts: filed, answered, fetched."""
    gateway, sim = setup
    xml, name, _ = _request(tmp_path, pdf_bytes)
    (tmp_path / "request.xml").write_bytes(xml)
    (tmp_path / name).write_bytes(pdf_bytes)
    xta = gateway.client(username="bau-fachverfahren", password=TOKEN)
    xta_id = await new_message_id(xta)
    message = {
        "_value_1": xta.attach(tmp_path / "request.xml", "application/xml"),
        "contentType": "application/xml",
        "filename": f"{check_message(xml).read().kopf.prozess_id}_0604.xml",
    }
    attachment = {
        "_value_1": xta.attach(tmp_path / name, "application/pdf"),
        "contentType": "application/pdf",
        "filename": name,
    }
    await call(
        xta.send.sendMessage,
        ContentContainer={"Message": message, "Attachment": [attachment]},
        _soapheaders=[meta(xta_id, "0604")],
    )
    await _check(sim, await _answer(xta), xml, pdf_bytes)


async def test_inline_0604_container_lands_bit_identical_and_is_answered(
    setup: tuple[Gateway, Sim], tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A plain zeep client sends the 0604 container base64-inline: filed, answered, fetched."""
    gateway, sim = setup
    xml, _, container = _request(tmp_path, pdf_bytes)
    xta = gateway.client(username="bau-fachverfahren", password=TOKEN, mtom=False)
    await call(
        xta.send.sendMessage,
        ContentContainer={
            "Message": {"_value_1": container.read_bytes(), "contentType": "application/zip"}
        },
        _soapheaders=[meta(await new_message_id(xta), "0604")],
    )
    await _check(sim, await _answer(xta), xml, pdf_bytes)
