"""The XTA message-box store on both journal backends: put once, list, fetch, close, transports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.xta.msgbox import MessageIdTaken, MsgBoxStore, box_message_id
from gateway.journal.store import Journal


@pytest.fixture
async def store(journal: Journal, journal_url: str) -> AsyncIterator[MsgBoxStore]:
    """A message-box store on a migrated journal database (SQLite and PostgreSQL)."""
    opened = MsgBoxStore.from_url(journal_url)
    yield opened
    await opened.close()


async def _put(store: MsgBoxStore, message_id: str, partner: str = "kommune-a") -> bool:
    return await store.put(
        partner,
        message_id=message_id,
        blob_sha256="0" * 64,
        size=10,
        content_kind="message",
        file_name=None,
        nachrichtentyp="0403",
        prozess_id="p-1",
    )


async def test_a_message_is_put_into_a_box_once(store: MsgBoxStore) -> None:
    """Putting the same message again (a redelivery) adds nothing."""
    assert await _put(store, "m-1") is True
    assert await _put(store, "m-1") is False
    entries, total = await store.open_entries("kommune-a", limit=10)
    assert [e.message_id for e in entries] == ["m-1"]
    assert total == 1


async def test_boxes_are_per_partner(store: MsgBoxStore) -> None:
    """A partner lists only its own box."""
    await _put(store, "m-1", "kommune-a")
    await _put(store, "m-2", "kommune-c")
    entries, _ = await store.open_entries("kommune-c", limit=10)
    assert [e.message_id for e in entries] == ["m-2"]


async def test_closed_messages_leave_the_box_and_unknown_ids_close_nothing(
    store: MsgBoxStore,
) -> None:
    """close removes the named messages; one unknown id among them closes none."""
    await _put(store, "m-1")
    await _put(store, "m-2")
    missing = await store.close_entries("kommune-a", [box_message_id("m-1"), "urn:nope"])
    still, _ = await store.open_entries("kommune-a", limit=10)
    assert missing == ["urn:nope"]
    assert len(still) == 2
    assert await store.close_entries("kommune-a", [box_message_id("m-1")]) == []
    left, _ = await store.open_entries("kommune-a", limit=10)
    assert [e.message_id for e in left] == ["m-2"]


async def test_first_fetch_is_recorded_and_new_only_skips_fetched(store: MsgBoxStore) -> None:
    """mark_fetched sets InitialFetchedTime; newEntry listings then leave the message out."""
    await _put(store, "m-1")
    entries, _ = await store.open_entries("kommune-a", limit=1)
    await store.mark_fetched(entries[0].seq)
    fresh, _ = await store.open_entries("kommune-a", limit=10, new_only=True)
    again, _ = await store.open_entries("kommune-a", limit=10)
    assert fresh == []
    assert again[0].fetched_at is not None


async def test_a_message_id_belongs_to_the_partner_it_was_created_for(store: MsgBoxStore) -> None:
    """Another partner cannot send under a created MessageID, nor see its transport."""
    xta_id = await store.create_message_id("kommune-a", prefix="urn:test")
    await store.record_sent(xta_id, "kommune-a", "m-1", "<meta/>")
    with pytest.raises(MessageIdTaken):
        await store.record_sent(xta_id, "kommune-c", "m-2", "<meta/>")
    with pytest.raises(MessageIdTaken):
        await store.record_sent(xta_id, "kommune-a", "m-3", "<meta/>")
    transport = await store.transport(xta_id, "kommune-a")
    assert transport is not None and transport.message_id == "m-1"
    assert await store.transport(xta_id, "kommune-c") is None
