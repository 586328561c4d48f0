"""The journal: one store interface, two backends chosen by URL scheme.

``Journal.from_url("sqlite:///…" | "postgresql://…")`` returns the backend.
Every public method is one transaction; state changes are guarded updates
(``… WHERE state = 'claimed' AND lease_owner = :me``) whose zero-row outcome is
an error, and each leaves an event row. Backends differ only in engine set-up
and in how due deliveries are locked while claimed (``_lock_due``).

Driver errors are translated here: a lost or refused database connection is
``JournalUnavailable`` (intake answers 503, workers back off).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import structlog
from sqlalchemy import Select, and_, exists, func, insert, or_, select, true, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from contracts.journal import (
    Accepted,
    AttemptView,
    Claim,
    DeliveryState,
    DeliveryView,
    MessageState,
    MessageView,
    NewMessage,
)
from gateway.errors import (
    IdempotencyConflict,
    JournalError,
    JournalUnavailable,
    LeaseLost,
    NotFound,
)
from gateway.journal.tables import attempts, deliveries, events, messages

log = structlog.get_logger(__name__)

D = deliveries.c
M = messages.c


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Journal:
    """Durable record of messages and their deliveries (base class: the shared code path)."""

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self._engine = engine

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
        """Release all connections."""
        await self._engine.dispose()

    # ------------------------------------------------------------------ schema

    async def upgrade(self) -> None:
        """Apply all migrations (idempotent)."""
        from alembic import command
        from alembic.config import Config

        def run(connection: Connection) -> None:
            config = Config()
            config.set_main_option(
                "script_location", str(resources.files("gateway.journal") / "migrations")
            )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        async with self._transaction() as conn:
            await conn.run_sync(run)

    # ------------------------------------------------------------------ intake

    async def accept(
        self, message: NewMessage, destinations: Collection[str], *, now: datetime | None = None
    ) -> Accepted:
        """Record a new message and one pending delivery per destination, atomically.

        A message seen before (same partner and Idempotency-Key, or same ProzessID,
        Nachrichtentyp, Absender and bytes) is not recorded again: its id is returned
        with ``duplicate=True``.

        Raises:
            IdempotencyConflict: the partner's Idempotency-Key was used for other bytes.
            JournalUnavailable: the database cannot be reached.
        """
        now = now or utcnow()
        message_id = str(uuid.uuid4())
        try:
            # One transaction: look-up and insert, so a new message costs one commit.
            async with self._transaction() as conn:
                existing = await self._find_existing(conn, message)
                if existing is not None:
                    return existing
                await conn.execute(
                    insert(messages).values(
                        id=message_id,
                        received_at=now,
                        dedup_key=message.dedup_key,
                        **message.model_dump(),
                    )
                )
                if destinations:
                    await conn.execute(
                        insert(deliveries),
                        [
                            {
                                "message_id": message_id,
                                "destination": destination,
                                "state": DeliveryState.PENDING,
                                "attempts": 0,
                                "next_attempt_at": now,
                                "window_started_at": now,
                                "created_at": now,
                                "updated_at": now,
                            }
                            for destination in destinations
                        ],
                    )
                await self._event(
                    conn, now, message_id, None, "accepted", destinations=list(destinations)
                )
        except IntegrityError:
            # A concurrent twin won the unique constraint; its id is the answer.
            async with self._transaction() as conn:
                raced = await self._find_existing(conn, message)
            if raced is None:
                raise
            return raced
        return Accepted(message_id=message_id, duplicate=False)

    @staticmethod
    async def _find_existing(conn: AsyncConnection, message: NewMessage) -> Accepted | None:
        """The earlier message this one repeats, if any (by Idempotency-Key or dedup key)."""
        if message.idempotency_key is not None:
            row = (
                await conn.execute(
                    select(M.id, M.blob_sha256).where(
                        M.partner_id == message.partner_id,
                        M.idempotency_key == message.idempotency_key,
                    )
                )
            ).first()
            if row is not None:
                if row.blob_sha256 != message.blob_sha256:
                    raise IdempotencyConflict(
                        f"Idempotency-Key {message.idempotency_key!r} was used for message "
                        f"{row.id} with different content; use a new key for a new message"
                    )
                return Accepted(message_id=row.id, duplicate=True)
        row = (await conn.execute(select(M.id).where(M.dedup_key == message.dedup_key))).first()
        return Accepted(message_id=row.id, duplicate=True) if row is not None else None

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
        now = now or utcnow()
        until = now + lease
        due = (
            select(D.id)
            .where(
                or_(
                    and_(D.state == DeliveryState.PENDING, D.next_attempt_at <= now),
                    and_(D.state == DeliveryState.CLAIMED, D.lease_until < now),
                )
            )
            .order_by(D.next_attempt_at, D.id)
            .limit(limit)
        )
        if destinations is not None:
            due = due.where(D.destination.in_(list(destinations)))
        async with self._transaction() as conn:
            claimed = (
                await conn.execute(
                    update(deliveries)
                    .where(D.id.in_(self._lock_due(due).scalar_subquery()))
                    .values(
                        state=DeliveryState.CLAIMED,
                        lease_owner=worker,
                        lease_until=until,
                        attempts=D.attempts + 1,
                        updated_at=now,
                    )
                    .returning(D.id, D.attempts)
                )
            ).all()
            if not claimed:
                return []
            ids = [row.id for row in claimed]
            # Attempts whose worker vanished (lease expired) end here.
            await conn.execute(
                update(attempts)
                .where(attempts.c.delivery_id.in_(ids), attempts.c.finished_at.is_(None))
                .values(
                    finished_at=now,
                    outcome="lease_expired",
                    error="the worker's lease expired before it reported back",
                )
            )
            await conn.execute(
                insert(attempts),
                [
                    {
                        "delivery_id": row.id,
                        "number": row.attempts,
                        "worker": worker,
                        "started_at": now,
                    }
                    for row in claimed
                ],
            )
            rows = (
                await conn.execute(
                    select(
                        D.id,
                        D.message_id,
                        D.destination,
                        D.attempts,
                        D.lease_until,
                        D.window_started_at,
                        M.received_at,
                        M.blob_sha256,
                        M.content_kind,
                        M.file_name,
                        M.prozess_id,
                        M.nachrichtentyp,
                        M.message_element,
                        M.partner_id,
                    )
                    .join(messages, M.id == D.message_id)
                    .where(D.id.in_(ids))
                    .order_by(D.next_attempt_at, D.id)
                )
            ).all()
        return [
            Claim(
                delivery_id=row.id,
                message_id=row.message_id,
                destination=row.destination,
                attempt=row.attempts,
                lease_until=row.lease_until,
                window_started_at=row.window_started_at,
                received_at=row.received_at,
                blob_sha256=row.blob_sha256,
                content_kind=row.content_kind,
                file_name=row.file_name,
                prozess_id=row.prozess_id,
                nachrichtentyp=row.nachrichtentyp,
                message_element=row.message_element,
                partner_id=row.partner_id,
            )
            for row in rows
        ]

    def _lock_due(self, due: Select[Any]) -> Select[Any]:
        """Backend hook: lock the due rows being claimed against other claimers."""
        return due

    async def renew(self, claim: Claim, worker: str, lease: timedelta) -> Claim:
        """Extend a lease that is still ours.

        Raises:
            LeaseLost: another worker holds the delivery now, or it finished.
        """
        until = utcnow() + lease
        async with self._transaction() as conn:
            result = await conn.execute(
                update(deliveries).where(*self._ours(claim, worker)).values(lease_until=until)
            )
            if result.rowcount == 0:
                raise LeaseLost(f"delivery {claim.delivery_id} is no longer leased to {worker}")
        return claim.model_copy(update={"lease_until": until})

    async def complete(self, claim: Claim, worker: str, *, now: datetime | None = None) -> None:
        """Mark a claimed delivery delivered.

        Raises:
            LeaseLost: the lease was taken over; the other worker's outcome counts.
        """
        await self._finish(claim, worker, DeliveryState.DELIVERED, "delivered", None, now)

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

    def _ours(self, claim: Claim, worker: str) -> tuple[Any, ...]:
        return (
            D.id == claim.delivery_id,
            D.state == DeliveryState.CLAIMED,
            D.lease_owner == worker,
            D.attempts == claim.attempt,
        )

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
        now = now or utcnow()
        values: dict[str, Any] = {
            "state": state,
            "lease_owner": None,
            "lease_until": None,
            "updated_at": now,
            "last_error": error,
        }
        if state is DeliveryState.PENDING:
            values["next_attempt_at"] = next_attempt_at or now
        else:
            values["finished_at"] = now
        async with self._transaction() as conn:
            result = await conn.execute(
                update(deliveries).where(*self._ours(claim, worker)).values(**values)
            )
            if result.rowcount == 0:
                raise LeaseLost(
                    f"delivery {claim.delivery_id} attempt {claim.attempt} is no longer leased "
                    f"to {worker}; its outcome {outcome!r} is discarded"
                )
            await conn.execute(
                update(attempts)
                .where(
                    attempts.c.delivery_id == claim.delivery_id,
                    attempts.c.number == claim.attempt,
                    attempts.c.finished_at.is_(None),
                )
                .values(finished_at=now, outcome=outcome, error=error)
            )
            await self._event(
                conn,
                now,
                claim.message_id,
                claim.delivery_id,
                f"delivery_{outcome}",
                destination=claim.destination,
                attempt=claim.attempt,
                error=error,
                next_attempt_at=next_attempt_at.isoformat() if next_attempt_at else None,
            )

    async def replay(self, message_id: str, *, now: datetime | None = None) -> int:
        """Put a message's dead-lettered deliveries back in the queue with a fresh budget.

        Returns:
            How many deliveries were replayed (0: none was dead).

        Raises:
            NotFound: no such message.
        """
        now = now or utcnow()
        async with self._transaction() as conn:
            if (await conn.execute(select(M.id).where(M.id == message_id))).first() is None:
                raise NotFound(f"no message {message_id}")
            result = await conn.execute(
                update(deliveries)
                .where(D.message_id == message_id, D.state == DeliveryState.DEAD)
                .values(
                    state=DeliveryState.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    window_started_at=now,
                    finished_at=None,
                    updated_at=now,
                )
            )
            if result.rowcount:
                await self._event(
                    conn, now, message_id, None, "replayed", deliveries=result.rowcount
                )
            return int(result.rowcount)

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
        limit: int = 100,
        offset: int = 0,
    ) -> list[MessageView]:
        """Messages, newest first, filtered by derived state and sending partner."""
        conditions: list[Any] = []
        if partner is not None:
            conditions.append(M.partner_id == partner)
        if state is not None:
            conditions.append(_state_condition(state))
        return await self._views(and_(true(), *conditions), limit=limit, offset=offset)

    async def process(self, prozess_id: str) -> list[MessageView]:
        """Every message of one ProzessID (compared case-insensitively), oldest first."""
        views = await self._views(
            func.lower(M.prozess_id) == prozess_id.lower(), limit=10_000, newest_first=False
        )
        return views

    async def counts(self) -> dict[str, int]:
        """Number of deliveries per state."""
        async with self._transaction() as conn:
            rows = (await conn.execute(select(D.state, func.count()).group_by(D.state))).all()
        return {row[0]: int(row[1]) for row in rows}

    async def _views(
        self, condition: Any, *, limit: int, offset: int = 0, newest_first: bool = True
    ) -> list[MessageView]:
        order = (M.received_at.desc(), M.id) if newest_first else (M.received_at, M.id)
        async with self._transaction() as conn:
            rows = (
                await conn.execute(
                    select(messages).where(condition).order_by(*order).limit(limit).offset(offset)
                )
            ).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            delivery_rows = (
                await conn.execute(select(deliveries).where(D.message_id.in_(ids)).order_by(D.id))
            ).all()
            attempt_rows = (
                (
                    await conn.execute(
                        select(attempts)
                        .where(attempts.c.delivery_id.in_([d.id for d in delivery_rows]))
                        .order_by(attempts.c.id)
                    )
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

    # ------------------------------------------------------------------ plumbing

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.begin() as conn:
                yield conn
        except (OperationalError, InterfaceError) as exc:
            raise JournalUnavailable(_describe(exc)) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise JournalUnavailable(_describe(exc)) from exc
            raise

    @staticmethod
    async def _event(
        conn: AsyncConnection,
        now: datetime,
        message_id: str,
        delivery_id: int | None,
        kind: str,
        **detail: Any,
    ) -> None:
        await conn.execute(
            insert(events).values(
                at=now,
                message_id=message_id,
                delivery_id=delivery_id,
                kind=kind,
                detail=json.dumps({k: v for k, v in detail.items() if v is not None}),
            )
        )


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
    """The embedded default: one SQLite file in WAL mode, one writer at a time.

    All work of a process goes through a single connection, so SQLite's one-writer
    rule never surfaces as "database is locked"; ``synchronous=FULL`` makes every
    commit durable before intake acknowledges it.
    """

    @classmethod
    def create(cls, url: str) -> SqliteJournal:
        """Engine for ``sqlite:///PATH``; the file's folder is created if missing."""
        from pathlib import Path

        from sqlalchemy import event
        from sqlalchemy.pool import AsyncAdaptedQueuePool

        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            "sqlite+aiosqlite:///" + path,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in (
                "journal_mode=WAL",
                "synchronous=FULL",
                "foreign_keys=ON",
                "busy_timeout=10000",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        return cls(url, engine)


class PostgresJournal(Journal):
    """PostgreSQL: several gateway processes share one database."""

    @classmethod
    def create(cls, url: str) -> PostgresJournal:
        """Engine for ``postgresql://…`` (psycopg 3, async)."""
        driver_url = url.replace("postgresql+psycopg://", "postgresql://", 1).replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
        engine = create_async_engine(driver_url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        return cls(url, engine)

    def _lock_due(self, due: Select[Any]) -> Select[Any]:
        return due.with_for_update(skip_locked=True)
