"""Delivery workers on real journals (SQLite and PostgreSQL), blobs, a transfer directory and a peer.

Waits end hanging tests only; assertions are about order and outcome, never durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from contracts.config import GatewayConfig
from contracts.delivery import Destination, Outbound
from contracts.journal import DeliveryState, MessageView
from gateway.blobs import BlobStore
from gateway.destinations import build_destinations
from gateway.errors import JournalUnavailable
from gateway.journal.store import Journal, PostgresJournal, SqliteJournal, utcnow
from gateway.worker import Worker
from tests.delivery_support import (
    Receiver,
    abgabe,
    accept,
    eventually,
    problem,
    running_receiver,
    sha256,
)

TOKEN_ENV = "IKZ_TEST_TOKEN_TO_KOMMUNE_C"
FAST_RETRY = {"initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


class FlakyJournal(Journal):
    """The real journal whose claims fail while ``down`` is set, like a lost database."""

    down = False
    refused = 0
    claimed = 0

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse like an unreachable database while down; otherwise claim for real."""
        if self.down:
            self.refused += 1
            raise JournalUnavailable("journal database unavailable: connection refused")
        claims = await super().claim(*args, **kwargs)
        self.claimed += 1  # counted once the claim round's query is done
        return claims

    #: While set and not yet released, ``complete`` waits for it (an outcome being written).
    outcome_gate: asyncio.Event | None = None

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        """Record the outcome for real, once ``outcome_gate`` (if any) is released."""
        if self.outcome_gate is not None:
            await self.outcome_gate.wait()
        return await super().complete(*args, **kwargs)


class FlakySqlite(FlakyJournal, SqliteJournal):
    """SQLite, flaky on demand."""


class FlakyPostgres(FlakyJournal, PostgresJournal):
    """PostgreSQL, flaky on demand."""


class Scripted:
    """A destination whose ``deliver`` runs a test's handler (a handler-driven fake)."""

    def __init__(self, handler: Callable[[Outbound], Awaitable[None]]) -> None:
        self.name = "dms"
        self.handler = handler
        self.calls: list[Outbound] = []

    async def deliver(self, item: Outbound) -> None:
        """Record the call and let the handler decide."""
        self.calls.append(item)
        await self.handler(item)

    async def close(self) -> None:
        """Nothing to release."""


@pytest.fixture
async def journal(journal_url: str) -> AsyncIterator[FlakyJournal]:
    """A migrated journal on each backend (up, unless a test takes it down)."""
    backend = FlakySqlite if journal_url.startswith("sqlite") else FlakyPostgres
    store = backend.create(journal_url)
    assert isinstance(store, FlakyJournal)
    await store.upgrade()
    yield store
    await store.close()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """An empty blob store."""
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def dms(tmp_path: Path) -> Path:
    """The DMS transfer directory."""
    path = tmp_path / "dms"
    path.mkdir()
    return path


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    """Kommune C's gateway on loopback, answering 202; its token is in the environment."""
    monkeypatch.setenv(TOKEN_ENV, "token-for-kommune-c")
    async with running_receiver() as running:
        yield running


@pytest.fixture(autouse=True)
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log event of the test."""
    with capture_logs() as captured:
        yield captured


def config(
    dms: Path,
    receiver: Receiver | None = None,
    *,
    worker: dict[str, Any] | None = None,
    dms_settings: dict[str, Any] | None = None,
    peer_settings: dict[str, Any] | None = None,
) -> GatewayConfig:
    """Kommune B's configuration: a DMS transfer directory and, with a receiver, Kommune C."""
    destinations: dict[str, Any] = {
        "dms": {"type": "filesystem", "directory": str(dms), **FAST_RETRY, **(dms_settings or {})}
    }
    if receiver is not None:
        destinations["kommune-c"] = {
            "type": "http",
            "url": receiver.url,
            "token_env": TOKEN_ENV,
            **FAST_RETRY,
            **(peer_settings or {}),
        }
    return GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-b", "behoerdenkennung": "060:4711"},
            "destinations": destinations,
            "worker": {"poll_interval_seconds": 0.02, "lease_seconds": 30, **(worker or {})},
        }
    )


def make_worker(
    settings: GatewayConfig,
    journal: Journal,
    blobs: BlobStore,
    destinations: dict[str, Destination] | None = None,
    *,
    worker_id: str = "w1",
    grace_seconds: float = 30.0,
) -> Worker:
    """A worker over the configured destinations (or the given ones)."""
    return Worker(
        settings,
        journal,
        blobs,
        destinations if destinations is not None else build_destinations(settings),
        worker_id=worker_id,
        grace_seconds=grace_seconds,
        journal_backoff_max_seconds=0.05,
    )


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` for the block, then stop it gracefully and close its destinations."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await task
        for destination in worker.destinations.values():
            await destination.close()


async def delivery(journal: Journal, message_id: str, destination: str = "dms") -> Any:
    """The delivery of ``message_id`` to ``destination``."""
    view: MessageView = await journal.get_message(message_id)
    return next(d for d in view.deliveries if d.destination == destination)


def in_state(
    journal: Journal, message_id: str, state: DeliveryState, destination: str = "dms"
) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: the delivery reached ``state``."""

    async def check() -> bool:
        return (await delivery(journal, message_id, destination)).state is state

    return check


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """The captured log events called ``name``."""
    return [entry for entry in logs if entry["event"] == name]


# --------------------------------------------------------------------------- outcomes


async def test_delivered_file_is_bit_identical(
    journal: Journal, blobs: BlobStore, dms: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    """A journaled container ends up in the transfer directory with its exact bytes."""
    message = abgabe()
    message_id = await accept(journal, blobs, message, ["dms"])

    async with running(make_worker(config(dms), journal, blobs)):
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")

    (delivered,) = dms.iterdir()
    assert sha256(delivered.read_bytes()) == sha256(message.container)
    (succeeded,) = events(logs, "delivery_succeeded")
    assert (succeeded["message_id"], succeeded["prozess_id"], succeeded["destination"]) == (
        message_id,
        message.prozess_id,
        "dms",
    )


async def test_peer_receives_the_message_once_with_identical_bytes(
    journal: Journal, blobs: BlobStore, dms: Path, receiver: Receiver
) -> None:
    """A delivery to a peer gateway posts the exact bytes once, keyed by the message id."""
    message = abgabe()
    message_id = await accept(journal, blobs, message, ["kommune-c"])

    async with running(make_worker(config(dms, receiver), journal, blobs)):
        await eventually(
            in_state(journal, message_id, DeliveryState.DELIVERED, "kommune-c"), what="delivered"
        )

    (request,) = receiver.requests
    assert request.sha256 == sha256(message.container)
    assert request.headers["Idempotency-Key"] == message_id


async def test_transient_failures_are_retried_with_backoff_until_delivered(
    journal: Journal,
    blobs: BlobStore,
    dms: Path,
    receiver: Receiver,
    logs: list[MutableMapping[str, Any]],
) -> None:
    """Two 503 answers are retried within the backoff bounds, the third attempt delivers."""
    receiver.script(problem(503, "busy"), problem(503, "busy"))
    message_id = await accept(journal, blobs, abgabe(), ["kommune-c"])

    async with running(make_worker(config(dms, receiver), journal, blobs)):
        await eventually(
            in_state(journal, message_id, DeliveryState.DELIVERED, "kommune-c"), what="delivered"
        )

    view = await delivery(journal, message_id, "kommune-c")
    assert [a.outcome for a in view.history] == ["transient", "transient", "delivered"]
    failed = events(logs, "delivery_failed")
    assert len(failed) == 2
    for event, attempt in zip(failed, view.history, strict=False):
        assert attempt.finished_at is not None
        retry_at = attempt.finished_at.fromisoformat(event["retry_at"])
        # Full jitter: due no later than the maximum backoff after the failure.
        assert timedelta(0) <= retry_at - attempt.started_at <= timedelta(seconds=1)
        assert "peer answered 503" in event["error"]


async def test_permanent_refusal_dead_letters_at_once_with_the_peers_detail(
    journal: Journal,
    blobs: BlobStore,
    dms: Path,
    receiver: Receiver,
    logs: list[MutableMapping[str, Any]],
) -> None:
    """A 422 from the peer is not retried; its detail is the delivery's last error."""
    receiver.script(problem(422, "no route for Empfänger 060:9999", title="No route"))
    message_id = await accept(journal, blobs, abgabe(), ["kommune-c"])

    async with running(make_worker(config(dms, receiver), journal, blobs)):
        await eventually(
            in_state(journal, message_id, DeliveryState.DEAD, "kommune-c"), what="dead-lettered"
        )

    view = await delivery(journal, message_id, "kommune-c")
    assert view.attempts == 1
    assert view.last_error is not None and "no route for Empfänger 060:9999" in view.last_error
    assert len(receiver.requests) == 1
    (dead,) = events(logs, "delivery_dead_lettered")
    assert dead["outcome"] == "permanent"


async def test_exhausted_attempts_dead_letter(
    journal: Journal, blobs: BlobStore, dms: Path, receiver: Receiver
) -> None:
    """A peer failing every time is given up after max_attempts, as 'exhausted'."""
    receiver.default = problem(503, "down for maintenance")
    settings = config(dms, receiver, peer_settings={"max_attempts": 3})
    message_id = await accept(journal, blobs, abgabe(), ["kommune-c"])

    async with running(make_worker(settings, journal, blobs)):
        await eventually(
            in_state(journal, message_id, DeliveryState.DEAD, "kommune-c"), what="dead-lettered"
        )

    view = await delivery(journal, message_id, "kommune-c")
    assert [a.outcome for a in view.history] == ["transient", "transient", "exhausted"]
    assert view.last_error is not None and view.last_error.startswith("gave up after 3 attempts")
    assert len(receiver.requests) == 3


async def test_timeout_counts_as_transient(
    journal: Journal, blobs: BlobStore, dms: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    """A destination that does not finish within its timeout is retried later."""
    hang = asyncio.Event()
    calls = 0

    async def first_hangs(item: Outbound) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await hang.wait()

    settings = config(dms, dms_settings={"timeout_seconds": 0.1})
    message_id = await accept(journal, blobs, abgabe(), ["dms"])

    async with running(make_worker(settings, journal, blobs, {"dms": Scripted(first_hangs)})):
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")

    (failed,) = events(logs, "delivery_failed")
    assert failed["error"] == "no result within the timeout of 0.1 s"


async def test_unexpected_adapter_error_is_retried(
    journal: Journal, blobs: BlobStore, dms: Path
) -> None:
    """An exception outside the delivery error hierarchy counts as transient."""
    calls = 0

    async def first_breaks(item: Outbound) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("surprise")

    message_id = await accept(journal, blobs, abgabe(), ["dms"])

    async with running(make_worker(config(dms), journal, blobs, {"dms": Scripted(first_breaks)})):
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")

    view = await delivery(journal, message_id)
    assert view.history[0].error == "KeyError: 'surprise'"


async def test_missing_blob_dead_letters(journal: Journal, blobs: BlobStore, dms: Path) -> None:
    """A message whose blob vanished from the store is parked, not retried forever."""
    message = abgabe()
    message_id = await accept(journal, blobs, message, ["dms"])
    blobs.path(sha256(message.container)).unlink()

    async with running(make_worker(config(dms), journal, blobs)):
        await eventually(in_state(journal, message_id, DeliveryState.DEAD), what="dead-lettered")

    view = await delivery(journal, message_id)
    assert view.last_error is not None and "missing from the blob store" in view.last_error


async def test_a_message_kept_in_the_journal_is_delivered_bit_identical_without_a_blob_file(
    journal: Journal, blobs: BlobStore, dms: Path
) -> None:
    """The transfer directory gets the claim's bytes; the blob store is neither read nor written."""
    message = abgabe()
    message_id = await accept(journal, blobs, message, ["dms"], inline=message.container)

    async with running(make_worker(config(dms), journal, blobs)):
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")

    (delivered,) = dms.iterdir()
    assert delivered.read_bytes() == message.container
    assert not blobs.path(sha256(message.container)).exists()


async def test_a_destination_reading_files_gets_the_journals_copy_written_as_a_blob_first(
    journal: Journal, blobs: BlobStore, dms: Path, receiver: Receiver
) -> None:
    """A destination without ``reads_content`` finds a small message in the blob store."""
    message = abgabe()
    message_id = await accept(journal, blobs, message, ["kommune-c"], inline=message.container)

    async with running(make_worker(config(dms, receiver), journal, blobs)):
        await eventually(
            in_state(journal, message_id, DeliveryState.DELIVERED, "kommune-c"), what="delivered"
        )

    (request,) = receiver.requests
    assert request.sha256 == sha256(message.container)
    assert blobs.path(sha256(message.container)).read_bytes() == message.container


async def test_a_journal_copy_that_does_not_match_its_sha256_dead_letters(
    journal: Journal, blobs: BlobStore, dms: Path, receiver: Receiver
) -> None:
    """Corrupted bytes are never delivered nor written to the blob store: parked at once."""
    message = abgabe()
    message_id = await accept(journal, blobs, message, ["kommune-c"], inline=b"not the message")

    async with running(make_worker(config(dms, receiver), journal, blobs)):
        await eventually(
            in_state(journal, message_id, DeliveryState.DEAD, "kommune-c"), what="dead-lettered"
        )

    view = await delivery(journal, message_id, "kommune-c")
    assert view.last_error is not None and "does not match its SHA-256" in view.last_error
    assert receiver.requests == []
    assert not blobs.path(sha256(message.container)).exists()


# --------------------------------------------------------------------------- isolation


async def test_slow_destination_does_not_delay_another(
    journal: Journal, blobs: BlobStore, dms: Path, receiver: Receiver
) -> None:
    """While a peer holds every one of its slots, the DMS deliveries all complete."""
    receiver.gate = asyncio.Event()
    settings = config(dms, receiver, worker={"concurrency": 4}, peer_settings={"concurrency": 2})
    slow = [await accept(journal, blobs, abgabe(), ["kommune-c"]) for _ in range(4)]
    fast = [await accept(journal, blobs, abgabe(), ["dms"]) for _ in range(6)]

    async with running(make_worker(settings, journal, blobs)):
        for message_id in fast:
            await eventually(
                in_state(journal, message_id, DeliveryState.DELIVERED), what="DMS delivered"
            )
        held = (receiver.active, len(receiver.requests))
        receiver.gate.set()
        for message_id in slow:
            await eventually(
                in_state(journal, message_id, DeliveryState.DELIVERED, "kommune-c"),
                what="peer delivered",
            )

    assert held == (2, 2)
    assert receiver.max_active == 2
    assert len(list(dms.iterdir())) == 6


async def test_a_freed_slot_is_refilled_at_once_where_claims_share_the_writers_transaction(
    journal: Journal, blobs: BlobStore, dms: Path
) -> None:
    """SQLite (one writer) claims for one free slot; PostgreSQL waits until half are free."""
    release = asyncio.Event()
    first: list[str] = []

    async def handler(item: Outbound) -> None:
        if item.message_id != first[0]:
            await release.wait()

    destination = Scripted(handler)

    async def refilled() -> bool:
        return len(destination.calls) == 5

    settings = config(dms, dms_settings={"concurrency": 4})
    ids = [await accept(journal, blobs, abgabe(), ["dms"]) for _ in range(6)]
    first.append(ids[0])

    async with running(make_worker(settings, journal, blobs, {"dms": destination})):
        await eventually(in_state(journal, ids[0], DeliveryState.DELIVERED), what="first done")
        if journal.single_writer:
            await eventually(refilled, what="the freed slot refilled")
        else:
            await asyncio.sleep(0.3)  # several polls: three of four slots still busy
        started = len(destination.calls)
        release.set()

    assert started == (5 if journal.single_writer else 4)


async def test_a_single_writer_journal_holds_half_the_slots_claimed_ahead(
    journal: FlakyJournal, blobs: BlobStore, dms: Path
) -> None:
    """Four attempts at most run; with one writer (SQLite) two more wait claimed for a slot."""
    release = asyncio.Event()
    destination = Scripted(lambda item: release.wait())
    settings = config(dms, dms_settings={"concurrency": 4})
    ids = [await accept(journal, blobs, abgabe(), ["dms"]) for _ in range(10)]

    async def four_running() -> bool:
        return len(destination.calls) == 4

    async with running(make_worker(settings, journal, blobs, {"dms": destination})):
        await eventually(four_running, what="four attempts running")
        await asyncio.sleep(0.2)  # several polls: nothing more may start or be claimed
        states = [(await delivery(journal, message_id)).state for message_id in ids]
        attempts = len(destination.calls)
        release.set()
        for message_id in ids:
            await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="done")

    claimed = states.count(DeliveryState.CLAIMED)
    assert attempts == 4
    assert claimed == (6 if journal.single_writer else 4)


def holding_outcomes(journal: FlakyJournal) -> tuple[Scripted, asyncio.Event]:
    """A destination that delivers at once, and the gate ``journal`` holds every outcome
    at until it is set (an outcome being written)."""
    gate = journal.outcome_gate = asyncio.Event()
    return Scripted(lambda item: asyncio.sleep(0)), gate


def attempted(destination: Scripted, count: int) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: ``destination`` was called ``count`` times."""

    async def check() -> bool:
        return len(destination.calls) == count

    return check


async def test_a_slot_is_free_while_the_outcome_of_its_last_attempt_is_written(
    journal: FlakyJournal, blobs: BlobStore, dms: Path
) -> None:
    """The destination's one slot takes the next delivery before the first outcome is in."""
    destination, gate = holding_outcomes(journal)
    settings = config(dms, dms_settings={"concurrency": 1})
    ids = [await accept(journal, blobs, abgabe(), ["dms"]) for _ in range(2)]

    async with running(make_worker(settings, journal, blobs, {"dms": destination})):
        await eventually(attempted(destination, 2), what="the second attempt started")
        states = [(await delivery(journal, message_id)).state for message_id in ids]
        gate.set()
        for message_id in ids:
            await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="done")

    assert states == [DeliveryState.CLAIMED, DeliveryState.CLAIMED]


async def test_stop_waits_for_outcomes_being_written(
    journal: FlakyJournal, blobs: BlobStore, dms: Path
) -> None:
    """A graceful stop lets an outcome still being written reach the journal."""
    destination, gate = holding_outcomes(journal)
    message_id = await accept(journal, blobs, abgabe(), ["dms"])
    worker = make_worker(config(dms), journal, blobs, {"dms": destination})
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    await eventually(attempted(destination, 1), what="the attempt made")
    stop.set()
    await asyncio.sleep(0.1)
    gate.set()
    await task

    assert (await delivery(journal, message_id)).state is DeliveryState.DELIVERED


async def test_failing_destination_does_not_delay_another(
    journal: Journal, blobs: BlobStore, dms: Path, receiver: Receiver
) -> None:
    """A peer answering 503 to everything leaves the DMS deliveries unaffected."""
    receiver.default = problem(503, "down")
    settings = config(dms, receiver, worker={"concurrency": 2}, peer_settings={"concurrency": 1})
    failing = [await accept(journal, blobs, abgabe(), ["kommune-c"]) for _ in range(3)]
    fast = [await accept(journal, blobs, abgabe(), ["dms"]) for _ in range(5)]

    async with running(make_worker(settings, journal, blobs)):
        for message_id in fast:
            await eventually(
                in_state(journal, message_id, DeliveryState.DELIVERED), what="DMS delivered"
            )

    states = {(await delivery(journal, m, "kommune-c")).state for m in failing}
    assert DeliveryState.DELIVERED not in states
    assert len(receiver.requests) >= 1


# --------------------------------------------------------------------------- leases


async def test_crashed_workers_claim_is_redelivered_after_its_lease_expires(
    journal: Journal, blobs: BlobStore, dms: Path
) -> None:
    """A claim whose worker died is taken over once the lease runs out, and delivered."""
    message_id = await accept(journal, blobs, abgabe(), ["dms"])
    (crashed,) = await journal.claim("crashed", limit=1, lease=timedelta(seconds=0.3))

    async with running(make_worker(config(dms), journal, blobs, worker_id="w2")):
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")

    view = await delivery(journal, message_id)
    assert [(a.worker, a.outcome) for a in view.history] == [
        ("crashed", "lease_expired"),
        ("w2", "delivered"),
    ]
    assert crashed.attempt == 1


async def test_attempts_lost_to_crashes_count_towards_the_budget(
    journal: Journal, blobs: BlobStore, dms: Path
) -> None:
    """A message whose workers keep dying is dead-lettered, not tried forever."""
    settings = config(dms, dms_settings={"max_attempts": 2})
    message_id = await accept(journal, blobs, abgabe(), ["dms"])
    for crashed in ("crashed-1", "crashed-2"):
        (claim,) = await journal.claim(crashed, limit=1, lease=timedelta(seconds=0.1))
        while utcnow() <= claim.lease_until:  # the crashed worker's lease runs out
            await asyncio.sleep(0.02)
    destination = Scripted(_nothing)

    async with running(make_worker(settings, journal, blobs, {"dms": destination})):
        await eventually(in_state(journal, message_id, DeliveryState.DEAD), what="dead-lettered")

    view = await delivery(journal, message_id)
    assert [a.outcome for a in view.history] == ["lease_expired", "lease_expired", "exhausted"]
    assert view.last_error is not None
    assert view.last_error.startswith("gave up after 2 attempts; the last ended without an outcome")
    assert destination.calls == []


async def test_lease_lost_mid_delivery_cancels_it_and_discards_the_outcome(
    journal: Journal, blobs: BlobStore, dms: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    """When the heartbeat finds the lease taken over, the delivery is cancelled unrecorded."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def blocks(item: Outbound) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    settings = config(dms, worker={"lease_seconds": 1.2})
    message_id = await accept(journal, blobs, abgabe(), ["dms"])

    async with running(make_worker(settings, journal, blobs, {"dms": Scripted(blocks)})):
        await started.wait()
        # Another worker that believes the lease expired takes the delivery over.
        later = utcnow() + timedelta(minutes=5)
        (stolen,) = await journal.claim("thief", limit=1, lease=timedelta(hours=1), now=later)
        await asyncio.wait_for(cancelled.wait(), 15)
        await eventually(
            lambda: _async(bool(events(logs, "delivery_lease_lost"))), what="lease loss logged"
        )

    view = await delivery(journal, message_id)
    assert view.state is DeliveryState.CLAIMED
    assert [(a.worker, a.outcome) for a in view.history] == [
        ("w1", "lease_expired"),
        ("thief", None),
    ]
    assert stolen.attempt == 2


async def test_lease_lost_before_recording_discards_the_outcome(
    journal: Journal, blobs: BlobStore, dms: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    """A finished delivery whose lease was taken over meanwhile is logged and dropped."""

    async def taken_over_meanwhile(item: Outbound) -> None:
        later = utcnow() + timedelta(minutes=5)
        await journal.claim("thief", limit=1, lease=timedelta(hours=1), now=later)

    message_id = await accept(journal, blobs, abgabe(), ["dms"])

    async with running(
        make_worker(config(dms), journal, blobs, {"dms": Scripted(taken_over_meanwhile)})
    ):
        await eventually(
            lambda: _async(bool(events(logs, "delivery_outcome_discarded"))),
            what="outcome discarded",
        )

    view = await delivery(journal, message_id)
    assert view.state is DeliveryState.CLAIMED
    assert view.history[-1].worker == "thief"
    assert events(logs, "delivery_succeeded") == []


async def test_heartbeat_keeps_a_long_delivery_from_being_taken_over(
    journal: Journal, blobs: BlobStore, dms: Path
) -> None:
    """A delivery outlasting its lease keeps it renewed; a second worker never takes it."""
    release = asyncio.Event()

    async def long_running(item: Outbound) -> None:
        await release.wait()

    settings = config(dms, worker={"lease_seconds": 1.2})
    message_id = await accept(journal, blobs, abgabe(), ["dms"])
    first = make_worker(settings, journal, blobs, {"dms": Scripted(long_running)}, worker_id="w1")
    rival = Scripted(long_running)
    second = make_worker(settings, journal, blobs, {"dms": rival}, worker_id="w2")

    async with running(first), running(second):
        await eventually(lambda: _async(first.in_flight == 1), what="first worker delivering")
        # Wait until the first lease would have run out twice over.
        began = utcnow()
        await eventually(lambda: _after(began + timedelta(seconds=2.5)), what="lease outlived")
        release.set()
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")

    view = await delivery(journal, message_id)
    assert [(a.worker, a.outcome) for a in view.history] == [("w1", "delivered")]
    assert rival.calls == []


# --------------------------------------------------------------------------- journal and control


async def test_worker_rides_out_an_unavailable_journal_and_resumes(
    journal: FlakyJournal, blobs: BlobStore, dms: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    """Claims failing with JournalUnavailable are backed off; delivery resumes when it returns."""
    journal.down = True
    message_id = await accept(journal, blobs, abgabe(), ["dms"])

    async with running(make_worker(config(dms), journal, blobs)) as task:
        await eventually(lambda: _async(journal.refused >= 3), what="claims refused")
        still_running = not task.done()
        journal.down = False
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")

    assert still_running
    assert len(events(logs, "journal_unavailable")) >= 3
    assert len(events(logs, "journal_available")) == 1


async def test_notify_claims_new_work_before_the_next_poll(
    journal: FlakyJournal, blobs: BlobStore, dms: Path
) -> None:
    """With an hour between polls, notify() alone gets a new message delivered."""
    settings = config(dms, worker={"poll_interval_seconds": 3600})
    worker = make_worker(settings, journal, blobs)

    async with running(worker):
        await eventually(lambda: _async(journal.claimed >= 1), what="first claim round done")
        message_id = await accept(journal, blobs, abgabe(), ["dms"])
        worker.notify()
        await eventually(in_state(journal, message_id, DeliveryState.DELIVERED), what="delivered")


async def test_stop_lets_a_running_delivery_finish(
    journal: Journal, blobs: BlobStore, dms: Path
) -> None:
    """Stopping waits for the delivery in flight and records its outcome."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(item: Outbound) -> None:
        started.set()
        await release.wait()

    message_id = await accept(journal, blobs, abgabe(), ["dms"])
    worker = make_worker(config(dms), journal, blobs, {"dms": Scripted(slow)})
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await started.wait()

    stop.set()
    await asyncio.sleep(0.05)
    finished_before_release = task.done()
    release.set()
    await asyncio.wait_for(task, 15)

    assert not finished_before_release
    assert (await delivery(journal, message_id)).state is DeliveryState.DELIVERED


async def test_stop_claims_nothing_new(journal: Journal, blobs: BlobStore, dms: Path) -> None:
    """After stop, messages that become due stay pending for the next run."""
    worker = make_worker(config(dms), journal, blobs)
    stop = asyncio.Event()
    stop.set()

    message_id = await accept(journal, blobs, abgabe(), ["dms"])
    await worker.run(stop)

    assert (await delivery(journal, message_id)).state is DeliveryState.PENDING


async def test_stop_cancels_deliveries_that_outlast_the_grace_period(
    journal: Journal, blobs: BlobStore, dms: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    """A delivery still running after the grace period is cancelled and stays claimed."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def never_ends(item: Outbound) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    message_id = await accept(journal, blobs, abgabe(), ["dms"])
    worker = make_worker(
        config(dms), journal, blobs, {"dms": Scripted(never_ends)}, grace_seconds=0.1
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await started.wait()

    stop.set()
    await asyncio.wait_for(task, 15)

    assert cancelled.is_set()
    assert (await delivery(journal, message_id)).state is DeliveryState.CLAIMED
    (cancelled_event,) = events(logs, "deliveries_cancelled")
    assert cancelled_event["count"] == 1


async def _nothing(item: Outbound) -> None:
    return None


async def _async(value: bool) -> bool:
    return value


async def _after(moment: datetime) -> bool:
    return bool(utcnow() >= moment)
