"""``ikz-gateway demo --scenario xta``: a Fachverfahren files a Dokument over XTA 2.

One gateway (Stadt Musterstadt, 060:0815) serves ``[xta]`` and answers FVDaten
requests from the dmsin DMS simulator (started on 127.0.0.1 for the run). The
Bauamt's Fachverfahren (partner ``bau-fachverfahren``, 060:0815-FV) is a zeep
client built from the unchanged ``XTA.wsdl`` with the gateway's MTOM transport:

1. ``createMessageId``, then ``sendMessage`` of an FVDaten 0604 SGOErstellen: the
   message XML and the PDF travel as two MTOM parts (Message and Attachment);
2. the gateway packs them into a container, journals it, and its ``fvdaten``
   destination files the Akte with the PDF into the DMS and answers with a 0630
   through its own intake, routed to the Fachverfahren's ``xta-msgbox``;
3. the Fachverfahren polls ``getStatusList``, fetches the 0630 with ``getMessage``
   and ``close``s it; ``getTransportReport`` shows its 0604 as delivered.

It passes only when the PDF in the DMS has the SHA-256 that was sent and the
0630 arrived valid, correlated and successful. The XTA WSDL comes from
``--xta-wsdl``, ``$IKZ_XTA_WSDL`` or ``../shared/wsdl/xta2/XTA.wsdl``; the dmsin
WSDL as for ``--dms sim``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import zeep
from aiohttp import web
from zeep.wsse.username import UsernameToken

from adapters.dms import dmsin_names as names
from adapters.xdomea import fvdaten
from adapters.xdomea.validation import check_message
from adapters.xta import metadata
from adapters.xta.mtom import MtomTransport
from contracts.builders import AkteSpec, DokumentSpec, SendendesSystem, primaerdokument_name
from contracts.xdomea import Behoerdenkennung, Kontakt
from gateway import demo_dms
from gateway.app import build_app
from gateway.config import load_config, token_digest
from gateway.demo_data import simple_pdf
from gateway.errors import ConfigError

Echo = Callable[[str], None]

#: The environment variable that names XTA.wsdl.
WSDL_ENV = "IKZ_XTA_WSDL"
SHARED_WSDL = Path("shared") / "wsdl" / "xta2" / "XTA.wsdl"
_NS = "{http://xoev.de/transport/xta/211}"
_TOKEN_ENV = "IKZ_DEMO_FACHVERFAHREN_TOKEN"

FACHVERFAHREN = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="060", kennung="0815-FV"),
    institution="Stadt Musterstadt, Bauordnungsamt (Fachverfahren)",
)
DMS = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="060", kennung="0815"),
    institution="Stadt Musterstadt, DMS",
)

_CONFIG = """
[node]
id = "stadt-musterstadt"
behoerdenkennung = "060:0815"

[storage]
journal = "sqlite:///data/journal.db"
blobs = "data/blobs"

[http]
port = {port}

[worker]
poll_interval_seconds = 0.1

[xta]
wsdl = {xta_wsdl}

[[partners]]
id = "bau-fachverfahren"
behoerdenkennung = "060:0815-FV"
token_sha256 = "{digest}"

[destinations.fvdaten]
type = "fvdaten"
fachverfahren = ["060:0815-FV"]
backend = "dmsin"
aktenplan_default = "{aktenplaneintrag}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 2

[destinations.fvdaten.dmsin]
wsdl = "{dmsin_wsdl}"
userlogin = "svc-ikz-demo"

[destinations.fv-postfach]
type = "xta-msgbox"
partner = "bau-fachverfahren"

[[routes]]
empfaenger = "060:0815"
nachrichtentyp = ["0602", "0604", "0605", "0608", "0609", "0610", "0625", "0631"]
destination = "fvdaten"

[[routes]]
empfaenger = "060:0815-FV"
destination = "fv-postfach"
"""


def find_wsdl(given: Path | None) -> Path:
    """XTA.wsdl: ``--xta-wsdl``, else ``$IKZ_XTA_WSDL``, else ``../shared`` beside the project.

    Raises:
        ConfigError: no such file, with how to give one.
    """
    if given is not None:
        candidates = [given]
    elif os.environ.get(WSDL_ENV):
        candidates = [Path(os.environ[WSDL_ENV])]
    else:
        project = Path(__file__).resolve().parent.parent
        candidates = [project.parent / SHARED_WSDL, Path.cwd().parent / SHARED_WSDL]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ConfigError(
        f"XTA.wsdl is not at {candidates[0]}; give it with --xta-wsdl PATH or {WSDL_ENV}=PATH "
        "(the XTA 2 webservice WSDL, with its .xsd files beside it)"
    )


def run_xta_demo(workdir: Path, *, echo: Echo, xta_wsdl: Path, dms_wsdl: Path) -> bool:
    """Run the scenario in ``workdir``; whether every check passed."""
    return asyncio.run(_run(workdir, echo, xta_wsdl, dms_wsdl))


class _Checks:
    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.failures: list[str] = []

    def check(self, ok: bool, label: str, detail: str = "") -> bool:
        self.echo(f"  [{'ok  ' if ok else 'FAIL'}] {label}" + (f"  {detail}" if detail else ""))
        if not ok:
            self.failures.append(label)
        return ok


async def _run(workdir: Path, echo: Echo, xta_wsdl: Path, dms_wsdl: Path) -> bool:
    checks = _Checks(echo)
    folder = workdir / "stadt-musterstadt"
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    os.environ[_TOKEN_ENV] = token
    async with demo_dms.running_simulator(dms_wsdl, folder / "dms-sim") as sim:
        echo(f"  dmsin DMS simulator at {sim.url}")
        port = _free_port()
        path = folder / "gateway.toml"
        path.write_text(
            _CONFIG.format(
                port=port,
                xta_wsdl=json.dumps(str(xta_wsdl)),
                digest=token_digest(token),
                aktenplaneintrag=sim.aktenplaneintrag,
                dmsin_wsdl=sim.wsdl_url,
            ),
            encoding="utf-8",
        )
        config = load_config(path)
        app = await build_app(config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            url = f"http://127.0.0.1:{port}/xta"
            echo(f"  gateway {config.node.id} serves XTA 2 at {url} ({path})")
            pdf = simple_pdf("Baugenehmigung Lindenweg 3")
            xml, name = _request()
            echo("")
            echo("1. The Fachverfahren sends an FVDaten 0604 over XTA 2 (MTOM: XML + PDF)")
            result = await asyncio.to_thread(
                _fachverfahren, url, token, xta_wsdl, xml, name, pdf, echo
            )
            await _check(checks, sim, result, xml, pdf)
        finally:
            await runner.cleanup()
    echo("")
    if checks.failures:
        echo(f"FAILED: {', '.join(checks.failures)}")
        return False
    echo("PASSED: the PDF is in the DMS bit-identical and the 0630 was fetched from the box")
    return True


def _request() -> tuple[bytes, str]:
    """The 0604 SGOErstellen (one Akte, one Dokument) and its document's file name."""
    name = primaerdokument_name("baugenehmigung.pdf")
    akte = AkteSpec(
        betreff="Bauantrag Lindenweg 3",
        kennzeichen="63.01.05/2026",
        dokumente=(DokumentSpec.with_file(name, betreff="Baugenehmigung"),),
    )
    kopf = fvdaten.FVKopf(
        absender=FACHVERFAHREN,
        empfaenger=DMS,
        erstellerkennung="sachbearbeiter.mueller",
        sendendes_system=SendendesSystem(produktname="BauFV", version="4.2"),
    )
    xml = fvdaten.build_sgo_erstellen_0604(
        "3.1.0", [fvdaten.Erstellen(objekt=akte, fachverfahren_objekt_id="BV-2026-17")], kopf
    )
    return xml, name


def _fachverfahren(
    url: str, token: str, wsdl: Path, xml: bytes, name: str, pdf: bytes, echo: Echo
) -> dict[str, Any]:
    """The Fachverfahren's side, a plain zeep client (blocking; run in a thread)."""
    transport = MtomTransport()
    client = zeep.Client(  # type: ignore[no-untyped-call]
        str(wsdl),
        transport=transport,
        wsse=UsernameToken("bau-fachverfahren", token),  # type: ignore[no-untyped-call]
    )
    try:
        send = client.create_service(f"{_NS}sendXTAHttpsBinding", url)  # type: ignore[no-untyped-call]
        box = client.create_service(f"{_NS}msgBoxHttpsBinding", url)  # type: ignore[no-untyped-call]
        management = client.create_service(  # type: ignore[no-untyped-call]
            f"{_NS}managementHttpsBinding", url
        )
        xta_id = str(management.createMessageId()._value_1)
        prozess_id = check_message(xml).read().kopf.prozess_id
        message = {
            "_value_1": transport.attach(io.BytesIO(xml), content_type="application/xml"),
            "contentType": "application/xml",
            "filename": f"{prozess_id}_0604.xml",
        }
        attachment = {
            "_value_1": transport.attach(io.BytesIO(pdf), content_type="application/pdf"),
            "contentType": "application/pdf",
            "filename": name,
        }
        meta = metadata.build(
            metadata.MetaData(
                message_id=xta_id, author="060:0815-FV", reader="060:0815", nachrichtentyp="0604"
            )
        )
        send.sendMessage(
            ContentContainer={"Message": message, "Attachment": [attachment]}, _soapheaders=[meta]
        )
        echo(f"     sendMessage {xta_id}: accepted")
        deadline = time.monotonic() + 60
        waiting: list[Any] = []
        while time.monotonic() < deadline:
            waiting = list(box.getStatusList(maxListItems=10).body.MsgAttributes)
            if waiting:
                break
            time.sleep(0.2)
        if not waiting:
            return {"answer": None, "report": None}
        box_id = str(waiting[0].MessageID._value_1)
        echo(f"     getStatusList: {len(waiting)} message(s) waiting, the first {box_id}")
        fetched = box.getMessage(MsgSelector={"MessageID": [box_id]})
        answer = bytes(fetched.body.ContentContainer.Message._value_1)
        echo(f"     getMessage {box_id}: {len(answer)} bytes")
        box.close(
            MsgBoxRequestID=fetched.header.FetchResponseHeader.MsgBoxRequestID,
            LastMsgReceived=[{"_value_1": box_id}],
        )
        left = list(box.getStatusList(maxListItems=10).body.MsgAttributes)
        report = management.getTransportReport(xta_id)
        return {"answer": answer, "left": len(left), "status": int(report.MessageStatus.Status)}
    finally:
        transport.session.close()


async def _check(checks: _Checks, sim: Any, result: dict[str, Any], xml: bytes, pdf: bytes) -> None:
    checks.echo("")
    checks.echo("2. Checks")
    answer: bytes | None = result.get("answer")
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.url + "_control/objects") as response,
    ):
        objects = await response.json()
    contents = [o for o in objects if o["objclass"] == names.INHALT]
    sent = hashlib.sha256(pdf).hexdigest()
    checks.check(
        [c["sha256"] for c in contents] == [sent],
        "the PDF is in the DMS bit-identical",
        f"SHA-256 {sent[:16]}…",
    )
    if answer is None:
        checks.check(False, "a message waited in the Fachverfahren's box")
        return
    checked = check_message(answer)
    antwort = fvdaten.read_antwort(checked)
    asked = check_message(xml).read().kopf.prozess_id
    checks.check(
        checked.detected.typ.code == "0630" and not checked.findings,
        "it is a schema-valid 0630",
    )
    checks.check(checked.read().kopf.prozess_id == asked, "it answers the 0604's ProzessID", asked)
    checks.check(antwort.erfolgreich, "the DMS reports success", ", ".join(antwort.codes()))
    checks.check(result.get("left") == 0, "close removed it from the box")
    checks.check(result.get("status") == 1, "getTransportReport shows the 0604 delivered")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
