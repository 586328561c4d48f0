"""The receipts outbox in the journal, on both backends (the ``journal`` fixture)."""

from __future__ import annotations

import asyncio

from contracts.builders import ObjectResult
from contracts.journal import ReceiptState
from gateway.journal.store import Journal
from tests.integration.test_journal import LEASE, claim_one, new_message

OWED = {"0403": ReceiptState.PENDING, "0402": ReceiptState.WAITING}


async def test_accept_records_the_owed_receipts_with_the_message(journal: Journal) -> None:
    """The 0403 is due at once and the 0402 waits, both committed with the message."""
    accepted = await journal.accept(new_message(), ["dms"], receipts=OWED)

    assert await journal.receipt_states(accepted.message_id) == OWED
    [due] = await journal.due_receipts()
    assert (due.message_id, due.code) == (accepted.message_id, "0403")


async def test_duplicate_message_owes_no_second_set_of_receipts(journal: Journal) -> None:
    """Accepting the same message again answers the first id and adds no receipt."""
    first = await journal.accept(new_message(), ["dms"], receipts=OWED)
    again = await journal.accept(new_message(), ["dms"], receipts=OWED)

    assert again.duplicate and again.message_id == first.message_id
    assert len(await journal.due_receipts()) == 1


async def test_import_makes_the_waiting_receipt_due_with_its_results(journal: Journal) -> None:
    """Completing a delivery with import results makes the 0402 due, carrying them."""
    accepted = await journal.accept(new_message(), ["dms"], receipts=OWED)
    failed = {"4f0c7a5e-2d55-4d5c-9a43-7c3c4a1b2d3e": ObjectResult.failed("refused")}

    await journal.complete(await claim_one(journal), "w1", imported=failed)

    import_receipt = [r for r in await journal.due_receipts() if r.code == "0402"]
    assert [r.message_id for r in import_receipt] == [accepted.message_id]
    assert import_receipt[0].results == failed


async def test_second_import_does_not_make_the_receipt_due_again(journal: Journal) -> None:
    """Of two local destinations, the first import's results count; the 0402 is owed once."""
    accepted = await journal.accept(new_message(), ["dms", "archive"], receipts=OWED)
    first, second = await journal.claim("w1", limit=2, lease=LEASE)
    await journal.complete(first, "w1", imported={})
    [task] = [r for r in await journal.due_receipts() if r.code == "0402"]
    assert await journal.receipt_done(task, ReceiptState.PRODUCED, receipt_message_id="x")

    await journal.complete(second, "w1", imported={})

    assert (await journal.receipt_states(accepted.message_id))["0402"] is ReceiptState.PRODUCED
    assert [r.code for r in await journal.due_receipts()] == ["0403"]


async def test_a_receipt_is_recorded_produced_only_once(journal: Journal) -> None:
    """A second producer recording the same receipt is told it was done already."""
    await journal.accept(new_message(), ["dms"], receipts=OWED)
    [task] = await journal.due_receipts()

    assert await journal.receipt_done(task, ReceiptState.PRODUCED, receipt_message_id="r1")
    assert not await journal.receipt_done(task, ReceiptState.PRODUCED, receipt_message_id="r2")
    assert await journal.due_receipts() == []


async def test_imports_completed_together_make_each_their_own_receipt_due(
    journal: Journal,
) -> None:
    """Outcomes written in one group commit each make their own message's 0402 due."""
    first = await journal.accept(new_message(prozess_id="p-1"), ["dms"], receipts=OWED)
    second = await journal.accept(new_message(prozess_id="p-2"), ["dms"], receipts=OWED)
    claims = await journal.claim("w1", limit=2, lease=LEASE)
    failed = {"4f0c7a5e-2d55-4d5c-9a43-7c3c4a1b2d3e": ObjectResult.failed("refused")}

    await asyncio.gather(
        *(
            journal.complete(
                claim, "w1", imported=failed if claim.message_id == first.message_id else {}
            )
            for claim in claims
        )
    )

    due = {r.message_id: r.results for r in await journal.due_receipts() if r.code == "0402"}
    assert due == {first.message_id: failed, second.message_id: {}}
