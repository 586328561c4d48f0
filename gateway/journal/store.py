"""The journal: one store interface, two backends chosen by URL scheme.

``Journal.from_url("sqlite:///…" | "postgresql://…")`` returns the backend.
Every transaction is a plain function over a SQLAlchemy ``Connection`` (the
``_tx_*`` methods); the backends differ only in how such a function is run and
in how due deliveries are locked while claimed (``_lock_due``):

* SQLite runs every write transaction in one dedicated thread on one connection
  (SQLite has one writer at a time anyway; ``BEGIN IMMEDIATE`` takes the write
  lock up front, so a second process on the same file waits instead of failing
  half-way), and reads on a second connection in a second thread (WAL lets them
  run beside a write). A whole transaction is one hop to that thread. Several
  processes on one file (``serve --processes N``) queue their write transactions
  on an exclusive ``flock`` of ``<journal>.lock`` (``write_lock.py``) rather than
  in SQLite's polling busy handler.
* PostgreSQL runs the same functions on an async psycopg connection
  (``AsyncConnection.run_sync``) and locks claimed rows ``FOR UPDATE SKIP LOCKED``.

Accepts and delivery outcomes that arrive together are written in one
transaction (``GroupCommit``): one fsync for many messages, no added latency. On
SQLite, which writes one transaction at a time anyway, waiting accepts, outcomes
and claims share one transaction (``single_writer``), and the statements of that
hot path run on the driver connection (``sqlite_statements``).

State changes are guarded updates (``… WHERE state = 'claimed' AND lease_owner =
:me``) whose zero-row outcome is an error for that item, and each leaves an event
row. Driver errors are translated here: a lost or refused database connection is
``JournalUnavailable`` (intake answers 503, workers back off).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import (
    Engine,
    Select,
    and_,
    create_engine,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from contracts.builders import ObjectResult
from contracts.delivery import DmsObject
from contracts.journal import (
    Accepted,
    AttemptView,
    AussonderungRecord,
    Claim,
    DeliveryState,
    DeliveryView,
    MessageState,
    MessageView,
    NewMessage,
    PurgedProcess,
    ReceiptState,
    ReceiptTask,
    ReceiptView,
)
from contracts.processes import AbgabeState, AbgabeView, CompletionState, DmsObjectEntry
from gateway.errors import (
    IdempotencyConflict,
    JournalError,
    JournalUnavailable,
    LeaseLost,
    NotFound,
)
from gateway.group_commit import GroupCommit
from gateway.journal import retention, write_lock
from gateway.journal.sqlite_statements import SqliteStatements
from gateway.journal.statements import Statements
from gateway.journal.tables import (
    abgaben,
    attempts,
    aussonderung_records,
    deliveries,
    events,
    messages,
    receipts,
)
from gateway.journal.write_lock import WriteLock

log = structlog.get_logger(__name__)

D = deliveries.c
M = messages.c
A = attempts.c
R = receipts.c
AB = abgaben.c
E = events.c

T = TypeVar("T")
Transaction = Callable[[Connection], T]

#: Key of the PostgreSQL advisory lock that serialises migrations of one database.
_MIGRATION_LOCK = 0x696B7A6A  # "ikzj"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Acceptance:
    """One ``accept`` waiting for its group commit."""

    message: NewMessage
    destinations: tuple[str, ...]
    now: datetime
    receipts: tuple[tuple[str, ReceiptState], ...] = ()
    #: The message's bytes, kept in the journal (a small message); ``None``: in the blob store.
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Outcome:
    """One delivery outcome waiting for its group commit."""

    claim: Claim
    worker: str
    state: DeliveryState
    outcome: str
    error: str | None
    now: datetime
    next_attempt_at: datetime | None
    #: Per-object import results (JSON) when a local destination imported the message.
    imported: str | None = None
    #: The DMS objects an import filed or found (``DmsObject`` as JSON-ready dicts).
    dms_objects: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class _ClaimRequest:
    """One ``claim`` waiting for the next write transaction (one writer only)."""

    worker: str
    limit: int
    lease: timedelta
    destinations: list[str] | None
    now: datetime


#: What the single writer's group commit takes: each kind is written in one transaction.
_Write = _Acceptance | _Outcome | _ClaimRequest


class Journal:
    """Durable record of messages and their deliveries (base class: the shared code path)."""

    #: The backend writes one transaction at a time (SQLite): accepts, outcomes and
    #: claims that wait together then share one transaction, instead of queueing for
    #: the writer as three (each with its own lock, commit and hops to its thread).
    single_writer = False

    def __init__(self, url: str) -> None:
        self.url = url
        self._sql = self._statements()
        self._submit_accept: Callable[[_Acceptance], Awaitable[Accepted]]
        self._submit_outcome: Callable[[_Outcome], Awaitable[None]]
        self._submit_claim: Callable[[_ClaimRequest], Awaitable[list[Claim]]] | None
        if self.single_writer:
            writes: GroupCommit[_Write, Any] = GroupCommit(
                self._write_together, name="journal-group-commit"
            )
            self._groups: tuple[GroupCommit[Any, Any], ...] = (writes,)
            self._submit_accept = self._submit_outcome = writes.submit
            self._submit_claim = writes.submit
        else:
            accepts: GroupCommit[_Acceptance, Accepted] = GroupCommit(
                self._accept_batch, name="journal-accepts"
            )
            outcomes: GroupCommit[_Outcome, None] = GroupCommit(
                self._finish_batch, name="journal-outcomes"
            )
            self._groups = (accepts, outcomes)
            self._submit_accept, self._submit_outcome = accepts.submit, outcomes.submit
            self._submit_claim = None

    @staticmethod
    def from_url(url: str) -> Journal:
        """The journal backend for ``url`` (``sqlite:///PATH`` or ``postgresql://…``).

        Raises:
            JournalError: unsupported URL scheme.
        """
        if url.startswith("sqlite:///"):
            return SqliteJournal.create(url)
        if url.startswith(("postgresql://", "postgresql+psycopg://")):
            return PostgresJournal.create(url)
        raise JournalError(f"unsupported journal URL {url!r}; use sqlite:/// or postgresql://")

    async def close(self) -> None:
        """Finish the transactions being written and release all connections."""
        for group in self._groups:
            await group.close()

    # ------------------------------------------------------------------ backend hooks

    async def _write(self, transaction: Transaction[T], *, durable: bool = True) -> T:
        """Run ``transaction`` in a read-write transaction; commit, or roll back on error.

        Args:
            durable: the commit is on disk before this returns (what intake promises).
                ``False`` for bookkeeping a power failure may lose because losing it
                only repeats a delivery (claims, leases, outcomes): the commit skips
                the flush, and the next durable commit flushes it along.
        """
        raise NotImplementedError

    async def _read(self, transaction: Transaction[T]) -> T:
        """Run ``transaction`` in a read-only transaction (a consistent snapshot)."""
        return await self._write(transaction)

    def _statements(self) -> Statements:
        """The hot path's statements and how this backend runs them."""
        return Statements(self._lock_due)

    def _lock_due(self, due: Select[Any]) -> Select[Any]:
        """Lock the due rows being claimed against other claimers (a no-op on SQLite)."""
        return due

    def _lock_migrations(self, connection: Connection) -> None:
        """Serialise migrations of one database between processes (a no-op on SQLite)."""

    # ------------------------------------------------------------------ schema

    async def upgrade(self) -> None:
        """Apply all migrations (idempotent; safe when several processes start at once)."""
        from alembic import command
        from alembic.config import Config

        def run(connection: Connection) -> None:
            self._lock_migrations(connection)
            config = Config()
            config.set_main_option(
                "script_location", str(resources.files("gateway.journal") / "migrations")
            )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        await self._write(run)

    # ------------------------------------------------------------------ intake

    async def accept(
        self,
        message: NewMessage,
        destinations: Collection[str],
        *,
        receipts: Mapping[str, ReceiptState] | None = None,
        content: bytes | None = None,
        now: datetime | None = None,
    ) -> Accepted:
        """Record a new message and one pending delivery per destination, atomically.

        A message seen before (same partner and Idempotency-Key, or same ProzessID,
        Nachrichtentyp, Absender and bytes) is not recorded again: its id is returned
        with ``duplicate=True``, and no receipt is owed a second time. Returns once
        the record is committed.

        Args:
            receipts: the receipts owed for this message by code, each ``pending``
                (due now) or ``waiting`` (due once a local destination imported it);
                written in the same transaction as the message.
            content: the message's bytes, to keep in the journal (committed with the
                message) instead of the blob store's file; ``None``: intake stored
                them in the blob store before. The caller checked they hash to
                ``message.blob_sha256``.

        Raises:
            IdempotencyConflict: the partner's Idempotency-Key was used for other bytes.
            JournalUnavailable: the database cannot be reached.
        """
        item = _Acceptance(
            message,
            tuple(destinations),
            now or utcnow(),
            tuple((receipts or {}).items()),
            content,
        )
        return await self._submit_accept(item)

    async def _accept_batch(
        self, items: Sequence[_Acceptance]
    ) -> Sequence[Accepted | BaseException]:
        try:
            return await self._write(lambda conn: self._tx_accept(conn, items))
        except IntegrityError:
            if len(items) == 1:
                # A concurrent twin (another process) won the unique constraint: its id
                # is the answer.
                return [
                    await self._read(lambda conn: _existing_or_raise(conn, self._sql, items[0]))
                ]
            # Somebody else's row collides with one of ours; write each on its own.
            return [await _outcome_of(self._accept_batch([item])) for item in items]

    def _tx_accept(
        self, conn: Connection, items: Sequence[_Acceptance]
    ) -> list[Accepted | BaseException]:
        """Insert the new ones of ``items``; duplicates (also within the batch) answer the first."""
        outcomes: list[Accepted | BaseException] = []
        new_messages: list[dict[str, Any]] = []
        new_deliveries: list[dict[str, Any]] = []
        new_events: list[dict[str, Any]] = []
        new_receipts: list[dict[str, Any]] = []
        new_contents: dict[str, bytes] = {}
        by_dedup: dict[str, str] = {}
        by_key: dict[tuple[str, str], tuple[str, str]] = {}
        # Each key is a SHA-256 over the message's fields: computed once here, not at
        # every use, since this runs while other writers (processes too) wait.
        dedup_keys = [item.message.dedup_key for item in items]
        # One look-up for the whole batch: which of these contents are stored already.
        stored = self._sql.stored_dedups(conn, dedup_keys)
        for item, dedup_key in zip(items, dedup_keys, strict=True):
            message = item.message
            try:
                earlier = _in_batch(message, dedup_key, by_dedup, by_key) or _find_existing(
                    conn, self._sql, message, stored, dedup_key
                )
            except IdempotencyConflict as exc:
                outcomes.append(exc)
                continue
            if earlier is not None:
                outcomes.append(earlier)
                continue
            message_id = str(uuid.uuid4())
            by_dedup[dedup_key] = message_id
            if message.idempotency_key is not None:
                by_key[(message.partner_id, message.idempotency_key)] = (
                    message_id,
                    message.blob_sha256,
                )
            new_messages.append(
                {
                    "id": message_id,
                    "received_at": item.now,
                    "dedup_key": dedup_key,
                    **message.model_dump(),
                }
            )
            new_deliveries.extend(
                {
                    "message_id": message_id,
                    "destination": destination,
                    "state": DeliveryState.PENDING,
                    "attempts": 0,
                    "next_attempt_at": item.now,
                    "window_started_at": item.now,
                    "created_at": item.now,
                    "updated_at": item.now,
                }
                for destination in item.destinations
            )
            new_receipts.extend(
                {
                    "message_id": message_id,
                    "code": code,
                    "state": state,
                    "attempts": 0,
                    "next_attempt_at": item.now,
                    "ready_at": item.now if state is ReceiptState.PENDING else None,
                    "created_at": item.now,
                    "updated_at": item.now,
                }
                for code, state in item.receipts
            )
            new_events.append(
                _event_row(
                    item.now,
                    message_id,
                    None,
                    "accepted",
                    destinations=list(item.destinations),
                )
            )
            if item.content is not None:
                new_contents[message.blob_sha256] = item.content
            outcomes.append(Accepted(message_id=message_id, duplicate=False))
        if new_contents:
            self._sql.store_contents(
                conn, [{"sha256": sha, "content": data} for sha, data in new_contents.items()]
            )
        if new_messages:
            self._sql.insert(conn, messages, new_messages)
            if new_deliveries:
                self._sql.insert(conn, deliveries, new_deliveries)
            self._sql.insert(conn, events, new_events)
            if new_receipts:
                self._sql.insert(conn, receipts, new_receipts)
        return outcomes

    async def inline_content(self, sha256: str) -> bytes | None:
        """The content with this SHA-256 if the journal keeps it (a small message), else ``None``.

        Raises:
            JournalUnavailable: the database cannot be reached.
        """
        row = await self._read(
            lambda conn: conn.execute(self._sql.inline_content, {"sha256": sha256}).first()
        )
        return None if row is None else bytes(row.content)

    # ------------------------------------------------------------------ delivery

    async def claim(
        self,
        worker: str,
        *,
        limit: int,
        lease: timedelta,
        destinations: Collection[str] | None = None,
        now: datetime | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` due deliveries (pending and due, or with an expired lease).

        Raises:
            JournalUnavailable: the database cannot be reached.
        """
        if limit <= 0 or (destinations is not None and not destinations):
            return []
        at = now or utcnow()
        wanted = None if destinations is None else list(destinations)
        if self._submit_claim is not None:
            return await self._submit_claim(_ClaimRequest(worker, limit, lease, wanted, at))
        # Not durable: a claim lost to a power failure leaves the delivery due again.
        return await self._write(
            lambda conn: self._tx_claim(conn, worker, limit, lease, wanted, at), durable=False
        )

    def _tx_claim(
        self,
        conn: Connection,
        worker: str,
        limit: int,
        lease: timedelta,
        destinations: list[str] | None,
        now: datetime,
    ) -> list[Claim]:
        params: dict[str, Any] = {
            "now": now,
            "limit": limit,
            "worker": worker,
            "until": now + lease,
        }
        if destinations is not None:
            params["destinations"] = destinations
        claimed = self._sql.claim_due(conn, params)
        if not claimed:
            return []
        ids = [delivery_id for delivery_id, _ in claimed]
        # Attempts whose worker vanished (lease expired) end here.
        self._sql.end_expired_attempts(conn, ids, now)
        self._sql.insert(
            conn,
            attempts,
            [
                {"delivery_id": delivery_id, "number": number, "worker": worker, "started_at": now}
                for delivery_id, number in claimed
            ],
        )
        return self._sql.claims(conn, ids)

    async def renew(self, claim: Claim, worker: str, lease: timedelta) -> Claim:
        """Extend a lease that is still ours.

        Raises:
            LeaseLost: another worker holds the delivery now, or it finished.
        """
        renewed, lost = await self.renew_many([claim], worker, lease)
        if lost:
            raise lost[0][1]
        return renewed[0]

    async def renew_many(
        self, claims: Sequence[Claim], worker: str, lease: timedelta
    ) -> tuple[list[Claim], list[tuple[Claim, LeaseLost]]]:
        """Extend the leases that are still ours, in one transaction.

        Returns:
            The renewed claims (with their new ``lease_until``), and the claims whose
            lease was lost (another worker holds the delivery now, or it finished).
        """
        until = utcnow() + lease

        def renew(conn: Connection) -> list[bool]:
            # Rows in id order, as every multi-row update here: two transactions of
            # one process (a renewal and a batch of outcomes) never deadlock.
            held = {
                claim.delivery_id: conn.execute(
                    self._sql.renew,
                    {
                        "b_id": claim.delivery_id,
                        "b_worker": worker,
                        "b_attempt": claim.attempt,
                        "b_until": until,
                    },
                ).rowcount
                > 0
                for claim in sorted(claims, key=lambda c: c.delivery_id)
            }
            return [held[claim.delivery_id] for claim in claims]

        held = await self._write(renew, durable=False)
        renewed = [
            claim.model_copy(update={"lease_until": until})
            for claim, ok in zip(claims, held, strict=True)
            if ok
        ]
        lost = [
            (claim, LeaseLost(f"delivery {claim.delivery_id} is no longer leased to {worker}"))
            for claim, ok in zip(claims, held, strict=True)
            if not ok
        ]
        return renewed, lost

    async def complete(
        self,
        claim: Claim,
        worker: str,
        *,
        imported: Mapping[str, ObjectResult] | None = None,
        dms_objects: Sequence[DmsObject] = (),
        now: datetime | None = None,
    ) -> None:
        """Mark a claimed delivery delivered.

        Args:
            imported: the destination imported the message (a DMS, a transfer folder):
                its per-object results (failures; objects not named were imported).
                A waiting import receipt of the message becomes due, carrying them, in
                the same transaction.
            dms_objects: what a DMS import filed or found; kept in the
                ``delivery_delivered`` event's detail (no extra statement), listed by
                ``dms_objects``.

        Raises:
            LeaseLost: the lease was taken over; the other worker's outcome counts.
        """
        at = now or utcnow()
        results = None if imported is None else _results_json(imported)
        item = _Outcome(
            claim,
            worker,
            DeliveryState.DELIVERED,
            "delivered",
            None,
            at,
            None,
            results,
            [o.model_dump(mode="json") for o in dms_objects] or None,
        )
        await self._submit_outcome(item)

    async def retry_later(
        self, claim: Claim, worker: str, at: datetime, error: str, *, now: datetime | None = None
    ) -> None:
        """Return a claimed delivery to pending, due again at ``at``.

        Raises:
            LeaseLost: the lease was taken over.
        """
        await self._finish(claim, worker, DeliveryState.PENDING, "transient", error, now, at)

    async def dead_letter(
        self,
        claim: Claim,
        worker: str,
        reason: str,
        *,
        outcome: str = "permanent",
        now: datetime | None = None,
    ) -> None:
        """Park a claimed delivery in the dead-letter queue.

        Raises:
            LeaseLost: the lease was taken over.
        """
        await self._finish(claim, worker, DeliveryState.DEAD, outcome, reason, now)

    async def _finish(
        self,
        claim: Claim,
        worker: str,
        state: DeliveryState,
        outcome: str,
        error: str | None,
        now: datetime | None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        item = _Outcome(claim, worker, state, outcome, error, now or utcnow(), next_attempt_at)
        await self._submit_outcome(item)

    async def _finish_batch(self, items: Sequence[_Outcome]) -> Sequence[BaseException | None]:
        return await self._write(
            lambda conn: _tx_finish(conn, self._sql, items), durable=_durable_outcomes(items)
        )

    # ------------------------------------------------------------------ one writer

    async def _write_together(self, items: Sequence[_Write]) -> list[Any]:
        """Accepts, outcomes and claims waiting together, in one transaction (in that order).

        The claims come last, so they can take deliveries accepted in the same
        transaction. An accept that collides with another process's row rolls the
        whole transaction back; then the accepts are written on their own (their
        usual path, which sorts that out) and the rest without them.
        """
        outcomes = [item for item in items if isinstance(item, _Outcome)]
        accepts = [item for item in items if isinstance(item, _Acceptance)]
        claims = [item for item in items if isinstance(item, _ClaimRequest)]

        def others(conn: Connection) -> tuple[list[BaseException | None], list[list[Claim]]]:
            finished = _tx_finish(conn, self._sql, outcomes) if outcomes else []
            return finished, [self._tx_claim_request(conn, request) for request in claims]

        def together(
            conn: Connection,
        ) -> tuple[list[BaseException | None], list[list[Claim]], list[Accepted | BaseException]]:
            accepted = self._tx_accept(conn, accepts)
            finished, claimed = others(conn)
            return finished, claimed, accepted

        durable = bool(accepts) or _durable_outcomes(outcomes)
        if not accepts:
            finished, claimed = await self._write(others, durable=durable)
            accepted: Sequence[Accepted | BaseException] = []
        else:
            try:
                finished, claimed, accepted = await self._write(together, durable=durable)
            except IntegrityError:
                finished, claimed = await self._write(others, durable=_durable_outcomes(outcomes))
                accepted = await self._accept_batch(accepts)
        # Each item's answer, in the order of ``items``: the n-th of its kind.
        answers = {
            _Acceptance: iter(accepted),
            _Outcome: iter(finished),
            _ClaimRequest: iter(claimed),
        }
        return [next(answers[type(item)]) for item in items]

    def _tx_claim_request(self, conn: Connection, request: _ClaimRequest) -> list[Claim]:
        return self._tx_claim(
            conn, request.worker, request.limit, request.lease, request.destinations, request.now
        )

    # ------------------------------------------------------------------ receipts

    async def due_receipts(
        self, *, limit: int = 20, now: datetime | None = None
    ) -> list[ReceiptTask]:
        """Receipts due for production (pending and due), oldest first."""
        at = now or utcnow()
        query = (
            select(
                R.id,
                R.message_id,
                R.code,
                R.attempts,
                R.ready_at,
                R.results,
                M.blob_sha256,
                M.content_kind,
                M.prozess_id,
                M.absender,
            )
            .join(messages, M.id == R.message_id)
            .where(R.state == ReceiptState.PENDING, R.next_attempt_at <= at)
            .order_by(R.next_attempt_at, R.id)
            .limit(limit)
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [
            ReceiptTask(
                id=row.id,
                message_id=row.message_id,
                code=row.code,
                attempts=row.attempts,
                ready_at=row.ready_at,
                blob_sha256=row.blob_sha256,
                content_kind=row.content_kind,
                prozess_id=row.prozess_id,
                absender=row.absender,
                results={
                    uuid: ObjectResult.model_validate(result)
                    for uuid, result in json.loads(row.results or "{}").items()
                },
            )
            for row in rows
        ]

    async def receipt_done(
        self,
        task: ReceiptTask,
        state: ReceiptState,
        *,
        receipt_message_id: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Record a pending receipt as ``produced`` (with the receipt's message id) or ``skipped``.

        Returns:
            Whether this call recorded it (``False``: another producer did first).
        """
        if state not in (ReceiptState.PRODUCED, ReceiptState.SKIPPED):
            raise ValueError(f"a receipt is done as produced or skipped, not {state}")
        at = now or utcnow()

        def done(conn: Connection) -> bool:
            result = conn.execute(
                update(receipts)
                .where(R.id == task.id, R.state == ReceiptState.PENDING)
                .values(
                    state=state,
                    receipt_message_id=receipt_message_id,
                    last_error=None,
                    updated_at=at,
                )
            )
            if result.rowcount == 0:
                return False
            conn.execute(
                insert(events),
                _event_row(
                    at,
                    task.message_id,
                    None,
                    f"receipt_{state.value}",
                    code=task.code,
                    receipt_message_id=receipt_message_id,
                ),
            )
            return True

        return await self._write(done)

    async def receipt_retry_later(
        self, task: ReceiptTask, at: datetime, error: str, *, now: datetime | None = None
    ) -> None:
        """Keep a receipt pending, due again at ``at``, after a failed production."""
        changed = now or utcnow()
        await self._write(
            lambda conn: conn.execute(
                update(receipts)
                .where(R.id == task.id, R.state == ReceiptState.PENDING)
                .values(
                    attempts=R.attempts + 1,
                    next_attempt_at=at,
                    last_error=error,
                    updated_at=changed,
                )
            )
        )

    async def receipt_states(self, message_id: str) -> dict[str, ReceiptState]:
        """The receipts owed for one message, by code, and where each stands."""
        rows = await self._read(
            lambda conn: conn.execute(
                select(R.code, R.state).where(R.message_id == message_id)
            ).all()
        )
        return {row.code: ReceiptState(row.state) for row in rows}

    # ------------------------------------------------------------------ abgaben

    async def abgabe_reserve(
        self,
        akte: str,
        partner_id: str,
        completion_action: str,
        *,
        now: datetime | None = None,
    ) -> tuple[AbgabeView, bool]:
        """The open (or starting) Abgabe of ``akte`` to the partner, or a new one ``starting``.

        Returns:
            The Abgabe, and whether this call created it (with a new ProzessID).
        """
        at = now or utcnow()
        # Whole seconds: the ProzessID's export is rebuilt with this timestamp after a
        # crash, and the xdomea Erstellungszeitpunkt carries no fractions.
        at = at.replace(microsecond=0)
        open_states = (AbgabeState.STARTING, AbgabeState.OPEN)
        query = select(abgaben).where(
            AB.akte == akte, AB.partner_id == partner_id, AB.state.in_(open_states)
        )

        def reserve(conn: Connection) -> tuple[AbgabeView, bool]:
            row = conn.execute(query).first()
            if row is not None:
                return _abgabe_view(row), False
            values = {
                "id": str(uuid.uuid4()),
                "akte": akte,
                "partner_id": partner_id,
                "prozess_id": str(uuid.uuid4()),
                "message_id": None,
                "state": AbgabeState.STARTING,
                "completion_action": completion_action,
                "created_at": at,
                "updated_at": at,
            }
            conn.execute(insert(abgaben), values)
            return _abgabe_view(
                conn.execute(select(abgaben).where(AB.id == values["id"])).one()
            ), True

        try:
            return await self._write(reserve)
        except IntegrityError:
            # A concurrent start of the same Akte to the same partner won the unique index.
            row = await self._read(lambda conn: conn.execute(query).first())
            if row is None:
                raise
            return _abgabe_view(row), False

    async def abgabe_opened(
        self, abgabe_id: str, message_id: str, *, now: datetime | None = None
    ) -> None:
        """Record that the Abgabe's 0401 is journaled: ``starting`` → ``open`` (repeats: no-op)."""
        at = now or utcnow()
        await self._write(
            lambda conn: conn.execute(
                update(abgaben)
                .where(AB.id == abgabe_id, AB.state == AbgabeState.STARTING)
                .values(state=AbgabeState.OPEN, message_id=message_id, updated_at=at)
            )
        )

    async def abgabe_abandon(self, abgabe_id: str) -> None:
        """Remove a ``starting`` Abgabe whose export or intake failed: nothing is left of it."""
        await self._write(
            lambda conn: conn.execute(
                abgaben.delete().where(AB.id == abgabe_id, AB.state == AbgabeState.STARTING)
            )
        )

    async def abgaben_open(self, *, limit: int = 100) -> list[AbgabeView]:
        """Open Abgaben (0401 journaled, completion not yet decided), oldest first."""
        query = (
            select(abgaben)
            .where(AB.state == AbgabeState.OPEN)
            .order_by(AB.created_at, AB.id)
            .limit(limit)
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_abgabe_view(row) for row in rows]

    async def abgabe_finish(
        self,
        abgabe: AbgabeView,
        state: AbgabeState,
        completion: CompletionState,
        detail: str,
        *,
        now: datetime | None = None,
    ) -> bool:
        """Close an open Abgabe with its completion outcome (guarded; an event row).

        Returns:
            Whether this call closed it (``False``: another process did first).
        """
        if state not in (AbgabeState.COMPLETED, AbgabeState.PARTIALLY_IMPORTED):
            raise ValueError(
                f"an Abgabe is finished as completed or partially imported, not {state}"
            )
        at = now or utcnow()

        def finish(conn: Connection) -> bool:
            result = conn.execute(
                update(abgaben)
                .where(AB.id == abgabe.id, AB.state == AbgabeState.OPEN)
                .values(
                    state=state,
                    completion_state=completion,
                    completion_detail=detail,
                    completed_at=at,
                    updated_at=at,
                )
            )
            if result.rowcount == 0:
                return False
            if abgabe.message_id is not None:
                conn.execute(
                    insert(events),
                    _event_row(
                        at,
                        abgabe.message_id,
                        None,
                        f"abgabe_{state.value}",
                        completion=completion.value,
                        detail=detail,
                    ),
                )
            return True

        return await self._write(finish)

    async def abgabe_for_process(self, prozess_id: str) -> AbgabeView | None:
        """The Abgabe started under this ProzessID, if it was started here."""
        query = select(abgaben).where(func.lower(AB.prozess_id) == prozess_id.lower())
        row = await self._read(lambda conn: conn.execute(query).first())
        return _abgabe_view(row) if row is not None else None

    async def receipts_owed(
        self, message_ids: Collection[str], *, timeout: timedelta, now: datetime | None = None
    ) -> list[ReceiptView]:
        """The receipts owed for these messages, oldest first, flagged when overdue.

        Args:
            timeout: how long a receipt may stay waiting or pending before it is overdue.
        """
        if not message_ids:
            return []
        at = now or utcnow()
        query = (
            select(receipts).where(R.message_id.in_(list(message_ids))).order_by(R.created_at, R.id)
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        owed = (ReceiptState.WAITING, ReceiptState.PENDING)
        return [
            ReceiptView(
                message_id=row.message_id,
                code=row.code,
                state=ReceiptState(row.state),
                attempts=row.attempts,
                created_at=row.created_at,
                next_attempt_at=row.next_attempt_at,
                last_error=row.last_error,
                receipt_message_id=row.receipt_message_id,
                overdue=row.state in owed and at - row.created_at > timeout,
            )
            for row in rows
        ]

    async def replay(self, message_id: str, *, now: datetime | None = None) -> int:
        """Put a message's dead-lettered deliveries back in the queue with a fresh budget.

        Returns:
            How many deliveries were replayed (0: none was dead).

        Raises:
            NotFound: no such message.
        """
        at = now or utcnow()

        def replay(conn: Connection) -> int:
            if conn.execute(select(M.id).where(M.id == message_id)).first() is None:
                raise NotFound(f"no message {message_id}")
            result = conn.execute(
                update(deliveries)
                .where(D.message_id == message_id, D.state == DeliveryState.DEAD)
                .values(
                    state=DeliveryState.PENDING,
                    attempts=0,
                    next_attempt_at=at,
                    window_started_at=at,
                    finished_at=None,
                    updated_at=at,
                )
            )
            if result.rowcount:
                conn.execute(
                    insert(events),
                    _event_row(at, message_id, None, "replayed", deliveries=result.rowcount),
                )
            return int(result.rowcount)

        return await self._write(replay)

    # ------------------------------------------------------------------ views

    async def get_message(self, message_id: str) -> MessageView:
        """One message with its deliveries and their attempts.

        Raises:
            NotFound: no such message.
        """
        views = await self._views(M.id == message_id, limit=1)
        if not views:
            raise NotFound(f"no message {message_id}")
        return views[0]

    async def list_messages(
        self,
        *,
        state: MessageState | None = None,
        partner: str | None = None,
        visible_to: tuple[str, str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MessageView]:
        """Messages, newest first, filtered by derived state and sending partner.

        Args:
            visible_to: ``(partner id, Behördenkennung)``: only messages that partner
                sent, or whose Absender or Empfänger is that Behördenkennung.
        """
        conditions: list[Any] = []
        if partner is not None:
            conditions.append(M.partner_id == partner)
        if visible_to is not None:
            partner_id, kennung = visible_to
            conditions.append(
                or_(M.partner_id == partner_id, M.absender == kennung, M.empfaenger == kennung)
            )
        if state is not None:
            conditions.append(_state_condition(state))
        return await self._views(and_(true(), *conditions), limit=limit, offset=offset)

    async def process(self, prozess_id: str) -> list[MessageView]:
        """Every message of one ProzessID (compared case-insensitively), oldest first."""
        return await self._views(
            func.lower(M.prozess_id) == prozess_id.lower(), limit=10_000, newest_first=False
        )

    async def dms_objects(self, message_ids: Sequence[str]) -> list[DmsObjectEntry]:
        """The DMS objects recorded with the deliveries of ``message_ids``, oldest first.

        Each delivery that imported a message into a DMS kept them in its
        ``delivery_delivered`` event; a redelivery adds its own (``found``) entries.
        """
        if not message_ids:
            return []
        query = (
            select(E.at, E.message_id, E.detail)
            .where(E.message_id.in_(list(message_ids)), E.kind == "delivery_delivered")
            .order_by(E.id)
        )

        def read(conn: Connection) -> list[DmsObjectEntry]:
            entries: list[DmsObjectEntry] = []
            for row in conn.execute(query).all():
                detail = json.loads(row.detail or "{}")
                for objekt in detail.get("dms_objects", ()):
                    entries.append(
                        DmsObjectEntry(
                            at=row.at,
                            message_id=row.message_id,
                            destination=detail.get("destination", ""),
                            **objekt,
                        )
                    )
            return entries

        return await self._read(read)

    # ------------------------------------------------------------------ aussonderung

    async def record_aussonderung(
        self, prozess_id: str, key: str, kind: str, detail: str, *, now: datetime | None = None
    ) -> bool:
        """Record one fact of an Aussonderung process once (``gateway.aussonderung``).

        Returns:
            Whether this call recorded it (``False``: ``key`` was recorded before, and
            the first record stays).
        """
        row = {
            "prozess_id": prozess_id,
            "key": key,
            "kind": kind,
            "detail": detail,
            "at": now or utcnow(),
        }

        def record(conn: Connection) -> bool:
            dialect = conn.dialect.name
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as upsert
            else:
                from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
            statement = (
                upsert(aussonderung_records)
                .values(row)
                .on_conflict_do_nothing()
                .returning(aussonderung_records.c.id)
            )
            # RETURNING, not rowcount: the PostgreSQL driver reports no reliable rowcount
            # for a skipped ON CONFLICT DO NOTHING.
            return conn.execute(statement).first() is not None

        return await self._write(record)

    async def aussonderung_records(self, prozess_id: str) -> list[AussonderungRecord]:
        """What was recorded for one process (ProzessID case-insensitive), oldest first."""
        AR = aussonderung_records.c
        rows = await self._read(
            lambda conn: conn.execute(
                select(aussonderung_records)
                .where(func.lower(AR.prozess_id) == prozess_id.lower())
                .order_by(AR.id)
            ).all()
        )
        return [
            AussonderungRecord(
                prozess_id=r.prozess_id, key=r.key, kind=r.kind, detail=r.detail, at=r.at
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ retention

    async def finished_processes(
        self, *, own_kennung: str, cutoff: datetime, limit: int | None = 500
    ) -> list[str]:
        """Up to ``limit`` processes finished before ``cutoff``, oldest first (``retention``).

        Args:
            own_kennung: this node's Behördenkennung (its own 0401s wait for a 0402).
            cutoff: nothing in a finished process happened at or after this time.
            limit: most ProzessIDs returned (lower-cased); ``None``: all.
        """
        return await self._read(
            lambda conn: retention.finished_processes(
                conn, own_kennung=own_kennung, cutoff=cutoff, limit=limit
            )
        )

    async def purge_process(
        self, prozess_id: str, *, own_kennung: str, cutoff: datetime
    ) -> PurgedProcess | None:
        """Forget one finished process in one transaction; ``None`` if it is not finished.

        The conditions are checked again in the deleting transaction: a message of
        the process that arrived after ``finished_processes`` keeps it.
        """
        return await self._write(
            lambda conn: retention.purge_process(
                conn, prozess_id, own_kennung=own_kennung, cutoff=cutoff
            )
        )

    async def referenced_contents(self, shas: Sequence[str]) -> set[str]:
        """Which of ``shas`` a message or an XTA box entry still refers to (``blobs prune``)."""
        return await self._read(lambda conn: retention.referenced_contents(conn, shas))

    async def counts(self) -> dict[str, int]:
        """Number of deliveries per state."""
        rows = await self._read(
            lambda conn: conn.execute(select(D.state, func.count()).group_by(D.state)).all()
        )
        return {row[0]: int(row[1]) for row in rows}

    async def _views(
        self, condition: Any, *, limit: int, offset: int = 0, newest_first: bool = True
    ) -> list[MessageView]:
        order = (M.received_at.desc(), M.id) if newest_first else (M.received_at, M.id)
        query = select(messages).where(condition).order_by(*order).limit(limit).offset(offset)
        return await self._read(lambda conn: _tx_views(conn, query))


# ---------------------------------------------------------------------- transactions


def _find_existing(
    conn: Connection,
    sql: Statements,
    message: NewMessage,
    stored: dict[str, str] | None = None,
    dedup_key: str | None = None,
) -> Accepted | None:
    """The earlier message this one repeats, if any (by Idempotency-Key or dedup key).

    ``stored`` maps dedup keys to message ids when they were looked up already;
    ``dedup_key`` is the message's, when computed already.
    """
    if message.idempotency_key is not None:
        row = conn.execute(
            sql.find_by_key, {"partner": message.partner_id, "key": message.idempotency_key}
        ).first()
        if row is not None:
            _check_same_bytes(message, row.id, row.blob_sha256)
            return Accepted(message_id=row.id, duplicate=True)
    key = dedup_key if dedup_key is not None else message.dedup_key
    if stored is not None:
        earlier = stored.get(key)
    else:
        row = conn.execute(sql.find_by_dedup, {"dedup": key}).first()
        earlier = None if row is None else row.id
    return Accepted(message_id=earlier, duplicate=True) if earlier is not None else None


def _in_batch(
    message: NewMessage,
    dedup_key: str,
    by_dedup: dict[str, str],
    by_key: dict[tuple[str, str], tuple[str, str]],
) -> Accepted | None:
    """The same as ``_find_existing`` over the messages of the batch not yet inserted."""
    if message.idempotency_key is not None:
        found = by_key.get((message.partner_id, message.idempotency_key))
        if found is not None:
            _check_same_bytes(message, *found)
            return Accepted(message_id=found[0], duplicate=True)
    earlier = by_dedup.get(dedup_key)
    return Accepted(message_id=earlier, duplicate=True) if earlier is not None else None


def _check_same_bytes(message: NewMessage, earlier_id: str, earlier_sha256: str) -> None:
    if earlier_sha256 != message.blob_sha256:
        raise IdempotencyConflict(
            f"Idempotency-Key {message.idempotency_key!r} was used for message "
            f"{earlier_id} with different content; use a new key for a new message"
        )


def _existing_or_raise(conn: Connection, sql: Statements, item: _Acceptance) -> Accepted:
    """After losing a unique-constraint race: the winner's id (there must be one)."""
    found = _find_existing(conn, sql, item.message)
    if found is None:
        raise JournalError("the journal refused a new message for a reason other than a duplicate")
    return found


async def _outcome_of(call: Any) -> Accepted | BaseException:
    try:
        [outcome] = await call
    except JournalUnavailable:
        raise
    except (IntegrityError, JournalError) as exc:
        return exc
    return outcome  # type: ignore[no-any-return]


def _tx_finish(
    conn: Connection, sql: Statements, items: Sequence[_Outcome]
) -> list[BaseException | None]:
    """Record each outcome whose lease is still held; ``LeaseLost`` for the others."""
    # In delivery id order, like renewals: concurrent transactions never deadlock.
    ordered = sorted(range(len(items)), key=lambda index: items[index].claim.delivery_id)
    held = sql.finish_many(conn, [_finish_params(items[index]) for index in ordered])
    results: dict[int, BaseException | None] = {}
    finished: list[dict[str, Any]] = []
    imported: list[dict[str, Any]] = []
    new_events: list[dict[str, Any]] = []
    for index, lease_held in zip(ordered, held, strict=True):
        item = items[index]
        claim = item.claim
        if not lease_held:
            results[index] = LeaseLost(
                f"delivery {claim.delivery_id} attempt {claim.attempt} is no longer leased "
                f"to {item.worker}; its outcome {item.outcome!r} is discarded"
            )
            continue
        results[index] = None
        finished.append(
            {
                "b_delivery": claim.delivery_id,
                "b_number": claim.attempt,
                "b_finished": item.now,
                "b_outcome": item.outcome,
                "b_error": item.error,
            }
        )
        if item.imported is not None and claim.receipt_waiting:
            imported.append(
                {
                    "b_message": claim.message_id,
                    "b_results": item.imported,
                    "b_ready": item.now,
                    "b_next": item.now,
                    "b_updated": item.now,
                }
            )
        new_events.append(
            _event_row(
                item.now,
                claim.message_id,
                claim.delivery_id,
                f"delivery_{item.outcome}",
                destination=claim.destination,
                attempt=claim.attempt,
                error=item.error,
                next_attempt_at=item.next_attempt_at.isoformat() if item.next_attempt_at else None,
                dms_objects=item.dms_objects,
            )
        )
    if finished:
        sql.finish_attempts_of(conn, finished)
        sql.insert(conn, events, new_events)
    if imported:
        # One statement for the batch: most imports owe no 0402 and match no row.
        sql.imports_done(conn, imported)
    return [results[index] for index in range(len(items))]


def _finish_params(item: _Outcome) -> dict[str, Any]:
    """The ``finish`` statement's parameters for one outcome."""
    pending = item.state is DeliveryState.PENDING
    return {
        "b_id": item.claim.delivery_id,
        "b_worker": item.worker,
        "b_attempt": item.claim.attempt,
        "b_state": item.state,
        "b_now": item.now,
        "b_error": item.error,
        "b_next": (item.next_attempt_at or item.now) if pending else None,
        "b_finished": None if pending else item.now,
    }


def _durable_outcomes(items: Sequence[_Outcome]) -> bool:
    """Whether outcomes must be on disk at commit.

    Mostly not: an outcome lost to a power failure repeats the delivery, which
    destinations recognise (at least once); a process crash loses nothing. But
    when an import receipt becomes due, nothing else would repeat it (the delivery
    it follows is already recorded as done).
    """
    return any(item.imported is not None and item.claim.receipt_waiting for item in items)


def _results_json(results: Mapping[str, ObjectResult]) -> str:
    return json.dumps(
        {uuid: result.model_dump(mode="json") for uuid, result in results.items()},
        sort_keys=True,
    )


def _tx_views(conn: Connection, query: Select[Any]) -> list[MessageView]:
    rows = conn.execute(query).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    delivery_rows = conn.execute(
        select(deliveries).where(D.message_id.in_(ids)).order_by(D.id)
    ).all()
    attempt_rows = (
        conn.execute(
            select(attempts).where(A.delivery_id.in_([d.id for d in delivery_rows])).order_by(A.id)
        ).all()
        if delivery_rows
        else []
    )
    history: dict[int, list[AttemptView]] = {}
    for row in attempt_rows:
        history.setdefault(row.delivery_id, []).append(
            AttemptView(
                number=row.number,
                worker=row.worker,
                started_at=row.started_at,
                finished_at=row.finished_at,
                outcome=row.outcome,
                error=row.error,
            )
        )
    by_message: dict[str, list[DeliveryView]] = {}
    for row in delivery_rows:
        by_message.setdefault(row.message_id, []).append(
            DeliveryView(
                destination=row.destination,
                state=DeliveryState(row.state),
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at,
                last_error=row.last_error,
                finished_at=row.finished_at,
                history=tuple(history.get(row.id, ())),
            )
        )
    return [_message_view(row, by_message.get(row.id, [])) for row in rows]


def _event_row(
    at: datetime, message_id: str, delivery_id: int | None, kind: str, **detail: Any
) -> dict[str, Any]:
    return {
        "at": at,
        "message_id": message_id,
        "delivery_id": delivery_id,
        "kind": kind,
        "detail": json.dumps({k: v for k, v in detail.items() if v is not None}),
    }


#: Runs of a PostgreSQL transaction that loses a deadlock or serialisation conflict.
_CONFLICT_ATTEMPTS = 3
#: SQLSTATEs of conflicts PostgreSQL resolves by rolling one transaction back.
_CONFLICTS = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def _is_conflict(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _CONFLICTS


def _translated(exc: DBAPIError) -> BaseException:
    """A lost or refused connection as ``JournalUnavailable``; anything else as it is."""
    if _is_conflict(exc):
        return exc  # retried by the backend; not an outage
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return JournalUnavailable(_describe(exc))
    return exc


def _describe(exc: DBAPIError) -> str:
    original = getattr(exc, "orig", None)
    return f"journal database unavailable: {original or exc}".splitlines()[0]


def _state_condition(state: MessageState) -> Any:
    dead = exists().where(D.message_id == M.id, D.state == DeliveryState.DEAD)
    open_ = exists().where(
        D.message_id == M.id, D.state.in_([DeliveryState.PENDING, DeliveryState.CLAIMED])
    )
    if state is MessageState.DEAD:
        return dead
    if state is MessageState.DELIVERED:
        return and_(~dead, ~open_)
    return and_(~dead, open_)


def _abgabe_view(row: Row[Any]) -> AbgabeView:
    return AbgabeView(
        id=row.id,
        akte=row.akte,
        partner_id=row.partner_id,
        prozess_id=row.prozess_id,
        message_id=row.message_id,
        state=AbgabeState(row.state),
        completion_action=row.completion_action,
        completion_state=CompletionState(row.completion_state) if row.completion_state else None,
        completion_detail=row.completion_detail,
        completed_at=row.completed_at,
        created_at=row.created_at,
    )


def _message_view(row: Row[Any], deliveries_: list[DeliveryView]) -> MessageView:
    states = {d.state for d in deliveries_}
    if DeliveryState.DEAD in states:
        state = MessageState.DEAD
    elif states and states == {DeliveryState.DELIVERED}:
        state = MessageState.DELIVERED
    else:
        state = MessageState.ACCEPTED
    return MessageView(
        id=row.id,
        state=state,
        received_at=row.received_at,
        partner_id=row.partner_id,
        channel=row.channel,
        prozess_id=row.prozess_id,
        nachrichtentyp=row.nachrichtentyp,
        message_element=row.message_element,
        xdomea_version=row.xdomea_version,
        absender=row.absender,
        empfaenger=row.empfaenger,
        blob_sha256=row.blob_sha256,
        size=row.size,
        file_name=row.file_name,
        deliveries=tuple(deliveries_),
    )


class SqliteJournal(Journal):
    """The embedded default: one SQLite file in WAL mode.

    Writes run in one thread on one connection (``BEGIN IMMEDIATE``), reads in a
    second thread on a second connection; ``synchronous=FULL`` makes every commit
    durable before intake acknowledges it.
    """

    def __init__(
        self, url: str, writer: Engine, reader: Engine | None, lock: WriteLock | None = None
    ) -> None:
        super().__init__(url)
        self._writer = writer
        self._lock = lock
        self._reader = reader
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="journal-writer")
        self._synchronous = "FULL"  # the writer connection's mode; only its thread changes it
        # The writer thread's connection, kept open between transactions: checking
        # one out of the pool and back in for every transaction cost a quarter of the
        # writer thread's time under load. Only the writer thread touches it.
        self._writer_conn: Connection | None = None
        self._read_thread = (
            ThreadPoolExecutor(1, thread_name_prefix="journal-reader") if reader else None
        )

    single_writer = True

    def _statements(self) -> Statements:
        return SqliteStatements(self._lock_due)

    @classmethod
    def create(cls, url: str) -> SqliteJournal:
        """Engines for ``sqlite:///PATH``; the file's folder is created if missing."""
        path = url.removeprefix("sqlite:///")
        in_memory = path in ("", ":memory:")
        if not in_memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = _sqlite_engine(path, begin="BEGIN IMMEDIATE")
        # An in-memory database exists once per connection: there, reads use the writer.
        reader = None if in_memory else _sqlite_engine(path, begin="BEGIN")
        lock = None if in_memory else WriteLock(write_lock.lock_path(Path(path)))
        return cls(url, writer, reader, lock)

    async def _write(self, transaction: Transaction[T], *, durable: bool = True) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._write_thread, self._run_write, transaction, "FULL" if durable else "NORMAL"
        )

    def _run_write(self, transaction: Transaction[T], synchronous: str) -> T:
        """In the writer thread: set the commit's flush mode, then run the transaction.

        In WAL mode ``synchronous=NORMAL`` appends the commit to the log without
        flushing it; the next ``FULL`` commit flushes the log up to itself, so no
        durable commit ever depends on a lost one. That holds across processes too:
        the log is one file, and the fsync of any process's ``FULL`` commit flushes
        every frame written before it.
        """
        conn = self._writer_conn
        if conn is None:
            conn = self._writer_conn = self._writer.connect()
        try:
            if synchronous != self._synchronous:
                conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                    f"PRAGMA synchronous={synchronous}"
                )
                self._synchronous = synchronous
            if self._lock is None:
                return _run_on(conn, transaction)
            # Other processes on this file queue here, not in SQLite's sleeping busy handler.
            with self._lock:
                return _run_on(conn, transaction)
        except BaseException:
            # Whatever state a failure left the connection in, the next transaction
            # starts on a fresh checkout (the same SQLite connection, reset).
            self._writer_conn = None
            conn.close()
            raise

    def _close_writer(self) -> None:
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None
        self._writer.dispose()

    async def _read(self, transaction: Transaction[T]) -> T:
        if self._reader is None or self._read_thread is None:
            return await self._write(transaction)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._read_thread, _run_transaction, self._reader, transaction
        )

    async def close(self) -> None:
        """Finish pending writes, close both connections and stop their threads."""
        await super().close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_thread, self._close_writer)
        self._write_thread.shutdown()
        if self._lock is not None:
            self._lock.close()
        if self._reader is not None and self._read_thread is not None:
            await loop.run_in_executor(self._read_thread, self._reader.dispose)
            self._read_thread.shutdown()


def _sqlite_engine(path: str, *, begin: str) -> Engine:
    """One connection (used by one thread only) that opens its transactions with ``begin``."""
    engine = create_engine(
        "sqlite:///" + path,
        poolclass=StaticPool,
        # Every use is a transaction that ends in commit or rollback: nothing to reset.
        pool_reset_on_return=None,
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" below decides how a
        # transaction starts (pysqlite's own implicit BEGIN would be DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Straight to the driver: this runs for every transaction.
        connection.connection.driver_connection.execute(begin)  # type: ignore[union-attr]

    return engine


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Database errors inside raised as ``_translated`` says (outages as ``JournalUnavailable``)."""
    try:
        yield
    except DBAPIError as exc:
        translated = _translated(exc)
        if translated is exc:
            raise
        raise translated from exc


def _run_transaction(engine: Engine, transaction: Transaction[T]) -> T:
    """Run one transaction function (in the calling thread), errors translated."""
    with _translated_errors(), engine.begin() as conn:
        return transaction(conn)


def _run_on(conn: Connection, transaction: Transaction[T]) -> T:
    """``_run_transaction`` on a connection the caller keeps open."""
    with _translated_errors(), conn.begin():
        return transaction(conn)


class PostgresJournal(Journal):
    """PostgreSQL: several gateway processes share one database."""

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        super().__init__(url)
        self._engine = engine

    @classmethod
    def create(cls, url: str) -> PostgresJournal:
        """Engine for ``postgresql://…`` (psycopg 3, async)."""
        driver_url = url.replace("postgresql+psycopg://", "postgresql://", 1).replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
        engine = create_async_engine(driver_url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        return cls(url, engine)

    async def _write(self, transaction: Transaction[T], *, durable: bool = True) -> T:
        for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
            try:
                return await self._write_once(transaction, durable)
            except DBAPIError as exc:
                if not _is_conflict(exc):
                    raise
                if attempt == _CONFLICT_ATTEMPTS:
                    raise JournalUnavailable(_describe(exc)) from exc  # transient: callers retry
                # PostgreSQL chose this transaction as a deadlock's or a serialisation
                # conflict's victim and rolled it back: running it again is correct.
                log.info("journal_transaction_retried", reason=_describe(exc), attempt=attempt)
        raise AssertionError("unreachable")

    async def _write_once(self, transaction: Transaction[T], durable: bool) -> T:
        with _translated_errors():
            async with self._engine.begin() as conn:
                if not durable:
                    # The commit does not wait for the WAL flush; a server crash may lose
                    # it (only ever a claim or an outcome: the delivery is repeated).
                    await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                return await conn.run_sync(transaction)

    async def close(self) -> None:
        """Finish pending writes and release all connections."""
        await super().close()
        await self._engine.dispose()

    def _lock_due(self, due: Select[Any]) -> Select[Any]:
        return due.with_for_update(skip_locked=True)

    def _lock_migrations(self, connection: Connection) -> None:
        # Held until the migration's transaction commits: a second process starting
        # at the same moment waits, then finds the schema current.
        connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
