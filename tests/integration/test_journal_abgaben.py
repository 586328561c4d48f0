"""The journal's ``abgaben`` table on both backends (the ``journal`` fixture)."""

from __future__ import annotations

import asyncio

import pytest

from contracts.processes import AbgabeState, CompletionState
from gateway.journal.store import Journal
from tests.integration.test_journal import new_message


async def test_reserving_an_open_akte_again_returns_the_same_abgabe(journal: Journal) -> None:
    """One open Abgabe per Akte and partner: the second reservation gets the first."""
    first, created = await journal.abgabe_reserve("COO.1.2", "kommune-b", "record")
    again, created_again = await journal.abgabe_reserve("COO.1.2", "kommune-b", "record")
    other, created_other = await journal.abgabe_reserve("COO.1.2", "kommune-c", "record")

    assert created and not created_again and created_other
    assert again.id == first.id and again.prozess_id == first.prozess_id
    assert first.state is AbgabeState.STARTING and first.created_at.microsecond == 0
    assert other.id != first.id


async def test_concurrent_reservations_make_one_abgabe(journal: Journal) -> None:
    """Two starts of the same Akte at once: the unique index lets one create it."""
    results = await asyncio.gather(
        *(journal.abgabe_reserve("COO.7", "kommune-b", "record") for _ in range(4))
    )

    assert len({abgabe.id for abgabe, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_abandoned_reservation_leaves_nothing(journal: Journal) -> None:
    """A failed start removes its reservation; the next start reserves afresh."""
    first, _ = await journal.abgabe_reserve("COO.1.2", "kommune-b", "record")

    await journal.abgabe_abandon(first.id)
    again, created = await journal.abgabe_reserve("COO.1.2", "kommune-b", "record")

    assert created and again.id != first.id
    assert await journal.abgabe_for_process(first.prozess_id) is None


async def test_open_abgabe_is_finished_once_and_then_a_new_one_may_start(
    journal: Journal,
) -> None:
    """open → completed is guarded: a second finish changes nothing; the Akte is free again."""
    abgabe, _ = await journal.abgabe_reserve("COO.1.2", "kommune-b", "mark-abgegeben")
    accepted = await journal.accept(new_message(prozess_id=abgabe.prozess_id), ["kommune-b"])
    await journal.abgabe_opened(abgabe.id, accepted.message_id)
    [opened] = await journal.abgaben_open()

    done = await journal.abgabe_finish(
        opened, AbgabeState.COMPLETED, CompletionState.DONE, "Abgabevermerk written"
    )
    again = await journal.abgabe_finish(
        opened, AbgabeState.COMPLETED, CompletionState.DONE, "Abgabevermerk written"
    )
    _, created = await journal.abgabe_reserve("COO.1.2", "kommune-b", "mark-abgegeben")

    assert (done, again) == (True, False)
    assert await journal.abgaben_open() == []
    recorded = await journal.abgabe_for_process(abgabe.prozess_id.upper())
    assert recorded is not None and recorded.message_id == accepted.message_id
    assert (recorded.state, recorded.completion_state) == (
        AbgabeState.COMPLETED,
        CompletionState.DONE,
    )
    assert created


async def test_an_abgabe_is_finished_only_as_completed_or_partially_imported(
    journal: Journal,
) -> None:
    """Finishing into another state is a programming error, refused before any write."""
    abgabe, _ = await journal.abgabe_reserve("COO.1.2", "kommune-b", "record")

    with pytest.raises(ValueError, match="completed or partially imported"):
        await journal.abgabe_finish(abgabe, AbgabeState.OPEN, CompletionState.DONE, "")
