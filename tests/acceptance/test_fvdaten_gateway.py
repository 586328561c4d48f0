"""A Fachverfahren files a Dokument into the DMS through a real gateway and gets its answer.

The gateway (``serve``) and the dmsin simulator (``dev dms-sim``) run as subprocesses
on 127.0.0.1. The Fachverfahren posts an FVDaten 0604 container with a real PDF/A
over HTTP intake; the gateway's ``fvdaten`` destination files it into the DMS and
submits the 0630 through its own intake, addressed to the Fachverfahren, whose
route is a transfer folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.dms import dmsin_names as names
from adapters.xdomea import fvdaten
from adapters.xdomea.container import write_container
from adapters.xdomea.validation import check_message
from tests import fvdaten_support as fv
from tests.acceptance.processes import (
    GatewayProcess,
    environment,
    free_port,
    http_post,
    token_digest,
    wait_until,
)
from tests.acceptance.test_cli_dms import SimProcess

pytestmark = pytest.mark.slow

TOKEN = "token-of-the-bau-fachverfahren"

CONFIG = """
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

[[partners]]
id = "bau-fachverfahren"
behoerdenkennung = "060:0815-FV"
token_sha256 = "{digest}"

[destinations.fvdaten]
type = "fvdaten"
backend = "dmsin"
fachverfahren = ["060:0815-FV"]
initial_backoff_seconds = 0.2
max_backoff_seconds = 1.0

[destinations.fvdaten.dmsin]
wsdl = "{wsdl}"
userlogin = "svc-ikz-gateway"

[destinations.fvdaten.aktenplan]
"63" = "{aktenplan}"

[destinations.fv-postfach]
type = "filesystem"
directory = "postfach"

[[routes]]
empfaenger = "060:0815"
nachrichtentyp = ["0602", "0604", "0605", "0608", "0609", "0610", "0625", "0631"]
destination = "fvdaten"

[[routes]]
empfaenger = "060:0815-FV"
destination = "fv-postfach"
"""


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[GatewayProcess, SimProcess]]:
    """The simulator and the gateway filing into it; both stopped at the end."""
    sim = SimProcess(tmp_path / "sim")
    gateway = GatewayProcess(home=tmp_path / "gateway", port=free_port(), env=environment())
    try:
        aktenplan = sim.facts["aktenplan"].partition(" ")[0]
        gateway.write_config(
            CONFIG.format(
                port=gateway.port,
                digest=token_digest(TOKEN),
                wsdl=sim.facts["wsdl"],
                aktenplan=aktenplan,
            )
        )
        (gateway.home / "postfach").mkdir()
        gateway.start()
        yield gateway, sim
    finally:
        gateway.kill()
        if sim.process.poll() is None:
            sim.stop()


def test_fvdaten_0604_with_a_pdf_lands_bit_identical_and_is_answered(
    running: tuple[GatewayProcess, SimProcess], tmp_path: Path, pdf_bytes: bytes
) -> None:
    """The PDF/A in the DMS has the sent SHA-256; a valid, correlated 0630 reaches the sender."""
    gateway, sim = running
    xml = fv.erstellen("3.1.0", fv.akte())
    (name,) = check_message(xml).read().dateinamen()
    container, _ = write_container(tmp_path / "out", xml, {name: pdf_bytes})
    prozess_id = check_message(xml).read().kopf.prozess_id

    status, body = http_post(
        f"{gateway.url}/v1/messages",
        container.read_bytes(),
        token=TOKEN,
        content_type="application/zip",
    )

    assert status == 202, body
    postfach = gateway.home / "postfach"
    wait_until(lambda: any(postfach.iterdir()), timeout=60, what="the 0630 in the Postfach")
    (delivered,) = postfach.iterdir()
    answer = check_message(delivered.read_bytes())
    antwort = fvdaten.read_antwort(answer)
    kopf = answer.read().kopf
    contents = [o for o in sim.objects() if o["objclass"] == names.INHALT]
    assert answer.findings == ()
    assert antwort.codes() == (fvdaten.ERFOLG,)
    assert antwort.rueckgaben[0].idsgo == fv.AKTE_UUID
    assert kopf.prozess_id == prozess_id
    assert kopf.empfaenger == fv.FACHVERFAHREN
    assert [c["sha256"] for c in contents] == [hashlib.sha256(pdf_bytes).hexdigest()]
