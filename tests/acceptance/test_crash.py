"""Crash safety: a ``serve`` subprocess is ``kill -9``ed during intake and delivery.

A slow, idempotent receiver (``POST /v1/messages`` on loopback in this process)
counts each distinct ``Idempotency-Key`` once and every redelivery separately.
The gateway is killed while POSTs are in flight, right after 202s came back, and
while deliveries sleep in the receiver, and restarted with the same config each
time. At the end every acknowledged message must have reached the receiver,
none may be missing, and no staging leftovers may remain.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.acceptance.processes import GatewayProcess, environment, free_port, token_digest
from tests.intake_support import bare_message

TOKEN = "crash-test-partner-token"
PEER_TOKEN = "crash-test-peer-token"
PEER_TOKEN_ENV = "IKZ_TEST_CRASH_PEER_TOKEN"
RECEIVER_DELAY = 0.2
BATCH = 12


@dataclass
class SlowReceiver:
    """What the idempotent receiver saw: each key once, and the redeliveries."""

    delay: float
    keys: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    url: str = ""

    @property
    def distinct(self) -> set[str]:
        """Every Idempotency-Key received at least once."""
        return set(self.keys)

    @property
    def duplicates(self) -> dict[str, int]:
        """Keys received more than once, with their count."""
        return {key: n for key, n in self.keys.items() if n > 1}

    async def handle(self, request: web.Request) -> web.Response:
        """Read the body, sleep, then count the key; answer 202 (200 for a known key)."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"title": "Idempotency-Key missing"}, status=400)
        self.in_flight += 1
        try:
            await request.read()
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        known = key in self.keys
        self.keys[key] += 1
        return web.json_response({"id": key}, status=200 if known else 202)


@pytest.fixture
async def receiver() -> AsyncIterator[SlowReceiver]:
    """The slow receiver, served on a free loopback port."""
    state = SlowReceiver(delay=RECEIVER_DELAY)
    app = web.Application()
    app.router.add_post("/v1/messages", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state.url = f"http://127.0.0.1:{port}/v1/messages"
    yield state
    await runner.cleanup()


def crash_config(home: Path, port: int, receiver_url: str) -> str:
    """Kommune B's gateway routing every message for 060:4711 to the receiver."""
    return f"""
[node]
id = "kommune-b"
behoerdenkennung = "060:4711"

[storage]
journal = "sqlite:///{home / "data" / "journal.db"}"
blobs = "{home / "data" / "blobs"}"

[http]
host = "127.0.0.1"
port = {port}

[worker]
concurrency = 8
lease_seconds = 2
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
max_backoff_seconds = 1.0
timeout_seconds = 10
concurrency = 8

[[routes]]
empfaenger = "060:4711"
destination = "receiver"
"""


@dataclass
class Sender:
    """Posts distinct bare messages to the gateway and remembers which were acknowledged."""

    url: str
    acknowledged: dict[str, str] = field(default_factory=dict)  # message id -> ProzessID
    refused: int = 0
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def post_one(self, session: aiohttp.ClientSession) -> None:
        """POST one new message; record its id on 202/200."""
        prozess_id = str(uuid.uuid4())
        body = bare_message(prozess_id=prozess_id)
        try:
            async with session.post(
                self.url,
                data=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                if response.status in (200, 202):
                    self.acknowledged[(await response.json())["id"]] = prozess_id
                    self.answered.set()
                else:
                    self.refused += 1
        except (TimeoutError, aiohttp.ClientError):
            self.refused += 1

    def batch(self, session: aiohttp.ClientSession, count: int) -> list[asyncio.Task[None]]:
        """Start ``count`` POSTs at once."""
        return [asyncio.create_task(self.post_one(session)) for _ in range(count)]


async def _settle(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)


async def _wait_for(condition: object, timeout: float) -> bool:
    """Poll a zero-argument callable until true or ``timeout``; whether it became true."""
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.slow
async def test_every_acknowledged_message_survives_kill_9(
    tmp_path: Path, receiver: SlowReceiver
) -> None:
    """Killed during intake, after 202s and during delivery, the gateway still delivers all."""
    port = free_port()
    gateway = GatewayProcess(
        home=tmp_path / "gateway", port=port, env=environment(**{PEER_TOKEN_ENV: PEER_TOKEN})
    )
    gateway.write_config(crash_config(gateway.home, port, receiver.url))
    sender = Sender(url=f"{gateway.url}/v1/messages")
    async with aiohttp.ClientSession() as session:
        try:
            await asyncio.to_thread(gateway.start)

            # (a) kill while a batch of POSTs is being written.
            tasks = sender.batch(session, BATCH)
            await asyncio.sleep(0.05)
            gateway.kill()
            await _settle(tasks)
            await asyncio.to_thread(gateway.start)

            # (b) kill right after the first 202s came back.
            sender.answered.clear()
            tasks = sender.batch(session, BATCH)
            await _wait_for(sender.answered.is_set, timeout=20)
            gateway.kill()
            await _settle(tasks)
            await asyncio.to_thread(gateway.start)

            # (c) kill while deliveries sleep in the receiver (twice).
            for _ in range(2):
                tasks = sender.batch(session, BATCH)
                await _settle(tasks)
                await _wait_for(lambda: receiver.in_flight > 0, timeout=20)
                gateway.kill()
                await asyncio.to_thread(gateway.start)

            # Let everything drain.
            acknowledged = set(sender.acknowledged)
            assert acknowledged, "the gateway acknowledged nothing"
            await _wait_for(lambda: acknowledged <= receiver.distinct, timeout=60)
            # The receiver counts a key before it answers: give the gateway time to record it.
            states: dict[str, str] = {}
            for _ in range(60):
                views = await asyncio.to_thread(gateway.status)
                states = {view["id"]: view["state"] for view in views}
                if all(states.get(i) == "delivered" for i in acknowledged):
                    break
                await asyncio.sleep(0.5)
            # A clean stop, then a restart (which cleans staging) and another clean stop.
            assert await asyncio.to_thread(gateway.stop) == 0, gateway.log()
            await asyncio.to_thread(gateway.start)
            assert await asyncio.to_thread(gateway.stop) == 0, gateway.log()
        finally:
            gateway.kill()

    missing = acknowledged - receiver.distinct
    print(
        f"acknowledged {len(acknowledged)}, refused/cut off {sender.refused}, "
        f"received {len(receiver.distinct)} distinct, redelivered {receiver.duplicates}, "
        f"delivered but never acknowledged {len(receiver.distinct - acknowledged)}"
    )
    assert not missing, f"{len(missing)} acknowledged message(s) never reached the receiver"
    assert all(states.get(i) == "delivered" for i in acknowledged), states
    # Anything the receiver got that was not acknowledged must still be a journaled message.
    assert receiver.distinct <= set(states)
    leftovers = [p for p in (gateway.home / "data").rglob("*") if p.name.endswith(".part")]
    assert not leftovers
