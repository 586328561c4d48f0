"""The SQLite journal's single writer: accepts, outcomes and claims waiting together share a transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from contracts.journal import Accepted, Claim, DeliveryState, NewMessage
from gateway.journal.store import Journal, SqliteJournal
from tests.integration.test_journal import new_message

LEASE = timedelta(seconds=30)


@pytest.fixture
async def sqlite_journal(tmp_path: Path) -> AsyncIterator[SqliteJournal]:
    """A migrated SQLite journal whose write transactions are counted in ``writes``."""
    journal = Journal.from_url(f"sqlite:///{tmp_path / 'journal.db'}")
    assert isinstance(journal, SqliteJournal)
    await journal.upgrade()
    journal.writes = 0  # type: ignore[attr-defined]
    write = journal._write

    async def counted(transaction: Any, *, durable: bool = True) -> Any:
        journal.writes += 1  # type: ignore[attr-defined]
        return await write(transaction, durable=durable)

    journal._write = counted  # type: ignore[method-assign]
    yield journal
    await journal.close()


def numbered(number: int) -> NewMessage:
    """A distinct message (its own ProzessID)."""
    return new_message(prozess_id=f"p-{number}")


async def test_accepts_and_a_claim_waiting_together_share_one_transaction(
    sqlite_journal: SqliteJournal,
) -> None:
    """One commit for all of them, and the claim takes what was accepted in it."""
    *accepted, claims = await asyncio.gather(
        *(sqlite_journal.accept(numbered(n), ["dms"]) for n in range(3)),
        sqlite_journal.claim("w1", limit=8, lease=LEASE),
    )

    assert sqlite_journal.writes == 1  # type: ignore[attr-defined]
    assert sorted(c.message_id for c in claims) == sorted(a.message_id for a in accepted)


async def test_an_outcome_and_an_accept_waiting_together_share_one_transaction(
    sqlite_journal: SqliteJournal,
) -> None:
    """A delivery outcome rides along with the next accepts."""
    first = await sqlite_journal.accept(numbered(1), ["dms"])
    (claim,) = await sqlite_journal.claim("w1", limit=1, lease=LEASE)
    before = sqlite_journal.writes  # type: ignore[attr-defined]

    _, second = await asyncio.gather(
        sqlite_journal.complete(claim, "w1"), sqlite_journal.accept(numbered(2), ["dms"])
    )

    assert sqlite_journal.writes == before + 1  # type: ignore[attr-defined]
    view = await sqlite_journal.get_message(first.message_id)
    assert view.deliveries[0].state is DeliveryState.DELIVERED
    assert not second.duplicate


async def test_a_colliding_accept_leaves_the_others_of_its_transaction_written(
    sqlite_journal: SqliteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's row rolls the shared transaction back: outcome and claim still land."""
    await sqlite_journal.accept(numbered(1), ["dms"])
    (claim,) = await sqlite_journal.claim("w1", limit=1, lease=LEASE)
    await sqlite_journal.accept(numbered(2), ["dms"])
    tx_accept = sqlite_journal._tx_accept
    collisions = iter([True])

    def colliding_once(conn: Any, items: Any) -> Any:
        if next(collisions, False):
            raise IntegrityError("INSERT INTO messages", {}, Exception("UNIQUE constraint failed"))
        return tx_accept(conn, items)

    monkeypatch.setattr(sqlite_journal, "_tx_accept", colliding_once)

    completed, accepted, claims = await asyncio.gather(
        sqlite_journal.complete(claim, "w1"),
        sqlite_journal.accept(numbered(3), ["dms"]),
        sqlite_journal.claim("w2", limit=8, lease=LEASE),
    )

    assert completed is None
    assert isinstance(accepted, Accepted) and not accepted.duplicate
    assert [c.prozess_id for c in claims] == ["p-2"]
    view = await sqlite_journal.get_message(claim.message_id)
    assert view.deliveries[0].state is DeliveryState.DELIVERED
    assert isinstance(claims[0], Claim)
