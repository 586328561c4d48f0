"""The journal's contract, run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from contracts.journal import Claim, DeliveryState, MessageState, NewMessage, ReceiptState
from gateway.errors import IdempotencyConflict, JournalUnavailable, LeaseLost, NotFound
from gateway.journal.store import Journal, utcnow
from tests.journal_support import journal_record

LEASE = timedelta(seconds=30)


def new_message(**changes: object) -> NewMessage:
    """A journal record as intake would hand it over (a container, one fixed ProzessID)."""
    values: dict[str, object] = {
        "blob_sha256": "a" * 64,
        "size": 1234,
        "content_kind": "container",
        "prozess_id": "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9",
    }
    values.update(changes)
    return journal_record(b"", **values)


async def claim_one(journal: Journal, worker: str = "w1", *, lease: timedelta = LEASE) -> Claim:
    """Claim exactly one due delivery."""
    (claim,) = await journal.claim(worker, limit=1, lease=lease)
    return claim


async def test_accepted_message_has_one_pending_delivery_per_destination(journal: Journal) -> None:
    """Accepting records the message and a pending delivery for each destination."""
    accepted = await journal.accept(new_message(), ["dms", "archiv"])

    view = await journal.get_message(accepted.message_id)

    assert not accepted.duplicate
    assert view.state is MessageState.ACCEPTED
    assert sorted((d.destination, d.state) for d in view.deliveries) == [
        ("archiv", DeliveryState.PENDING),
        ("dms", DeliveryState.PENDING),
    ]


async def test_same_idempotency_key_returns_the_first_message(journal: Journal) -> None:
    """A repeated Idempotency-Key from the same partner is the same message."""
    first = await journal.accept(new_message(idempotency_key="k-1"), ["dms"])
    again = await journal.accept(new_message(idempotency_key="k-1"), ["dms"])

    assert again.message_id == first.message_id
    assert again.duplicate
    assert len(await journal.list_messages()) == 1


async def test_same_idempotency_key_with_other_content_is_a_conflict(journal: Journal) -> None:
    """Reusing a key for different bytes is refused, not silently deduplicated."""
    await journal.accept(new_message(idempotency_key="k-1"), ["dms"])

    with pytest.raises(IdempotencyConflict, match="k-1"):
        await journal.accept(new_message(idempotency_key="k-1", blob_sha256="b" * 64), ["dms"])


async def test_identical_resend_without_key_is_accepted_once(journal: Journal) -> None:
    """Same ProzessID, Nachrichtentyp, Absender and bytes: accepted once, whatever the case of the id."""
    first = await journal.accept(new_message(), ["dms"])
    again = await journal.accept(new_message(prozess_id=new_message().prozess_id.lower()), ["dms"])

    assert again == first.model_copy(update={"duplicate": True})


async def test_changed_content_under_the_same_prozess_id_is_a_new_message(journal: Journal) -> None:
    """A corrected resend (other bytes) is a new message."""
    first = await journal.accept(new_message(), ["dms"])
    second = await journal.accept(new_message(blob_sha256="c" * 64), ["dms"])

    assert second.message_id != first.message_id


async def test_concurrent_identical_accepts_record_one_message(journal: Journal) -> None:
    """Racing twins end in one message; the loser gets the winner's id."""
    results = await asyncio.gather(*(journal.accept(new_message(), ["dms"]) for _ in range(5)))

    assert len({r.message_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1


async def test_claim_leases_due_deliveries_once(journal: Journal) -> None:
    """A claimed delivery is not handed to a second worker while its lease runs."""
    await journal.accept(new_message(), ["dms"])

    first = await journal.claim("w1", limit=10, lease=LEASE)
    second = await journal.claim("w2", limit=10, lease=LEASE)

    assert [c.attempt for c in first] == [1]
    assert second == []


async def test_a_claim_says_whether_an_import_receipt_waits_for_it(journal: Journal) -> None:
    """Only the delivery of a message whose 0402 waits for an import must end durably."""
    await journal.accept(
        new_message(prozess_id="p-owes"), ["dms"], receipts={"0402": ReceiptState.WAITING}
    )
    await journal.accept(new_message(prozess_id="p-free"), ["dms"])

    claims = await journal.claim("w1", limit=2, lease=LEASE)

    assert sorted((c.prozess_id, c.receipt_waiting) for c in claims) == [
        ("p-free", False),
        ("p-owes", True),
    ]


async def test_content_accepted_with_a_message_is_kept_and_claimed_with_it(
    journal: Journal,
) -> None:
    """A small message's bytes are committed with it and handed to its worker in the claim."""
    content = b"<xdomea/>\x00\xff binary-safe"
    await journal.accept(new_message(blob_sha256="c" * 64), ["dms"], content=content)

    claim = await claim_one(journal)

    assert claim.content == content
    assert await journal.inline_content("c" * 64) == content


async def test_content_kept_in_the_blob_store_is_claimed_without_bytes(journal: Journal) -> None:
    """A message accepted without content has none in the journal: its file holds it."""
    await journal.accept(new_message(), ["dms"])

    claim = await claim_one(journal)

    assert claim.content is None
    assert await journal.inline_content("a" * 64) is None


async def test_identical_content_of_two_messages_is_kept_once(journal: Journal) -> None:
    """Two messages with the same bytes (other ProzessIDs) share the journal's one copy."""
    content = b"same bytes"
    await journal.accept(new_message(blob_sha256="d" * 64), ["dms"], content=content)
    await journal.accept(
        new_message(blob_sha256="d" * 64, prozess_id="11111111-2222-4333-8444-555555555555"),
        ["dms"],
        content=content,
    )

    claims = await journal.claim("w1", limit=2, lease=LEASE)

    assert [c.content for c in claims] == [content, content]


async def test_a_claim_never_shows_its_content_in_its_repr(journal: Journal) -> None:
    """Document contents stay out of logs, which print claims and items by repr."""
    await journal.accept(new_message(), ["dms"], content=b"geheimer Inhalt")

    claim = await claim_one(journal)

    assert "geheimer" not in repr(claim)


async def test_claim_filters_by_destination(journal: Journal) -> None:
    """A worker with no free slot for a destination does not get its deliveries."""
    await journal.accept(new_message(), ["dms", "archiv"])

    claims = await journal.claim("w1", limit=10, lease=LEASE, destinations=["archiv"])

    assert [c.destination for c in claims] == ["archiv"]


async def test_expired_lease_is_claimed_again_by_another_worker(journal: Journal) -> None:
    """A crashed worker's delivery goes to another worker once its lease expires."""
    await journal.accept(new_message(), ["dms"])
    lost = await claim_one(journal, "crashed", lease=timedelta(milliseconds=1))
    await asyncio.sleep(0.01)

    taken = await claim_one(journal, "w2")

    assert taken.delivery_id == lost.delivery_id
    assert taken.attempt == 2
    view = await journal.get_message(taken.message_id)
    assert [a.outcome for a in view.deliveries[0].history] == ["lease_expired", None]


async def test_claims_take_pending_and_expired_deliveries_in_due_order(journal: Journal) -> None:
    """Due first, whichever kind: an expired lease due in between is taken before a later one."""
    start = utcnow() - timedelta(minutes=10)
    due = {"pending-first": 0, "expired-second": 2, "pending-third": 4}
    for name, minute in due.items():
        destination = "dms" if name.startswith("expired") else "archiv"
        at = start + timedelta(minutes=minute)
        await journal.accept(new_message(prozess_id=name), [destination], now=at)
    await journal.claim(
        "crashed",
        limit=1,
        lease=timedelta(seconds=1),
        destinations=["dms"],
        now=start + timedelta(minutes=2),
    )

    taken = await journal.claim("w2", limit=2, lease=LEASE)

    assert [c.prozess_id for c in taken] == ["pending-first", "expired-second"]


async def test_outcome_of_a_lost_lease_is_refused(journal: Journal) -> None:
    """The first worker cannot complete after another took the delivery over."""
    await journal.accept(new_message(), ["dms"])
    stale = await claim_one(journal, "slow", lease=timedelta(milliseconds=1))
    await asyncio.sleep(0.01)
    await claim_one(journal, "w2")

    with pytest.raises(LeaseLost):
        await journal.complete(stale, "slow")


async def test_a_second_outcome_for_one_attempt_in_the_same_batch_is_refused(
    journal: Journal,
) -> None:
    """Two outcomes written together for one claim: the first counts, the second is lost."""
    await journal.accept(new_message(), ["dms"])
    claim = await claim_one(journal)

    first, second = await asyncio.gather(
        journal.complete(claim, "w1"),
        journal.retry_later(claim, "w1", utcnow(), "late"),
        return_exceptions=True,
    )

    assert first is None
    assert isinstance(second, LeaseLost)
    view = await journal.get_message(claim.message_id)
    assert view.deliveries[0].state is DeliveryState.DELIVERED


async def test_completed_delivery_makes_the_message_delivered(journal: Journal) -> None:
    """Completing the only delivery marks the message delivered."""
    accepted = await journal.accept(new_message(), ["dms"])
    claim = await claim_one(journal)

    await journal.complete(claim, "w1")

    view = await journal.get_message(accepted.message_id)
    assert view.state is MessageState.DELIVERED
    assert view.deliveries[0].history[0].outcome == "delivered"


async def test_retry_later_makes_the_delivery_due_at_the_given_time(journal: Journal) -> None:
    """A transient failure returns the delivery to pending, not due before its time."""
    await journal.accept(new_message(), ["dms"])
    claim = await claim_one(journal)
    later = utcnow() + timedelta(minutes=5)

    await journal.retry_later(claim, "w1", later, "HTTP 503")

    assert await journal.claim("w1", limit=10, lease=LEASE) == []
    due = await journal.claim("w1", limit=10, lease=LEASE, now=later + timedelta(seconds=1))
    assert [c.attempt for c in due] == [2]


async def test_dead_letter_then_replay_gives_a_fresh_budget(journal: Journal) -> None:
    """A dead-lettered message is listed as dead and can be replayed into the queue."""
    accepted = await journal.accept(new_message(), ["dms"])
    await journal.dead_letter(await claim_one(journal), "w1", "HTTP 400: bad")

    dead = await journal.list_messages(state=MessageState.DEAD)
    replayed = await journal.replay(accepted.message_id)
    again = await claim_one(journal)

    assert [m.id for m in dead] == [accepted.message_id]
    assert dead[0].deliveries[0].last_error == "HTTP 400: bad"
    assert replayed == 1
    assert again.attempt == 1


async def test_replay_of_unknown_message_is_not_found(journal: Journal) -> None:
    """Replaying an id that does not exist names it."""
    with pytest.raises(NotFound, match="no message nope"):
        await journal.replay("nope")


async def test_a_transaction_that_raised_leaves_the_journal_writing(journal: Journal) -> None:
    """The failed transaction is rolled back; the next write goes through as usual."""
    with pytest.raises(NotFound):
        await journal.replay("nope")

    accepted = await journal.accept(new_message(), ["dms"])

    assert [m.id for m in await journal.list_messages()] == [accepted.message_id]


async def test_list_filters_by_state_and_partner(journal: Journal) -> None:
    """Listing narrows by derived state and by sending partner."""
    delivered = await journal.accept(new_message(blob_sha256="1" * 64), ["dms"])
    await journal.complete(await claim_one(journal), "w1")
    await journal.accept(new_message(blob_sha256="2" * 64, partner_id="kommune-c"), ["dms"])

    assert [m.id for m in await journal.list_messages(state=MessageState.DELIVERED)] == [
        delivered.message_id
    ]
    assert [m.partner_id for m in await journal.list_messages(state=MessageState.ACCEPTED)] == [
        "kommune-c"
    ]
    assert [m.partner_id for m in await journal.list_messages(partner="kommune-c")] == ["kommune-c"]


async def test_process_view_lists_every_message_of_a_prozess_id(journal: Journal) -> None:
    """All messages of one ProzessID come back oldest first, matched case-insensitively."""
    pid = new_message().prozess_id
    first = await journal.accept(new_message(), ["dms"])
    second = await journal.accept(new_message(nachrichtentyp="0403", blob_sha256="d" * 64), ["dms"])

    process = await journal.process(pid.lower())

    assert [m.id for m in process] == [first.message_id, second.message_id]


async def test_unreachable_database_is_reported_unavailable() -> None:
    """A journal whose server does not answer raises JournalUnavailable, not a driver error."""
    journal = Journal.from_url("postgresql://nobody@127.0.0.1:1/none")

    with pytest.raises(JournalUnavailable, match="journal database unavailable"):
        await journal.accept(new_message(), ["dms"])
    await journal.close()


async def test_upgrade_is_idempotent(journal: Journal) -> None:
    """Running the migrations again changes nothing."""
    await journal.accept(new_message(), ["dms"])

    await journal.upgrade()

    assert len(await journal.list_messages()) == 1
