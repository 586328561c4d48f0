"""The journal's hot-path statements: built once, run by the backend's ``Statements``.

``store`` writes every transaction as a plain function over a SQLAlchemy
``Connection``; the statements those functions run for each message (accept,
claim, outcome) are built here once, and run through the methods of
``Statements``. The SQLite backend runs them on the driver connection instead
(``sqlite_statements``): the same rows, without SQLAlchemy's per-call work,
which the single SQLite writer thread otherwise spends most of its time in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from contracts.journal import Claim, DeliveryState, ReceiptState
from gateway.journal.tables import (
    UTCDateTime,
    attempts,
    deliveries,
    events,
    inline_blobs,
    messages,
    receipts,
)

D = deliveries.c
M = messages.c
A = attempts.c
R = receipts.c
B = inline_blobs.c


class Statements:
    """The hot path's statements, built once with bind parameters, and how they run.

    Built per backend (claim locking differs); SQLAlchemy then reuses their
    compiled form instead of building and hashing a new statement per call. The
    transactions in ``store`` run the hot statements through the methods below,
    so a backend can run them another way (``SqliteStatements``: on the driver).
    """

    def __init__(self, lock_due: Callable[[Select[Any]], Select[Any]]) -> None:
        self.find_by_key = select(M.id, M.blob_sha256).where(
            M.partner_id == bindparam("partner"), M.idempotency_key == bindparam("key")
        )
        self.find_by_dedup = select(M.id).where(M.dedup_key == bindparam("dedup"))
        self.find_by_dedups = select(M.id, M.dedup_key).where(
            M.dedup_key.in_(bindparam("keys", expanding=True))
        )
        self._inserts = {
            table.name: insert(table)
            for table in (messages, deliveries, events, attempts, receipts)
        }
        # Guarded: only a waiting import receipt becomes due, so a repeated delivery
        # (at least once) or a second local destination never makes it due twice.
        self.import_done = (
            update(receipts)
            .where(
                R.message_id == bindparam("b_message"),
                R.state == ReceiptState.WAITING,
            )
            .values(
                state=ReceiptState.PENDING,
                results=bindparam("b_results"),
                ready_at=bindparam("b_ready", type_=UTCDateTime()),
                next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
                updated_at=bindparam("b_updated", type_=UTCDateTime()),
            )
        )
        # Identical content is kept once: a second message with the same bytes adds nothing.
        self.insert_blobs = {
            "postgresql": postgresql.insert(inline_blobs).on_conflict_do_nothing(),
            "sqlite": sqlite.insert(inline_blobs).on_conflict_do_nothing(),
        }
        self.inline_content = select(B.content).where(B.sha256 == bindparam("sha256"))
        self.claim = {
            restricted: self._claim(lock_due, restricted=restricted) for restricted in (False, True)
        }
        self.expire_attempts = (
            update(attempts)
            .where(A.delivery_id.in_(bindparam("ids", expanding=True)), A.finished_at.is_(None))
            .values(
                finished_at=bindparam("now"),
                outcome="lease_expired",
                error="the worker's lease expired before it reported back",
            )
        )
        self.claimed = (
            select(
                D.id,
                D.message_id,
                D.destination,
                D.attempts,
                D.lease_until,
                D.window_started_at,
                M.received_at,
                M.blob_sha256,
                M.size,
                M.content_kind,
                M.file_name,
                M.prozess_id,
                M.nachrichtentyp,
                M.message_element,
                M.partner_id,
                exists()
                .where(R.message_id == D.message_id, R.state == ReceiptState.WAITING)
                .label("receipt_waiting"),
                B.content,
            )
            .join(messages, M.id == D.message_id)
            .outerjoin(inline_blobs, B.sha256 == M.blob_sha256)
            .where(D.id.in_(bindparam("ids", expanding=True)))
            .order_by(D.next_attempt_at, D.id)
        )
        # The delivery is still leased to this worker for this attempt.
        still_held = (
            D.id == bindparam("b_id"),
            D.state == DeliveryState.CLAIMED,
            D.lease_owner == bindparam("b_worker"),
            D.attempts == bindparam("b_attempt"),
        )
        self.finish = (
            update(deliveries)
            .where(*still_held)
            .values(
                state=bindparam("b_state"),
                lease_owner=None,
                lease_until=None,
                updated_at=bindparam("b_now"),
                last_error=bindparam("b_error"),
                next_attempt_at=func.coalesce(
                    bindparam("b_next", type_=UTCDateTime()), D.next_attempt_at
                ),
                finished_at=bindparam("b_finished", type_=UTCDateTime()),
            )
        )
        self.renew = (
            update(deliveries)
            .where(*still_held)
            .values(lease_until=bindparam("b_until", type_=UTCDateTime()))
        )
        self.finish_attempts = (
            update(attempts)
            .where(
                A.delivery_id == bindparam("b_delivery"),
                A.number == bindparam("b_number"),
                A.finished_at.is_(None),
            )
            .values(
                finished_at=bindparam("b_finished"),
                outcome=bindparam("b_outcome"),
                error=bindparam("b_error"),
            )
        )

    @staticmethod
    def _claim(lock_due: Callable[[Select[Any]], Select[Any]], *, restricted: bool) -> Any:
        now = bindparam("now", type_=UTCDateTime())
        due_now = or_(
            and_(D.state == DeliveryState.PENDING, D.next_attempt_at <= now),
            and_(D.state == DeliveryState.CLAIMED, D.lease_until < now),
        )
        due = (
            select(D.id).where(due_now).order_by(D.next_attempt_at, D.id).limit(bindparam("limit"))
        )
        if restricted:
            due = due.where(D.destination.in_(bindparam("destinations", expanding=True)))
        # A materialised CTE runs the locking SELECT exactly once. Written as a plain
        # ``IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``, PostgreSQL may evaluate the
        # subquery more than once, each time skipping other rows, and claim more than
        # ``n`` (seen: a worker with 8 slots holding 12 deliveries).
        chosen = lock_due(due).cte("due").prefix_with("MATERIALIZED")
        return (
            update(deliveries)
            .add_cte(chosen)
            # The outer condition repeats "due": a row claimed meanwhile by another
            # claimer (a backend without SKIP LOCKED) is not claimed twice.
            .where(D.id.in_(select(chosen.c.id)), due_now)
            .values(
                state=DeliveryState.CLAIMED,
                lease_owner=bindparam("worker"),
                lease_until=bindparam("until", type_=UTCDateTime()),
                attempts=D.attempts + 1,
                updated_at=now,
            )
            .returning(D.id, D.attempts)
        )

    # ------------------------------------------------------------------ running them

    def stored_dedups(self, conn: Connection, keys: Sequence[str]) -> dict[str, str]:
        """Message ids by dedup key, for those of ``keys`` already journaled."""
        return {row.dedup_key: row.id for row in conn.execute(self.find_by_dedups, {"keys": keys})}

    def insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (each with the same keys) into ``table``."""
        conn.execute(self._inserts[table.name], rows)

    def claim_due(self, conn: Connection, params: dict[str, Any]) -> list[tuple[int, int]]:
        """Lease the due deliveries (``params`` of ``claim``); (id, attempt) of each."""
        restricted = "destinations" in params
        return [(row.id, row.attempts) for row in conn.execute(self.claim[restricted], params)]

    def end_expired_attempts(self, conn: Connection, ids: Sequence[int], now: datetime) -> None:
        """Close the open attempts of these deliveries: their worker's lease expired."""
        conn.execute(self.expire_attempts, {"ids": ids, "now": now})

    def claims(self, conn: Connection, ids: Sequence[int]) -> list[Claim]:
        """The claimed deliveries ``ids`` with what a worker needs, due order."""
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
                size=row.size,
                content_kind=row.content_kind,
                file_name=row.file_name,
                prozess_id=row.prozess_id,
                nachrichtentyp=row.nachrichtentyp,
                message_element=row.message_element,
                partner_id=row.partner_id,
                receipt_waiting=bool(row.receipt_waiting),
                content=row.content,
            )
            for row in conn.execute(self.claimed, {"ids": ids})
        ]

    def store_contents(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Keep messages' content (``sha256``, ``content`` each); content kept already stays."""
        conn.execute(self.insert_blobs[conn.dialect.name], rows)

    def finish_many(self, conn: Connection, params: Sequence[dict[str, Any]]) -> list[bool]:
        """Record outcomes (``finish``'s ``b_*`` parameters each); whether each lease held."""
        return [conn.execute(self.finish, one).rowcount > 0 for one in params]

    def finish_attempts_of(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Close the attempts the outcomes belong to."""
        conn.execute(self.finish_attempts, rows)

    def imports_done(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Make the waiting import receipts of these messages due."""
        conn.execute(self.import_done, rows)
