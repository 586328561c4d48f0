"""DMS import throughput of the dmsin adapter against the bare SOAP calls it makes.

The simulator (``ikz-gateway dev dms-sim``, the unchanged dmsin WSDL from
``../shared`` or ``$IKZ_DMSIN_WSDL``) runs as its own process on 127.0.0.1, so
its work does not share the interpreter with the side being measured. The corpus
is one container shape, built with the project's builders: an Akte with
``VORGAENGE`` Vorgänge × ``DOKUMENTE`` Dokumente, each with one primary document
of incompressible bytes (like the compressed streams of a PDF), sizes spread
log-uniformly between 200 kB and 2 MB with a fixed seed. Every round imports a
fresh copy (new UUIDs, new bytes), so nothing is found and everything created.

* adapter: ``DmsImport.import_message`` as the delivery worker calls it — blob
  check, container plan, and per object a search by UUID and a create, per
  document ``CreateContentObjectGI`` and (``verify_readback``, the default) the
  read back; zeep in worker threads.
* bare: the very SOAP requests the adapter sent for one container, recorded once
  through a forwarding proxy before the measurement, posted again in the same
  order with one reused aiohttp session. No zeep, no base64 encoding, no
  container reading, no hashing: what remains is the simulator's and HTTP's cost
  for the same calls.

The two sides alternate, one container per round, until the rounds are done;
each side's rate is its total documents (and document megabytes) over its total
time. ``ratio = adapter / bare`` is the share of the bare rate the adapter keeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adapters.dms.destination import DmsImport
from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from contracts.builders import AkteSpec, DokumentSpec, VorgangSpec, primaerdokument_name
from contracts.config import DmsDestination, DmsinConfig
from contracts.delivery import Outbound
from gateway import demo_data, demo_dms, logs

VORGAENGE = 4
DOKUMENTE = 5
MIN_SIZE = 200_000
MAX_SIZE = 2_000_000
AKTENPLAN = "63 Bauaufsicht"


@dataclass(frozen=True)
class Corpus:
    """One container to import: where it is, and what it carries."""

    path: Path
    sha256: str
    size: int
    prozess_id: str
    documents: int
    document_bytes: int


@dataclass(frozen=True)
class Recorded:
    """One SOAP request as the adapter sent it."""

    headers: dict[str, str]
    body: bytes


def run(quick: bool) -> Iterator[dict[str, Any]]:
    """Measure adapter and bare import throughput; yield the result lines."""
    # The adapter logs every object it creates; the JSON lines must stay alone on stdout.
    logs.configure("WARNING")
    yield from asyncio.run(_run(quick))


async def _run(quick: bool) -> list[dict[str, Any]]:
    rounds = 2 if quick else 10
    wsdl = demo_dms.find_wsdl(None)
    sizes = _sizes(VORGAENGE * DOKUMENTE)
    with tempfile.TemporaryDirectory(prefix="ikz-bench-dms-") as tmp:
        folder = Path(tmp)
        # One container for the recording plus one per round and side: built first,
        # so building never counts.
        corpus = [_container(folder / f"c{i}", sizes, seed=i) for i in range(rounds + 1)]
        async with _simulator(wsdl, folder / "sim") as (url, eintrag):
            recorded = await _record(url, eintrag, corpus[0])
            destination = _destination(url, eintrag)
            adapter_s = bare_s = 0.0
            async with aiohttp.ClientSession() as session:
                await _replay(session, url, recorded)  # warm the session and the store
                for container in corpus[1:]:
                    adapter_s += await _timed_import(destination, container)
                    bare_s += await _timed_replay(session, url, recorded)
            await destination.close()
    documents = rounds * corpus[0].documents
    megabytes = sum(c.document_bytes for c in corpus[1:]) / 1e6
    # The bare side sends the recorded container's documents each round.
    bare_megabytes = rounds * corpus[0].document_bytes / 1e6
    shape = (
        f"{rounds} containers of 1 Akte x {VORGAENGE} Vorgänge x {DOKUMENTE} Dokumente, "
        f"{corpus[0].documents} documents of {MIN_SIZE // 1000} kB-{MAX_SIZE // 1_000_000} MB "
        f"({corpus[0].document_bytes / 1e6:.1f} MB) each; {len(recorded)} SOAP calls per "
        "container (search + create per object, create + read back per document)"
    )
    note = (
        f"{shape}; MB = 10^6 bytes of documents; adapter = DmsImport over zeep (SOAP 1.1, "
        "verify_readback on), bare = the "
        "adapter's recorded requests posted again with aiohttp; simulator in its own process; "
        "target null (informational)"
    )
    return [
        _line(
            "dms_import_documents", documents / adapter_s, documents / bare_s, "documents/s", note
        ),
        _line("dms_import_megabytes", megabytes / adapter_s, bare_megabytes / bare_s, "MB/s", note),
    ]


def _line(name: str, value: float, baseline: float, unit: str, note: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "baseline": round(baseline, 2),
        "ratio": round(value / baseline, 3),
        "target": None,
        "note": note,
    }


# --------------------------------------------------------------------------- corpus


def _sizes(count: int) -> list[int]:
    """Document sizes, log-uniform between MIN_SIZE and MAX_SIZE; the same every run."""
    draw = random.Random(4711)
    ratio = MAX_SIZE / MIN_SIZE
    return [int(MIN_SIZE * ratio ** draw.random()) for _ in range(count)]


def _container(folder: Path, sizes: list[int], *, seed: int) -> Corpus:
    """A fresh 0401 container: new UUIDs, distinct incompressible documents."""
    draw = random.Random(seed)
    documents: dict[str, bytes] = {}
    sizes_left = iter(sizes)

    def dokument(number: int) -> DokumentSpec:
        name = primaerdokument_name(f"Dokument_{number}.pdf")
        documents[name] = draw.randbytes(next(sizes_left))
        return DokumentSpec.with_file(name, betreff=f"Dokument {number}")

    akte = AkteSpec(
        betreff="Bauantrag Benchmark",
        kennzeichen="63.1-2026/0001",
        vorgaenge=tuple(
            VorgangSpec(
                betreff=f"Vorgang {v}",
                dokumente=tuple(dokument(v * DOKUMENTE + d) for d in range(DOKUMENTE)),
            )
            for v in range(VORGAENGE)
        ),
    )
    xml = builders.build_abgabe_0401(
        "3.1.0", [akte], absender=demo_data.KOMMUNE_A, empfaenger=demo_data.KOMMUNE_B
    )
    path, _ = write_container(folder, xml, documents)
    data = path.read_bytes()
    prozess_id = re.match(r"[0-9a-fA-F-]{36}", path.name)
    return Corpus(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        prozess_id=prozess_id.group(0) if prozess_id else path.stem,
        documents=len(documents),
        document_bytes=sum(len(d) for d in documents.values()),
    )


def _outbound(container: Corpus) -> Outbound:
    return Outbound(
        message_id=container.sha256[:32],
        attempt=1,
        blob_path=container.path,
        blob_sha256=container.sha256,
        size=container.size,
        content_kind="container",
        prozess_id=container.prozess_id,
        nachrichtentyp="0401",
        message_element="Abgabe.Abgabe.0401",
    )


# --------------------------------------------------------------------------- simulator


@asynccontextmanager
async def _simulator(wsdl: Path, data: Path) -> AsyncIterator[tuple[str, str]]:
    """``ikz-gateway dev dms-sim`` in its own process; its URL and Aktenplaneintrag."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway", "dev", "dms-sim"),
            *("--port", "0", "--wsdl", str(wsdl), "--data", str(data), "--aktenplan", AKTENPLAN),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        facts: dict[str, str] = {}
        assert process.stdout is not None
        while "wsdl" not in facts:
            line = await asyncio.to_thread(process.stdout.readline)
            if not line:
                raise RuntimeError(f"the DMS simulator ended with code {process.wait()}")
            key, _, value = line.strip().partition(" ")
            facts[key] = value
        yield facts["url"], facts["aktenplan"].split(" ", 1)[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def _destination(url: str, eintrag: str, endpoint: str | None = None) -> DmsImport:
    config = DmsDestination(
        type="dms",
        backend="dmsin",
        aktenplan_default=eintrag,
        dmsin=DmsinConfig(wsdl=url + "?wsdl", endpoint=endpoint, userlogin="svc-ikz-bench"),
    )
    return DmsImport("dms-bench", config)


# --------------------------------------------------------------------------- the two sides


async def _timed_import(destination: DmsImport, container: Corpus) -> float:
    start = time.perf_counter()
    ergebnis = await destination.import_message(_outbound(container))
    elapsed = time.perf_counter() - start
    if ergebnis.inhalte_angelegt != container.documents:
        raise RuntimeError(f"imported {ergebnis.inhalte_angelegt} of {container.documents}")
    return elapsed


async def _timed_replay(session: aiohttp.ClientSession, url: str, calls: list[Recorded]) -> float:
    start = time.perf_counter()
    await _replay(session, url, calls)
    return time.perf_counter() - start


async def _replay(session: aiohttp.ClientSession, url: str, calls: list[Recorded]) -> None:
    for call in calls:
        async with session.post(url, data=call.body, headers=call.headers) as response:
            answer = await response.read()
            # The adapter checks every answer; the bare side checks at least this.
            if response.status != 200 or b"Fault>" in answer:
                raise RuntimeError(f"the simulator refused a replayed call: {answer[:300]!r}")


async def _record(url: str, eintrag: str, container: Corpus) -> list[Recorded]:
    """The requests the adapter sends for ``container``, through a forwarding proxy."""
    recorded: list[Recorded] = []
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() in ("content-type", "soapaction")
            }
            recorded.append(Recorded(headers=headers, body=body))
            async with session.post(url, data=body, headers=headers) as answer:
                return web.Response(
                    body=await answer.read(),
                    status=answer.status,
                    headers={"Content-Type": answer.headers["Content-Type"]},
                )

        app = web.Application(client_max_size=1024**3)
        app.router.add_post("/", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            proxy = f"http://127.0.0.1:{runner.addresses[0][1]}/"
            destination = _destination(url, eintrag, endpoint=proxy)
            try:
                await _timed_import(destination, container)
            finally:
                await destination.close()
        finally:
            await runner.cleanup()
    return recorded
