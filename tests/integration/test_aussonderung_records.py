"""The journal's Aussonderung records, the same contract on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from gateway.journal.store import Journal


async def test_a_record_is_kept_once_and_the_first_detail_stays(journal: Journal) -> None:
    """Recording a key again reports False and leaves the first record as it was."""
    assert await journal.record_aussonderung("p-1", "action:a", "action", '{"n": 1}')
    assert not await journal.record_aussonderung("p-1", "action:a", "action", '{"n": 2}')
    records = await journal.aussonderung_records("p-1")
    assert [(r.key, r.detail) for r in records] == [("action:a", '{"n": 1}')]


async def test_records_are_listed_per_process_oldest_first_ignoring_case(journal: Journal) -> None:
    """A process's records come in the order written; its ProzessID matches in any case."""
    await journal.record_aussonderung("P-2", "start", "start", "{}")
    await journal.record_aussonderung("p-3", "start", "start", "{}")
    await journal.record_aussonderung("P-2", "action:x", "action", "{}")
    assert [r.key for r in await journal.aussonderung_records("p-2")] == ["start", "action:x"]


async def test_concurrent_records_of_one_key_keep_exactly_one(journal: Journal) -> None:
    """Two writers of the same key at once: one records it, the other is told it exists."""
    results = await asyncio.gather(
        *(journal.record_aussonderung("p-4", "action:y", "action", str(n)) for n in range(5))
    )
    assert sorted(results) == [False, False, False, False, True]
    assert len(await journal.aussonderung_records("p-4")) == 1
