"""Gateways on a shared PostgreSQL journal, delivering to a counting receiver in the test.

Kommune B's gateway (060:4711) accepts bare messages from Kommune A and routes
them over an ``http`` destination to :class:`CountingReceiver`, an idempotent
peer served by the test process on loopback. Several ``serve`` processes can
share one configuration apart from their HTTP port: one journal database, one
blob folder.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from contracts.journal import MessageView
from gateway.journal.store import Journal
from tests.acceptance.processes import free_port, token_digest

TOKEN = "postgres-test-partner-token"
PEER_TOKEN = "postgres-test-peer-token"
PEER_TOKEN_ENV = "IKZ_TEST_POSTGRES_PEER_TOKEN"
#: POSTs one client has in flight at once.
CONCURRENT_POSTS = 16
#: Longest a request waits at a held receiver before it is answered anyway.
HOLD_LIMIT_SECONDS = 30.0


@dataclass
class CountingReceiver:
    """An idempotent peer gateway: counts every ``Idempotency-Key`` it receives.

    A key is counted as soon as the body has arrived, before the answer goes out,
    so a sender that dies while waiting for the answer leaves a counted key behind
    (the crash window that makes a redelivery at the peer unavoidable).
    ``hold()`` keeps answers back, so deliveries stay in flight; ``refuse()`` makes
    it answer 503 without counting, so deliveries stay queued in the journal.
    """

    keys: Counter[str] = field(default_factory=Counter)
    held: set[str] = field(default_factory=set)
    available: bool = True
    url: str = ""
    _open: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._open.set()

    @property
    def distinct(self) -> set[str]:
        """Every key received at least once."""
        return set(self.keys)

    @property
    def duplicates(self) -> dict[str, int]:
        """Keys received more than once, with their count."""
        return {key: n for key, n in self.keys.items() if n > 1}

    def hold(self) -> None:
        """Keep answers back (requests are still counted) until ``release``."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests and every later one at once."""
        self._open.set()

    def refuse(self) -> None:
        """Answer 503 to every request, counting nothing, until ``accept``."""
        self.available = False

    def accept(self) -> None:
        """Take messages again."""
        self.available = True

    async def handle(self, request: web.Request) -> web.Response:
        """Count the key, wait while held, answer 202 (200 for a key seen before)."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"title": "Idempotency-Key missing"}, status=400)
        await request.read()
        if not self.available:
            return web.json_response(
                {"title": "Unavailable"}, status=503, content_type="application/problem+json"
            )
        known = key in self.keys
        self.keys[key] += 1
        self.held.add(key)
        try:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._open.wait(), timeout=HOLD_LIMIT_SECONDS)
        finally:
            self.held.discard(key)
        return web.json_response({"id": key}, status=200 if known else 202)


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[CountingReceiver]:
    """A :class:`CountingReceiver` on a free loopback port for the ``with`` block."""
    receiver = CountingReceiver()
    app = web.Application()
    app.router.add_post("/v1/messages", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/v1/messages"
    try:
        yield receiver
    finally:
        receiver.release()
        await runner.cleanup()


def gateway_config(
    *,
    port: int,
    journal_url: str,
    blobs: Path,
    receiver_url: str,
    concurrency: int = 8,
    lease_seconds: float = 3.0,
    processes: int = 1,
    extra: str = "",
) -> str:
    """Kommune B's ``gateway.toml``: every message for 060:4711 goes to the receiver.

    ``concurrency`` bounds the worker and the destination alike, so it is the most
    deliveries one process can have in flight. ``processes`` is ``[http] processes``
    (what ``serve`` runs); ``extra`` is appended TOML (e.g. ``[[dropfolders]]``).
    """
    return f"""
[node]
id = "kommune-b"
behoerdenkennung = "060:4711"

[storage]
journal = "{journal_url}"
blobs = "{blobs}"

[http]
host = "127.0.0.1"
port = {port}
processes = {processes}

[processes]
# A one-way receiver in these tests: it has no route back for receipts.
auto_receipts = false

[worker]
concurrency = {concurrency}
lease_seconds = {lease_seconds}
poll_interval_seconds = 0.1

[[partners]]
id = "kommune-a"
behoerdenkennung = "060:0815"
token_sha256 = "{token_digest(TOKEN)}"

[destinations.receiver]
type = "http"
url = "{receiver_url}"
token_env = "{PEER_TOKEN_ENV}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 0.5
max_attempts = 1000
timeout_seconds = {HOLD_LIMIT_SECONDS + 10}
concurrency = {concurrency}

[[routes]]
empfaenger = "060:4711"
destination = "receiver"
{extra}"""


@dataclass
class Client:
    """Sends messages to the live gateways; resends what a dying one cut off elsewhere."""

    targets: list[str]
    #: Tries per message, each at the next live target, ``pause`` seconds apart.
    tries: int = 10
    pause: float = 0.0
    acknowledged: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> id
    refused: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> why
    resent: int = 0

    async def submit(self, session: aiohttp.ClientSession, index: int, body: bytes) -> None:
        """POST one message until a gateway acknowledges it (202, or 200 for a resend).

        A lost connection or a 503 is tried again at the next live gateway with the
        same Idempotency-Key; any other answer is a refusal and recorded.
        """
        key = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/xml",
            "Idempotency-Key": key,
        }
        why = "no try"
        for attempt in range(self.tries):
            if attempt:
                self.resent += 1
                await asyncio.sleep(self.pause)
            base = self.targets[(index + attempt) % len(self.targets)]
            try:
                async with session.post(
                    f"{base}/v1/messages",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    text = await response.text()
                    if response.status in (200, 202):
                        self.acknowledged[key] = json.loads(text)["id"]
                        return
                    why = f"{response.status}: {text}"
                    if response.status != 503:
                        break
            except (TimeoutError, aiohttp.ClientError) as exc:
                why = f"{type(exc).__name__}: {exc}"
        self.refused[key] = why

    def acknowledged_ids(self) -> set[str]:
        """Message ids the gateways answered with."""
        return set(self.acknowledged.values())

    async def send(self, bodies: list[bytes]) -> None:
        """Send every body, at most ``CONCURRENT_POSTS`` at a time."""
        work = iter(enumerate(bodies))
        async with aiohttp.ClientSession() as session:

            async def post_next() -> None:
                for index, body in work:
                    await self.submit(session, index, body)

            await asyncio.gather(*(post_next() for _ in range(CONCURRENT_POSTS)))


async def all_messages(journal_url: str, *, limit: int = 100_000) -> list[MessageView]:
    """Every message in the journal with its deliveries and attempts."""
    journal = Journal.from_url(journal_url)
    try:
        return await journal.list_messages(limit=limit)
    finally:
        await journal.close()


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` (plain or async) from async code until it holds; bounded.

    Raises:
        AssertionError: the condition did not hold within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
