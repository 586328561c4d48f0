"""XTA 2 ``sendMessage`` with 1 MB MTOM attachments against HTTP intake of the same payloads.

A ``serve`` subprocess (SQLite journal, filesystem destination) serves both
``POST /v1/messages`` and ``[xta]``. ``N`` distinct 0401 containers of about
1 MB each (one 1 MiB document of random bytes, so nothing compresses) are handed
in by 4 concurrent clients, each a thread with its own client:

* baseline: HTTP intake, ``requests.post`` streaming the container file;
* value: a zeep client built from XTA.wsdl with the gateway's MTOM transport,
  ``sendMessage`` with ``MessageMetaData`` and the container as MTOM part.

Both sides are measured twice, alternating (HTTP, XTA, HTTP, XTA), each with
its own containers, and the rates are summed over both rounds. The time runs
from the first request until the last was acknowledged (journaled: intake's
guarantee), so both include parsing, XSD validation, blob fsync and the journal
commit. ``ratio`` = XTA rate / HTTP rate; target ≥ 0.5 (XTA costs at most twice
what HTTP does). XTA.wsdl comes from ``$IKZ_XTA_WSDL`` or ``../shared``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.serve import TOKEN, ServeProcess, free_port

MIB = 1024 * 1024
CLIENTS = 4
_ROOT = Path(__file__).resolve().parent.parent
_NS = "{http://xoev.de/transport/xta/211}"


def run(quick: bool) -> Iterator[dict[str, Any]]:
    """Run the comparison; one result line."""
    count = 16 if quick else 80
    wsdl = Path(os.environ.get("IKZ_XTA_WSDL", _ROOT.parent / "shared/wsdl/xta2/XTA.wsdl"))
    with tempfile.TemporaryDirectory(prefix="ikz-bench-xta-") as tmp:
        yield _compare(Path(tmp), wsdl.resolve(), count)


def _containers(folder: Path, count: int) -> list[Path]:
    """``count`` distinct 0401 containers of about 1 MB (one random 1 MiB document each)."""
    from adapters.xdomea import builders
    from adapters.xdomea.container import write_container
    from bench import corpus
    from contracts.builders import AkteSpec, DokumentSpec, primaerdokument_name

    paths = []
    for index in range(count):
        name = primaerdokument_name(f"anlage-{index}.pdf")
        akte = AkteSpec(betreff="Anlage", dokumente=(DokumentSpec.with_file(name),))
        xml = builders.build_abgabe_0401(
            "3.1.0",
            [akte],
            absender=corpus.ABSENDER,
            empfaenger=corpus.EMPFAENGER,
            prozess_id=str(uuid.uuid4()),
        )
        path, _ = write_container(folder / str(index), xml, {name: os.urandom(MIB)})
        paths.append(path)
    return paths


def _config(home: Path, port: int, wsdl: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    (home / "gateway.toml").write_text(
        f"""
[node]
id = "landesarchiv"
behoerdenkennung = "LA:LAB"

[storage]
journal = "sqlite:///data/journal.db"
blobs = "data/blobs"

[http]
host = "127.0.0.1"
port = {port}

[worker]
concurrency = 8
poll_interval_seconds = 0.2

[xta]
wsdl = "{wsdl}"

[[partners]]
id = "beispielstadt"
behoerdenkennung = "060:0815"
token_sha256 = "{digest}"

[destinations.archiv]
type = "filesystem"
directory = "transfer"
naming = "short"

[[routes]]
empfaenger = "LA:LAB"
destination = "archiv"
""",
        encoding="utf-8",
    )
    (home / "transfer").mkdir(exist_ok=True)


def _compare(folder: Path, wsdl: Path, count: int) -> dict[str, Any]:
    port = free_port()
    home = folder / "gateway"
    _config(home, port, wsdl)
    batches = [_containers(folder / f"batch-{i}", count) for i in range(4)]
    size = sum(p.stat().st_size for p in batches[0]) / count
    server = ServeProcess(home, port=port)
    try:
        import asyncio

        asyncio.run(server.wait_healthy())
        url = f"http://127.0.0.1:{port}"
        http_seconds = xta_seconds = 0.0
        for round_ in range(2):
            http_seconds += _timed(batches[2 * round_], lambda: _http_sender(url))
            xta_seconds += _timed(batches[2 * round_ + 1], lambda: _xta_sender(url, wsdl))
    finally:
        server.stop()
    http_rate = 2 * count / http_seconds
    xta_rate = 2 * count / xta_seconds
    return {
        "name": "xta_send_mtom_1mb",
        "value": round(xta_rate, 2),
        "unit": f"messages/s ({size / MIB:.2f} MiB each, {CLIENTS} clients)",
        "baseline": round(http_rate, 2),
        "ratio": round(xta_rate / http_rate, 3),
        "target": 0.5,
    }


Sender = Callable[[Path], None]


def _timed(paths: list[Path], make: Callable[[], Sender]) -> float:
    """Seconds for ``CLIENTS`` threads, each with its own sender, to hand in ``paths``."""
    senders = [make() for _ in range(CLIENTS)]
    chunks = [paths[i::CLIENTS] for i in range(CLIENTS)]

    def work(index: int) -> None:
        for path in chunks[index]:
            senders[index](path)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(work, range(CLIENTS)))
    return time.perf_counter() - started


def _http_sender(url: str) -> Sender:
    import requests

    session = requests.Session()

    def send(path: Path) -> None:
        with path.open("rb") as body:
            answer = session.post(
                f"{url}/v1/messages",
                data=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/zip"},
            )
        if answer.status_code != 202:
            raise RuntimeError(f"HTTP intake answered {answer.status_code}: {answer.text}")

    return send


def _xta_sender(url: str, wsdl: Path) -> Sender:
    import zeep
    from zeep.wsse.username import UsernameToken

    from adapters.xta import metadata
    from adapters.xta.mtom import MtomTransport

    transport = MtomTransport()
    client = zeep.Client(str(wsdl), transport=transport, wsse=UsernameToken("beispielstadt", TOKEN))
    send_port = client.create_service(f"{_NS}sendXTAHttpsBinding", f"{url}/xta")

    def send(path: Path) -> None:
        meta = metadata.build(
            metadata.MetaData(
                message_id=f"urn:bench:{uuid.uuid4()}",
                author="060:0815",
                reader="LA:LAB",
                nachrichtentyp="0401",
            )
        )
        payload = transport.attach(path, content_type="application/zip")
        send_port.sendMessage(
            ContentContainer={"Message": {"_value_1": payload, "contentType": "application/zip"}},
            _soapheaders=[meta],
        )

    return send
