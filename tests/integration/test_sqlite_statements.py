"""The SQLite journal's hot-path statements on the driver: the same rows SQLAlchemy would write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.journal.sqlite_statements import SqliteStatements, sqlite_time
from gateway.journal.tables import messages, metadata

NOON = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def engine() -> Iterator[Engine]:
    """An in-memory database with the journal's current tables."""
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def message_row(number: int, received_at: datetime = NOON) -> dict[str, object]:
    """A ``messages`` row as ``Journal.accept`` writes it."""
    return {
        "id": f"m-{number}",
        "received_at": received_at,
        "partner_id": "kommune-a",
        "channel": "http",
        "idempotency_key": None,
        "dedup_key": f"{number:064d}",
        "blob_sha256": "a" * 64,
        "size": 10,
        "content_kind": "xml",
        "file_name": None,
        "prozess_id": f"p-{number}",
        "nachrichtentyp": "0401",
        "message_element": "Abgabe.Abgabe.0401",
        "xdomea_version": "3.1.0",
        "absender": "060:0815",
        "empfaenger": "060:4711",
    }


@pytest.mark.parametrize(
    "moment",
    [
        NOON,
        NOON.replace(microsecond=1),
        datetime(2026, 3, 29, 2, 30, 15, 999999, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_timestamps_are_stored_as_sqlalchemy_stores_them(engine: Engine, moment: datetime) -> None:
    """Same text for whole seconds, microseconds and other offsets: comparisons stay right."""
    with engine.begin() as conn:
        conn.execute(insert(messages), [message_row(1, moment)])
        stored = conn.exec_driver_sql("SELECT received_at FROM messages").scalar_one()

    assert sqlite_time(moment) == stored


def test_a_naive_timestamp_is_refused() -> None:
    """Journal timestamps are aware, as ``UTCDateTime`` demands."""
    with pytest.raises(ValueError, match="timezone-aware"):
        sqlite_time(datetime(2026, 11, 23, 12, 0))


def test_a_naive_timestamp_is_refused_right_after_the_same_wall_time_aware() -> None:
    """The remembered last timestamp never lets a naive one through."""
    sqlite_time(NOON)

    with pytest.raises(ValueError, match="timezone-aware"):
        sqlite_time(NOON.replace(tzinfo=None))


def test_the_same_instant_in_another_zone_gives_the_same_text() -> None:
    """Formatting is by instant, whichever zone the value was given in."""
    berlin = NOON.astimezone(timezone(timedelta(hours=1)))

    assert sqlite_time(NOON) == sqlite_time(berlin) == "2026-11-23 12:00:00.000000"
    assert sqlite_time(NOON + timedelta(microseconds=1)) == "2026-11-23 12:00:00.000001"


def test_rows_inserted_on_the_driver_read_back_through_sqlalchemy(engine: Engine) -> None:
    """What the driver wrote is what SQLAlchemy reads: aware timestamps included."""
    statements = SqliteStatements(lambda due: due)
    later = NOON + timedelta(microseconds=250)
    with engine.begin() as conn:
        statements.insert(conn, messages, [message_row(1), message_row(2, later)])
        rows = conn.execute(select(messages).order_by(messages.c.id)).all()

    assert [(row.id, row.received_at) for row in rows] == [("m-1", NOON), ("m-2", later)]


def test_a_batch_larger_than_one_statement_is_inserted_whole(engine: Engine) -> None:
    """More rows than SQLite takes parameters for in one statement are split, none lost."""
    statements = SqliteStatements(lambda due: due)
    with engine.begin() as conn:
        statements.insert(conn, messages, [message_row(n) for n in range(2500)])
        count = conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()

    assert count == 2500


def test_a_duplicate_is_raised_as_sqlalchemys_integrity_error(engine: Engine) -> None:
    """The journal tells a lost race from an outage by SQLAlchemy's exception classes."""
    statements = SqliteStatements(lambda due: due)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        statements.insert(conn, messages, [message_row(1), message_row(1)])
