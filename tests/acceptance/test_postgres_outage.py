"""A running gateway loses its PostgreSQL journal and gets it back.

One ``serve`` process reaches PostgreSQL only through a ``TcpProxy``
(``tests/tcp_proxy.py``). Cutting the proxy closes the gateway's database
connections and refuses new ones, as a database server that went down would;
restoring it lets the gateway reconnect. The gateway delivers over an ``http``
destination to a counting receiver in this test. The journal is read directly,
not through the proxy.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from contracts.api import Problem
from contracts.journal import MessageState
from tests.acceptance.postgres_support import (
    PEER_TOKEN,
    PEER_TOKEN_ENV,
    TOKEN,
    CountingReceiver,
    all_messages,
    gateway_config,
    serve_receiver,
    wait_for,
)
from tests.acceptance.processes import GatewayProcess, environment, free_port
from tests.intake_support import bare_message
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0
#: Journal failures the worker must have met (and backed off from) before the database returns.
FAILURES_BEFORE_RESTORE = 4


@dataclass(frozen=True)
class Answer:
    """A response of the gateway, read completely."""

    status: int
    content_type: str
    headers: dict[str, str]
    body: dict[str, Any]


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of the PostgreSQL server of ``postgres_url``."""
    with TcpProxy(target_port=urlsplit(postgres_url).port or 5432) as proxy:
        yield proxy


@pytest.fixture
async def receiver() -> AsyncIterator[CountingReceiver]:
    """The counting receiver the gateway delivers to."""
    async with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
async def gateway(
    tmp_path: Path, postgres_url: str, proxy: TcpProxy, receiver: CountingReceiver
) -> AsyncIterator[GatewayProcess]:
    """A running gateway whose journal is ``postgres_url`` reached through the proxy."""
    port = free_port()
    gateway = GatewayProcess(
        home=tmp_path / "gateway", port=port, env=environment(**{PEER_TOKEN_ENV: PEER_TOKEN})
    )
    gateway.write_config(
        gateway_config(
            port=port,
            journal_url=through(proxy, postgres_url),
            blobs=tmp_path / "blobs",
            receiver_url=receiver.url,
            lease_seconds=LEASE_SECONDS,
        )
    )
    try:
        await asyncio.to_thread(gateway.start)
        yield gateway
    finally:
        gateway.kill()


def through(proxy: TcpProxy, url: str) -> str:
    """``url`` with the proxy's address in place of the database server's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


async def submit(gateway: GatewayProcess, body: bytes, *, key: str | None = None) -> Answer:
    """``POST /v1/messages`` with the partner's token and an Idempotency-Key."""
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/xml",
        "Idempotency-Key": key or str(uuid.uuid4()),
    }
    return await request(gateway, "POST", "/v1/messages", data=body, headers=headers)


async def health(gateway: GatewayProcess) -> Answer:
    """``GET /v1/health``."""
    return await request(gateway, "GET", "/v1/health")


async def request(gateway: GatewayProcess, method: str, path: str, **options: Any) -> Answer:
    """One request to the gateway, answered within 30 s."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.request(method, gateway.url + path, **options) as response,
    ):
        return Answer(
            status=response.status,
            content_type=response.content_type,
            headers=dict(response.headers),
            body=await response.json(content_type=None),
        )


def worker_events(gateway: GatewayProcess, event: str) -> list[dict[str, Any]]:
    """The worker's log events named ``event`` so far (serve logs JSON lines)."""
    found = []
    for line in gateway.logs[-1].read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event and "worker" in entry:
            found.append(entry)
    return found


async def test_a_submission_is_refused_with_503_and_retry_after_while_the_database_is_cut_off(
    gateway: GatewayProcess, proxy: TcpProxy, postgres_url: str
) -> None:
    """Without its journal intake cannot keep a promise, so it makes none: 503, never 202.

    Three submissions, because the first meets pooled connections that just died
    and the later ones connections that are refused.
    """
    proxy.cut()

    answers = [await submit(gateway, bare_message()) for _ in range(3)]

    for answer in answers:
        assert answer.status == 503, answer
        assert answer.content_type == "application/problem+json"
        assert answer.body["type"] == Problem.type_for("journal-unavailable")
        assert int(answer.headers["Retry-After"]) > 0
    assert await all_messages(postgres_url) == []


async def test_health_answers_503_while_the_database_is_cut_off_and_200_once_it_is_back(
    gateway: GatewayProcess, proxy: TcpProxy
) -> None:
    """A load balancer sees the outage and the recovery in the health check."""
    proxy.cut()
    during = await health(gateway)
    proxy.restore()
    after = await health(gateway)

    assert during.status == 503
    assert during.content_type == "application/problem+json"
    assert after.status == 200


async def test_a_refused_submission_is_accepted_when_sent_again_after_the_outage(
    gateway: GatewayProcess, proxy: TcpProxy, postgres_url: str
) -> None:
    """The client's retry after a 503 (same body, same Idempotency-Key) is a new, single 202."""
    body, key = bare_message(), str(uuid.uuid4())
    proxy.cut()
    refused = await submit(gateway, body, key=key)
    proxy.restore()

    accepted = await submit(gateway, body, key=key)

    assert refused.status == 503
    assert accepted.status == 202, accepted
    assert [view.id for view in await all_messages(postgres_url)] == [accepted.body["id"]]


async def test_deliveries_queued_before_and_after_an_outage_all_complete(
    gateway: GatewayProcess, proxy: TcpProxy, receiver: CountingReceiver, postgres_url: str
) -> None:
    """The worker backs off while the journal is away and picks up again when it is back.

    Deliveries are kept queued before the cut (the receiver answers 503 and they
    wait for their next attempt), the receiver takes messages again while the
    database is away, and new messages arrive after it is back: all are delivered.
    """
    receiver.refuse()
    before = [await submit(gateway, bare_message()) for _ in range(5)]

    async def all_attempted() -> bool:
        views = await all_messages(postgres_url)
        return len(views) == len(before) and all(v.deliveries[0].attempts for v in views)

    await wait_for(
        all_attempted, timeout=20, interval=0.2, what="a failed attempt for each message"
    )
    proxy.cut()
    receiver.accept()
    await wait_for(
        lambda: len(worker_events(gateway, "journal_unavailable")) >= FAILURES_BEFORE_RESTORE,
        timeout=30,
        what=f"{FAILURES_BEFORE_RESTORE} journal failures of the worker",
    )
    proxy.restore()
    after = [await submit(gateway, bare_message()) for _ in range(5)]
    expected = {answer.body.get("id") for answer in before + after}

    async def all_delivered() -> bool:
        views = await all_messages(postgres_url)
        return {v.id for v in views if v.state is MessageState.DELIVERED} == expected

    await wait_for(all_delivered, timeout=60, interval=0.2, what="every message delivered")

    assert [answer.status for answer in before + after] == [202] * 10
    assert expected <= receiver.distinct
    pauses = [e["retry_in_seconds"] for e in worker_events(gateway, "journal_unavailable")]
    assert pauses == sorted(pauses), "the worker's pauses between journal failures must grow"
