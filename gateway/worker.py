"""Delivery workers: claim due deliveries from the journal, deliver them, record the outcome.

One ``Worker`` per process runs many deliveries concurrently as asyncio tasks,
bounded overall (``[worker] concurrency``) and per destination (the destination's
``concurrency``). It claims work one destination at a time and only up to that
destination's free slots, so a destination that is slow or down holds at most its
own slots (a shared claim could fill every slot with one destination's messages).
Which destination claims first rotates each round. The others are fully isolated
while the per-destination limits of the slow ones add up to less than the overall
limit; beyond that, slow destinations can together occupy every slot until their
timeouts end the attempts.

For each claim::

    attempt > max_attempts (earlier attempts never reported back) → dead_letter "exhausted"
    Outbound (blob path, size) ──► destination.deliver   under asyncio.timeout
         │                              │ lease keeper: renews the leases of all
         │                              │ deliveries in flight every lease/3, in one
         │                              │ transaction; lease lost → cancel, outcome
         ▼                              ▼ discarded
    ok → complete · permanent → dead_letter · transient, timeout, other error →
    RetryPolicy: retry_later(at) or dead_letter(outcome="exhausted")

Nothing here is lost by a crash: an unfinished claim's lease expires and the
next claimer (any worker, any process) delivers again; destinations are
idempotent on the message id.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from contracts.builders import ObjectResult
from contracts.config import DestinationConfig, GatewayConfig
from contracts.delivery import DeliveryResult, Destination, Outbound
from contracts.journal import Claim
from gateway.blobs import BlobCorrupted, BlobStore
from gateway.errors import (
    JournalError,
    JournalUnavailable,
    LeaseLost,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from gateway.journal.store import Journal, utcnow
from gateway.retry import GiveUp, RetryAt, RetryPolicy

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Delivered:
    """The destination took the message (and, if it imported it, with what result)."""

    result: DeliveryResult | None = None


@dataclass(frozen=True)
class Failed:
    """The attempt failed; ``permanent`` failures are not retried."""

    error: str
    permanent: bool


Outcome = Delivered | Failed


@dataclass
class _Held:
    """A delivery in flight and the claim (lease) it holds."""

    claim: Claim
    task: asyncio.Task[None]


class Worker:
    """Delivers due messages to their destinations until told to stop.

    Start it with ``await worker.run(stop)`` (usually as a task) and end it by
    setting ``stop``: it stops claiming at once, lets deliveries in flight finish
    for up to ``grace_seconds``, then cancels the rest (their leases expire and a
    later run delivers them again). Intake calls ``notify()`` after committing a
    message so it is claimed now rather than at the next poll.

    The worker does not own the destinations: whoever built them closes them,
    after ``run`` returned.
    """

    def __init__(
        self,
        config: GatewayConfig,
        journal: Journal,
        blobs: BlobStore,
        destinations: Mapping[str, Destination],
        *,
        worker_id: str,
        grace_seconds: float = 30.0,
        journal_backoff_max_seconds: float = 30.0,
    ) -> None:
        """Set up a worker; nothing runs until ``run``.

        Args:
            config: the gateway configuration (worker settings and each destination's
                retry, timeout and concurrency settings).
            journal: where deliveries are claimed and outcomes recorded.
            blobs: where the messages' bytes are.
            destinations: the adapters by destination name; only these are claimed.
            worker_id: this worker's name in leases and attempts; unique per process.
            grace_seconds: how long ``run`` lets deliveries finish after ``stop``.
            journal_backoff_max_seconds: longest pause between claims while the
                journal's database is unreachable.

        Raises:
            ValueError: an adapter is given for a destination the configuration lacks.
        """
        unknown = sorted(set(destinations) - set(config.destinations))
        if unknown:
            raise ValueError(f"destinations without configuration: {', '.join(unknown)}")
        self.journal = journal
        self.blobs = blobs
        self.destinations = dict(destinations)
        self.worker_id = worker_id
        self._settings: dict[str, DestinationConfig] = {
            name: config.destinations[name] for name in destinations
        }
        self._policies = {
            name: RetryPolicy.from_config(settings) for name, settings in self._settings.items()
        }
        self._concurrency = config.worker.concurrency
        self._lease = timedelta(seconds=config.worker.lease_seconds)
        self._poll = config.worker.poll_interval_seconds
        self._grace = grace_seconds
        self._backoff_max = journal_backoff_max_seconds
        # Claimed deliveries whose attempt has not ended, by destination: running, or
        # waiting for a slot (claimed ahead, see ``_ahead``).
        self._inflight: dict[str, set[asyncio.Task[None]]] = {name: set() for name in destinations}
        # Attempts running at once: per destination, and in this worker overall.
        self._slots = {
            name: asyncio.Semaphore(settings.concurrency)
            for name, settings in self._settings.items()
        }
        self._attempt_slots = asyncio.Semaphore(self._concurrency)
        # Deliveries whose attempt ended and whose outcome is being written: their
        # slot is free already (a claim for it can share the outcome's transaction).
        self._recording: set[asyncio.Task[None]] = set()
        # Leases held by deliveries in flight, by delivery id; the keeper renews them.
        self._held: dict[int, _Held] = {}
        self._lost: dict[int, LeaseLost] = {}
        self._order = deque(sorted(destinations))
        self._wake = asyncio.Event()
        self._running = False

    # ------------------------------------------------------------------ control

    def notify(self) -> None:
        """New work may be due: claim now instead of at the next poll."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Claimed deliveries whose attempt has not ended: running, or waiting for a slot."""
        return sum(len(tasks) for tasks in self._inflight.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until ``stop`` is set, then shut down gracefully.

        Never raises for journal or destination trouble: an unreachable journal is
        waited out with capped, jittered backoff. Cancelling ``run`` itself cancels
        the deliveries in flight at once.

        Raises:
            RuntimeError: the worker is already running.
        """
        if self._running:
            raise RuntimeError(f"worker {self.worker_id} is already running")
        self._running = True
        log.info(
            "worker_started",
            worker=self.worker_id,
            destinations=sorted(self.destinations),
            concurrency=self._concurrency,
        )
        keeper = asyncio.create_task(self._keep_leases(), name=f"{self.worker_id}-leases")
        try:
            await self._claim_until(stop)
            await self._drain()
        finally:
            await self._cancel(self._tasks())
            await self._cancel({keeper})
            self._running = False
        log.info("worker_stopped", worker=self.worker_id)

    # ------------------------------------------------------------------ claiming

    async def _claim_until(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            # Cleared before claiming, so a notify() during the claim is not lost.
            self._wake.clear()
            try:
                await self._claim_round(stop)
            except JournalUnavailable as exc:
                failures += 1
                delay = self._journal_backoff(failures)
                log.warning(
                    "journal_unavailable",
                    worker=self.worker_id,
                    error=str(exc),
                    failures=failures,
                    retry_in_seconds=round(delay, 2),
                )
                await _first_of(delay, stop)
                continue
            if failures:
                log.info("journal_available", worker=self.worker_id, after_failures=failures)
                failures = 0
            await _first_of(self._poll, stop, self._wake)

    async def _claim_round(self, stop: asyncio.Event) -> None:
        """Claim up to each destination's free slots, rotating who goes first."""
        names = list(self._order)
        self._order.rotate(-1)  # fairness when overall slots run out mid-round
        for name in names:
            free_overall = self._concurrency + self._ahead(self._concurrency) - self.in_flight
            if free_overall <= 0 or stop.is_set():
                return
            slots = self._settings[name].concurrency
            limit = slots + self._ahead(slots)
            busy = len(self._inflight[name])
            # While some of its deliveries run, wait until half its slots are free:
            # claims in batches cost one transaction for many, and the running ones
            # wake this loop as they finish, so nothing waits for the poll. A journal
            # with one writer puts a claim into the transaction being written anyway,
            # so there every free slot is filled at once.
            half_busy = busy and limit - busy < (limit + 1) // 2
            if limit - busy <= 0 or (half_busy and not self.journal.single_writer):
                continue
            free = limit - busy
            claims = await self.journal.claim(
                self.worker_id,
                limit=min(free, free_overall),
                lease=self._lease,
                destinations=[name],
            )
            for claim in claims:
                self._start(claim)

    def _ahead(self, slots: int) -> int:
        """How many deliveries to hold claimed beyond ``slots`` running ones.

        A freed slot then starts the next attempt at once instead of waiting for a
        claim to come back from the journal, where that wait is a transaction of
        its own: with one writer (SQLite) the claim queues behind the transaction
        being written. Elsewhere claims are batched instead (see ``_claim_round``).
        """
        return slots // 2 if self.journal.single_writer else 0

    def _journal_backoff(self, failures: int) -> float:
        ceiling = min(self._backoff_max, self._poll * 2.0 ** min(failures - 1, 30))
        # Equal jitter: never a hot loop, and several workers do not retry in step.
        return ceiling * random.uniform(0.5, 1.0)

    def _start(self, claim: Claim) -> None:
        task = asyncio.create_task(self._handle(claim), name=f"delivery-{claim.delivery_id}")
        tasks = self._inflight[claim.destination]
        tasks.add(task)
        self._held[claim.delivery_id] = _Held(claim, task)

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._recording.discard(task)
            if (held := self._held.get(claim.delivery_id)) is not None and held.task is task:
                del self._held[claim.delivery_id]
            self._lost.pop(claim.delivery_id, None)
            self._wake.set()  # a slot is free: claim again now
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "delivery_task_crashed",
                    worker=self.worker_id,
                    delivery_id=claim.delivery_id,
                    exc_info=task.exception(),
                )

        task.add_done_callback(finished)

    # ------------------------------------------------------------------ one delivery

    async def _handle(self, claim: Claim) -> None:
        ids = {
            "message_id": claim.message_id,
            "prozess_id": claim.prozess_id,
            "destination": claim.destination,
        }
        logger = log.bind(**ids, delivery_id=claim.delivery_id, attempt=claim.attempt)
        # Bound as contextvars too, so whatever the adapter logs carries the ids.
        with structlog.contextvars.bound_contextvars(**ids):
            started = time.monotonic()
            try:
                outcome: Outcome | GiveUp | None = self._abandoned(claim)
                if outcome is None:
                    outcome, started = await self._attempt_in_slot(claim, logger)
            except asyncio.CancelledError:
                lost = self._lost.pop(claim.delivery_id, None)
                if lost is None:
                    raise  # shutdown
                # The keeper found the lease taken over: whoever holds it now delivers.
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                logger.warning("delivery_lease_lost", worker=self.worker_id, reason=str(lost))
                return
            elapsed_ms = round((time.monotonic() - started) * 1000)
            self._attempt_ended(claim)
            try:
                await self._record(claim, outcome, logger, elapsed_ms)
            except LeaseLost as exc:
                logger.warning("delivery_outcome_discarded", worker=self.worker_id, reason=str(exc))
            except JournalUnavailable as exc:
                logger.error(
                    "delivery_outcome_lost",
                    worker=self.worker_id,
                    error=str(exc),
                    consequence="the lease expires and the delivery is made again",
                )

    def _attempt_ended(self, claim: Claim) -> None:
        """Free the destination slot of the current delivery: only its outcome is left to write."""
        task = asyncio.current_task()
        attempts = self._inflight[claim.destination]
        if task is not None and task in attempts:
            attempts.discard(task)
            self._recording.add(task)
            self._wake.set()

    async def _attempt_in_slot(
        self, claim: Claim, logger: structlog.typing.FilteringBoundLogger
    ) -> tuple[Outcome, float]:
        """``_attempt`` once a slot of the destination and of the worker is free.

        Returns:
            The outcome, and when the attempt started (``time.monotonic``): its
            duration is logged without the wait for a slot.
        """
        async with self._slots[claim.destination], self._attempt_slots:
            started = time.monotonic()
            return await self._attempt(claim, logger), started

    async def _attempt(
        self, claim: Claim, logger: structlog.typing.FilteringBoundLogger
    ) -> Outcome:
        """Deliver once; the lease keeper cancels this if the lease is lost meanwhile."""
        destination = self.destinations[claim.destination]
        content = claim.content
        if content is not None and not getattr(destination, "reads_content", False):
            # Only the journal holds this small message; this destination reads files.
            try:
                await self.blobs.file(claim.blob_sha256, content)
            except BlobCorrupted as exc:
                return Failed(str(exc), permanent=True)
            except OSError as exc:
                return Failed(
                    f"cannot write blob {claim.blob_sha256} to the blob store: {exc}",
                    permanent=False,
                )
            content = None
        item = Outbound(
            message_id=claim.message_id,
            attempt=claim.attempt,
            blob_path=self.blobs.path(claim.blob_sha256),
            content=content,
            blob_sha256=claim.blob_sha256,
            size=claim.size,
            content_kind=claim.content_kind,
            prozess_id=claim.prozess_id,
            nachrichtentyp=claim.nachrichtentyp,
            message_element=claim.message_element,
            file_name=claim.file_name,
        )
        return await self._call(claim.destination, item, logger)

    async def _call(
        self, name: str, item: Outbound, logger: structlog.typing.FilteringBoundLogger
    ) -> Outcome:
        """One ``deliver`` under the destination's timeout, its exception turned into an outcome."""
        timeout = self._settings[name].timeout_seconds
        try:
            async with asyncio.timeout(timeout) as deadline:
                result = await self.destinations[name].deliver(item)
        except PermanentDeliveryError as exc:
            return Failed(str(exc), permanent=True)
        except FileNotFoundError as exc:
            if exc.filename is not None and Path(exc.filename) == item.blob_path:
                return Failed(
                    f"blob {item.blob_sha256} is missing from the blob store; restore it and "
                    "replay the message",
                    permanent=True,
                )
            logger.error("delivery_adapter_error", worker=self.worker_id, exc_info=exc)
            return Failed(f"{type(exc).__name__}: {exc}", permanent=False)
        except TransientDeliveryError as exc:
            return Failed(str(exc), permanent=False)
        except TimeoutError as exc:
            if deadline.expired():
                return Failed(f"no result within the timeout of {timeout:g} s", permanent=False)
            return Failed(f"{type(exc).__name__}: {exc}", permanent=False)
        except Exception as exc:
            # The protocol counts anything else as transient; the trace is for a bug report.
            logger.error("delivery_adapter_error", worker=self.worker_id, exc_info=exc)
            return Failed(f"{type(exc).__name__}: {exc}", permanent=False)
        return Delivered(result)

    async def _keep_leases(self) -> None:
        """Every third of a lease, renew the leases of all deliveries in flight.

        One transaction for all of them; a delivery whose lease another worker took
        over meanwhile is cancelled (its outcome would not count).
        """
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            # All of them, fresh ones too: a lease then never runs below two thirds
            # of its length, whatever the delays of this loop under load.
            due = [held.claim for held in self._held.values()]
            if not due:
                continue
            try:
                renewed, lost = await self.journal.renew_many(due, self.worker_id, self._lease)
            except JournalError as exc:
                # Keep delivering: if nobody took the deliveries over meanwhile, their
                # outcomes still count; if somebody did, recording them says so.
                log.warning("lease_renewal_failed", worker=self.worker_id, error=str(exc))
                continue
            except Exception as exc:  # a bug must not end renewals for good
                log.error("lease_renewal_crashed", worker=self.worker_id, exc_info=exc)
                continue
            for claim in renewed:
                held = self._held.get(claim.delivery_id)
                if held is not None and held.claim.attempt == claim.attempt:
                    held.claim = claim
            for claim, reason in lost:
                held = self._held.get(claim.delivery_id)
                if held is not None and held.claim.attempt == claim.attempt:
                    self._lost[claim.delivery_id] = reason
                    held.task.cancel()

    async def _record(
        self,
        claim: Claim,
        outcome: Outcome | GiveUp,
        logger: structlog.typing.FilteringBoundLogger,
        elapsed_ms: int,
    ) -> None:
        """Write the outcome to the journal (retried while the database is briefly away)."""
        worker = self.worker_id
        if isinstance(outcome, Delivered):
            imported = self._imported(claim.destination, outcome)
            created = outcome.result.dms_objects if outcome.result is not None else ()
            await self._journal_call(
                lambda: self.journal.complete(claim, worker, imported=imported, dms_objects=created)
            )
            logger.info("delivery_succeeded", worker=worker, duration_ms=elapsed_ms)
            return
        if isinstance(outcome, Failed) and outcome.permanent:
            await self._dead_letter(claim, outcome.error, "permanent", logger)
            return
        if isinstance(outcome, Failed):
            error = outcome.error
            decision = self._policies[claim.destination].decide(
                attempt=claim.attempt,
                window_started_at=claim.window_started_at,
                now=utcnow(),
                error=error,
            )
            if isinstance(decision, RetryAt):
                await self._journal_call(
                    lambda: self.journal.retry_later(claim, worker, decision.at, error)
                )
                logger.warning(
                    "delivery_failed",
                    worker=worker,
                    error=error,
                    retry_at=decision.at.isoformat(),
                    duration_ms=elapsed_ms,
                )
                return
            outcome = decision
        await self._dead_letter(claim, outcome.reason, "exhausted", logger)

    def _imported(self, name: str, outcome: Delivered) -> dict[str, ObjectResult] | None:
        """The import result an import receipt (0402) reports, or ``None`` for a peer.

        A DMS says per object what it imported. A transfer folder cannot know what
        the DMS behind it will make of the file, so filing it there counts as every
        object imported (the 0402 then says "handed over"; documented in README). A
        peer gateway is no import at all: the receiving gateway answers for itself.
        """
        kind = self._settings[name].type
        if kind == "http":
            return None
        if outcome.result is not None:
            return dict(outcome.result.objects)
        return {}

    async def _dead_letter(
        self,
        claim: Claim,
        reason: str,
        kind: str,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        worker = self.worker_id
        await self._journal_call(
            lambda: self.journal.dead_letter(claim, worker, reason, outcome=kind)
        )
        logger.error("delivery_dead_lettered", worker=worker, outcome=kind, error=reason)

    def _abandoned(self, claim: Claim) -> GiveUp | None:
        """A delivery whose earlier attempts all ended without an outcome, too often.

        Normally the policy gives up after a failed attempt. Attempts that never
        report back (the worker crashed, say on a message that kills it, or lost its
        lease) are only counted by the claim, so the budget is enforced here, before
        such a message can take the gateway down once more.
        """
        limit = self._policies[claim.destination].max_attempts
        if claim.attempt <= limit:
            return None
        return GiveUp(
            f"gave up after {claim.attempt - 1} attempts; the last ended without an outcome "
            "(its worker stopped or lost the lease during the delivery)"
        )

    async def _journal_call(self, call: Callable[[], Awaitable[None]]) -> None:
        # The delivery already happened; losing its outcome costs a redelivery after
        # the lease expires, so retry a short database outage for up to one lease.
        try:
            await call()
            return
        except JournalUnavailable:
            pass  # the common case needs no retry machinery; an outage does
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(JournalUnavailable),
            wait=wait_random_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(self._lease.total_seconds()),
            reraise=True,
        ):
            with attempt:
                await call()

    # ------------------------------------------------------------------ shutdown

    def _tasks(self) -> set[asyncio.Task[None]]:
        running = {task for tasks in self._inflight.values() for task in tasks}
        return running | self._recording

    async def _drain(self) -> None:
        tasks = self._tasks()
        if not tasks:
            return
        log.info(
            "worker_draining",
            worker=self.worker_id,
            in_flight=len(tasks),
            grace_seconds=self._grace,
        )
        _, pending = await asyncio.wait(tasks, timeout=self._grace)
        if pending:
            log.warning(
                "deliveries_cancelled",
                worker=self.worker_id,
                count=len(pending),
                consequence="their leases expire and they are delivered again",
            )
            await self._cancel(pending)

    @staticmethod
    async def _cancel(tasks: Collection[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def _first_of(seconds: float, *events: asyncio.Event) -> None:
    """Sleep up to ``seconds``, less if any of ``events`` is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
