"""The hot-path statements on SQLite, run on the driver connection (``sqlite3``).

The SQLite journal has one writer thread, and every accept, claim and outcome of
the gateway passes through it. Through SQLAlchemy, each statement costs far more
Python than SQLite needs for it (the execution context, the bind processors of
every timestamp), and every row of an ``executemany`` is a separate step that
releases and re-takes the interpreter lock: under load, the writer spent most of
its time waiting to get that lock back. Here the same statements run on the
driver inside the same transaction: inserts as one multi-row ``VALUES`` (one
step for the batch), timestamps formatted as SQLAlchemy stores them on SQLite
(so everything that reads them through SQLAlchemy reads them unchanged).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from contracts.journal import Claim, DeliveryState, ReceiptState
from gateway.journal.statements import Statements
from gateway.journal.tables import UTCDateTime

# The due deliveries in due order, each kind read in index order and cut at the
# limit before the two are merged: one sort over everything due (a backlog of
# thousands while intake runs ahead of delivery) would cost every claim.
_DUE_FIRST = (
    "SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM deliveries"
    " WHERE state = 'pending' AND next_attempt_at <= :now{restricted}"
    " ORDER BY next_attempt_at, id LIMIT :limit)"
    " UNION ALL "
    "SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM deliveries"
    " WHERE state = 'claimed' AND lease_until < :now{restricted}"
    " ORDER BY next_attempt_at, id LIMIT :limit)"
    " ORDER BY next_attempt_at, id LIMIT :limit"
)
# The outer condition repeats "due", as in ``Statements.claim``; written with "+" so
# SQLite finds the rows by id and only checks it, instead of scanning all that is due.
_STILL_DUE = (
    "((+state = 'pending' AND +next_attempt_at <= :now)"
    " OR (+state = 'claimed' AND +lease_until < :now))"
)
_CLAIM = (
    "WITH due AS MATERIALIZED (" + _DUE_FIRST + ") "
    "UPDATE deliveries SET state = 'claimed', lease_owner = :worker,"
    " lease_until = :until, attempts = attempts + 1, updated_at = :now"
    " WHERE id IN (SELECT id FROM due) AND " + _STILL_DUE + " RETURNING id, attempts"
)
_CLAIMED = (
    "SELECT d.id, d.message_id, d.destination, d.attempts, d.lease_until,"
    " d.window_started_at, m.received_at, m.blob_sha256, m.size, m.content_kind,"
    " m.file_name, m.prozess_id, m.nachrichtentyp, m.message_element, m.partner_id,"
    # "+r.state": look the receipts up by message (unique index), never by state.
    " EXISTS (SELECT 1 FROM receipts AS r WHERE r.message_id = d.message_id"
    " AND +r.state = 'waiting'), b.content"
    " FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id"
    " LEFT JOIN inline_blobs AS b ON b.sha256 = m.blob_sha256"
    " WHERE d.id IN ({ids}) ORDER BY d.next_attempt_at, d.id"
)
_EXPIRE = (
    "UPDATE attempts SET finished_at = ?, outcome = 'lease_expired',"
    " error = 'the worker''s lease expired before it reported back'"
    " WHERE delivery_id IN ({ids}) AND finished_at IS NULL"
)
_FINISH = (
    "UPDATE deliveries SET state = :b_state, lease_owner = NULL, lease_until = NULL,"
    " updated_at = :b_now, last_error = :b_error,"
    " next_attempt_at = coalesce(:b_next, next_attempt_at), finished_at = :b_finished"
    " WHERE id = :b_id AND state = 'claimed' AND lease_owner = :b_worker"
    " AND attempts = :b_attempt"
)
# Outcomes of a batch in one statement each (``UPDATE … FROM (VALUES …)``): each row
# of a statement is a step that releases and re-takes the interpreter lock, and the
# writer thread waits for it back every time the event loop holds it.
_FINISH_ALL = (
    "UPDATE deliveries SET state = v.column2, lease_owner = NULL, lease_until = NULL,"
    " updated_at = v.column3, last_error = v.column4,"
    " next_attempt_at = coalesce(v.column5, deliveries.next_attempt_at),"
    " finished_at = v.column6 FROM (VALUES {rows}) AS v"
    " WHERE deliveries.id = v.column1 AND deliveries.state = 'claimed'"
    " AND deliveries.lease_owner = v.column7 AND deliveries.attempts = v.column8"
    " RETURNING deliveries.id"
)
_FINISH_ATTEMPTS_ALL = (
    "UPDATE attempts SET finished_at = v.column3, outcome = v.column4, error = v.column5"
    " FROM (VALUES {rows}) AS v WHERE attempts.delivery_id = v.column1"
    " AND attempts.number = v.column2 AND attempts.finished_at IS NULL"
)
_IMPORT_DONE = (
    "UPDATE receipts SET state = 'pending', results = :b_results, ready_at = :b_ready,"
    " next_attempt_at = :b_next, updated_at = :b_updated"
    " WHERE message_id = :b_message AND state = 'waiting'"
)
T = TypeVar("T")

#: Bound parameters of one statement stay well below SQLite's limit (32766).
_MAX_PARAMETERS = 30000

# The statements above spell the states out; they must be the enums' values.
assert (DeliveryState.PENDING, DeliveryState.CLAIMED) == ("pending", "claimed")
assert (ReceiptState.PENDING, ReceiptState.WAITING) == ("pending", "waiting")


#: The last timestamp ``sqlite_time`` formatted and its text: a batch's rows share
#: one ``now`` in several columns each, and formatting it was a seventh of the
#: writer thread's time. One tuple, replaced whole, so threads never see half of it.
_last_time: tuple[datetime, str] | None = None


def sqlite_time(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy's ``UTCDateTime`` stores it on SQLite (naive UTC text).

    Raises:
        ValueError: ``value`` is naive (journal timestamps are timezone-aware).
    """
    global _last_time
    if value is None:
        return None
    last = _last_time
    # Equal aware datetimes are the same instant, so the same UTC text; a naive
    # value never equals an aware one and falls through to the check below.
    if last is not None and last[0] == value:
        return last[1]
    if value.tzinfo is None:
        raise ValueError("journal timestamps must be timezone-aware")
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    _last_time = (value, text)
    return text


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


@cache
def _time_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, UTCDateTime))


@cache
def _insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    one = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows)


def _run(conn: Connection, sql: str, values: Any, *, many: bool = False) -> sqlite3.Cursor:
    """Execute on the transaction's driver connection, errors raised as SQLAlchemy's.

    The callers (``store``) tell a lost race (``IntegrityError``) and an unusable
    database (``OperationalError``) apart by SQLAlchemy's exception classes.
    """
    driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    try:
        return driver.executemany(sql, values) if many else driver.execute(sql, values)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, values, exc, sqlite3.Error) from exc


def _marks(count: int) -> str:
    return ", ".join("?" * count)


@cache
def _store_contents_sql(rows: int) -> str:
    return "INSERT OR IGNORE INTO inline_blobs (sha256, content) VALUES " + ", ".join(
        ["(?, ?)"] * rows
    )


@cache
def _finish_all_sql(rows: int) -> str:
    return _FINISH_ALL.format(rows=", ".join([f"({_marks(8)})"] * rows))


@cache
def _finish_attempts_sql(rows: int) -> str:
    return _FINISH_ATTEMPTS_ALL.format(rows=", ".join([f"({_marks(5)})"] * rows))


def _chunks(rows: Sequence[T], columns: int) -> Iterator[Sequence[T]]:
    """``rows`` in runs that keep a statement below SQLite's parameter limit."""
    size = max(1, _MAX_PARAMETERS // columns)
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class SqliteStatements(Statements):
    """``Statements`` whose hot ones run on the ``sqlite3`` connection of the transaction."""

    def stored_dedups(self, conn: Connection, keys: Sequence[str]) -> dict[str, str]:
        cursor = _run(
            conn,
            f"SELECT dedup_key, id FROM messages WHERE dedup_key IN ({_marks(len(keys))})",
            tuple(keys),
        )
        return dict(cursor.fetchall())

    def insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        times = _time_columns(table)
        for chunk in _chunks(rows, len(columns)):
            values: list[Any] = []
            for row in chunk:
                values.extend(
                    sqlite_time(row[name]) if name in times else row[name] for name in columns
                )
            _run(conn, _insert_sql(table.name, columns, len(chunk)), values)

    def claim_due(self, conn: Connection, params: dict[str, Any]) -> list[tuple[int, int]]:
        wanted = params.get("destinations")
        values: dict[str, Any] = {
            "now": sqlite_time(params["now"]),
            "until": sqlite_time(params["until"]),
            "worker": params["worker"],
            "limit": params["limit"],
        }
        restricted = ""
        if wanted is not None:
            names = [f"dest{i}" for i in range(len(wanted))]
            restricted = f" AND destination IN ({', '.join(':' + n for n in names)})"
            values.update(zip(names, wanted, strict=True))
        sql = _CLAIM.format(restricted=restricted)
        return [(row[0], row[1]) for row in _run(conn, sql, values).fetchall()]

    def end_expired_attempts(self, conn: Connection, ids: Sequence[int], now: datetime) -> None:
        _run(conn, _EXPIRE.format(ids=_marks(len(ids))), (sqlite_time(now), *ids))

    def claims(self, conn: Connection, ids: Sequence[int]) -> list[Claim]:
        rows = _run(conn, _CLAIMED.format(ids=_marks(len(ids))), tuple(ids)).fetchall()
        return [
            Claim(
                delivery_id=row[0],
                message_id=row[1],
                destination=row[2],
                attempt=row[3],
                lease_until=_parse_time(row[4]),
                window_started_at=_parse_time(row[5]),
                received_at=_parse_time(row[6]),
                blob_sha256=row[7],
                size=row[8],
                content_kind=row[9],
                file_name=row[10],
                prozess_id=row[11],
                nachrichtentyp=row[12],
                message_element=row[13],
                partner_id=row[14],
                receipt_waiting=bool(row[15]),
                content=row[16],
            )
            for row in rows
        ]

    def store_contents(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for chunk in _chunks(rows, 2):
            values: list[Any] = []
            for row in chunk:
                values += (row["sha256"], row["content"])
            _run(conn, _store_contents_sql(len(chunk)), values)

    def finish_many(self, conn: Connection, params: Sequence[dict[str, Any]]) -> list[bool]:
        ids = [one["b_id"] for one in params]
        if len(set(ids)) != len(ids):
            # One UPDATE … FROM would apply only one of two outcomes for a delivery and
            # report both as held; one statement each refuses the second, as it should.
            return [self._finish_each(conn, one) for one in params]
        held: set[int] = set()
        for chunk in _chunks(params, 8):
            values: list[Any] = []
            for one in chunk:
                values += (
                    one["b_id"],
                    one["b_state"],
                    sqlite_time(one["b_now"]),
                    one["b_error"],
                    sqlite_time(one["b_next"]),
                    sqlite_time(one["b_finished"]),
                    one["b_worker"],
                    one["b_attempt"],
                )
            rows = _run(conn, _finish_all_sql(len(chunk)), values).fetchall()
            held.update(row[0] for row in rows)
        return [delivery_id in held for delivery_id in ids]

    def _finish_each(self, conn: Connection, params: dict[str, Any]) -> bool:
        values = {
            **params,
            "b_now": sqlite_time(params["b_now"]),
            "b_next": sqlite_time(params["b_next"]),
            "b_finished": sqlite_time(params["b_finished"]),
        }
        return _run(conn, _FINISH, values).rowcount > 0

    def finish_attempts_of(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for chunk in _chunks(rows, 5):
            values: list[Any] = []
            for row in chunk:
                values += (
                    row["b_delivery"],
                    row["b_number"],
                    sqlite_time(row["b_finished"]),
                    row["b_outcome"],
                    row["b_error"],
                )
            _run(conn, _finish_attempts_sql(len(chunk)), values)

    def imports_done(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        _run(
            conn,
            _IMPORT_DONE,
            [
                {
                    **row,
                    "b_ready": sqlite_time(row["b_ready"]),
                    "b_next": sqlite_time(row["b_next"]),
                    "b_updated": sqlite_time(row["b_updated"]),
                }
                for row in rows
            ],
            many=True,
        )
