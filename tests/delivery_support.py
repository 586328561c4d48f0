"""Shared pieces of the delivery tests: real messages, stored blobs, a peer gateway stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from contracts.delivery import Outbound
from contracts.journal import NewMessage
from gateway import demo_data
from gateway.blobs import BlobStore
from gateway.journal.store import Journal


@dataclass(frozen=True)
class Abgabe:
    """A real 0401 Abgabe from Gemeinde Adorf to Stadt Bestadt: the container and its XML."""

    prozess_id: str
    xml: bytes
    container: bytes


def abgabe(version: str = "3.1.0") -> Abgabe:
    """A fresh Abgabe (new ProzessID) with the demo Bauakte and its three PDFs."""
    prozess_id = str(uuid.uuid4())
    akte, documents = demo_data.bauakte()
    xml = builders.build_abgabe_0401(
        version,
        [akte],
        absender=demo_data.KOMMUNE_A,
        empfaenger=demo_data.KOMMUNE_B,
        prozess_id=prozess_id,
    )
    with tempfile.TemporaryDirectory() as folder:
        path, _ = write_container(Path(folder), xml, documents)
        return Abgabe(prozess_id=prozess_id, xml=xml, container=path.read_bytes())


async def put_blob(blobs: BlobStore, data: bytes) -> str:
    """Store ``data`` in the blob store the way intake does; its SHA-256."""

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    staged = await blobs.stage(chunks(), max_bytes=len(data) + 1)
    await blobs.commit(staged)
    return staged.sha256


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


async def outbound(
    blobs: BlobStore, data: bytes, *, prozess_id: str, kind: str = "container"
) -> Outbound:
    """An ``Outbound`` for ``data`` stored as a blob, as the worker would build it."""
    digest = await put_blob(blobs, data)
    return Outbound(
        message_id=str(uuid.uuid4()),
        attempt=1,
        blob_path=blobs.path(digest),
        blob_sha256=digest,
        size=len(data),
        content_kind=kind,
        prozess_id=prozess_id,
        nachrichtentyp="0401",
        message_element="Abgabe.Abgabe.0401",
    )


async def accept(
    journal: Journal,
    blobs: BlobStore,
    message: Abgabe,
    destinations: list[str],
    *,
    kind: str = "container",
    inline: bytes | None = None,
) -> str:
    """Journal ``message`` for ``destinations`` with its bytes in the blob store; its id.

    Args:
        inline: keep these bytes in the journal instead (intake's way for a small
            message), under the SHA-256 of the message's bytes; no blob file is written.
    """
    data = message.container if kind == "container" else message.xml
    digest = sha256(data) if inline is not None else await put_blob(blobs, data)
    accepted = await journal.accept(
        NewMessage(
            partner_id="kommune-a",
            channel="http",
            idempotency_key=None,
            blob_sha256=digest,
            size=len(data),
            content_kind=kind,
            file_name=None,
            prozess_id=message.prozess_id,
            nachrichtentyp="0401",
            message_element="Abgabe.Abgabe.0401",
            xdomea_version="3.1.0",
            absender="060:0815",
            empfaenger="060:4711",
        ),
        destinations,
        content=inline,
    )
    return accepted.message_id


# --------------------------------------------------------------------------- peer stand-in

Answer = Callable[[], web.Response]


def answer(status: int = 202, **headers: str) -> Answer:
    """An answer with ``status`` and an accepted-style JSON body."""
    return lambda: web.json_response(
        {"id": str(uuid.uuid4()), "status_url": "/v1/messages/x"}, status=status, headers=headers
    )


def problem(status: int, detail: str, title: str = "Refused", **headers: str) -> Answer:
    """An RFC 9457 problem answer."""
    return lambda: web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    sha256: str
    size: int
    pieces: int


@dataclass
class Receiver:
    """A peer gateway's ``POST /v1/messages`` on 127.0.0.1, answering from a script.

    Answers are taken in order from ``answers``; when it is empty every request gets
    ``default``. With ``gate`` set, each request waits for it after reading the body.
    """

    url: str = ""
    answers: deque[Answer] = field(default_factory=deque)
    default: Answer = field(default_factory=answer)
    gate: asyncio.Event | None = None
    requests: list[Received] = field(default_factory=list)
    broken: int = 0
    active: int = 0
    max_active: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers``, in order."""
        self.answers.extend(answers)

    async def handle(self, request: web.Request) -> web.Response:
        """Read the body as a stream, record it, answer."""
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            digest, size, pieces = hashlib.sha256(), 0, 0
            try:
                async for chunk in request.content.iter_any():
                    digest.update(chunk)
                    size += len(chunk)
                    pieces += 1
            except Exception:
                self.broken += 1  # the sender aborted the body
                raise
            self.requests.append(Received(dict(request.headers), digest.hexdigest(), size, pieces))
            self.arrived.set()
            if self.gate is not None:
                await self.gate.wait()
            return (self.answers.popleft() if self.answers else self.default)()
        finally:
            self.active -= 1


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    """A ``Receiver`` served on 127.0.0.1 (any free port) for the duration of the block."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/v1/messages", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/v1/messages"))
    try:
        yield receiver
    finally:
        if receiver.gate is not None:
            receiver.gate.set()
        await server.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 15.0
) -> None:
    """Wait until ``check()`` is true; fail naming ``what`` if it never becomes true.

    The timeout only ends a hanging test; no test asserts on how long anything took.
    """
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"gave up waiting until {what}") from None
