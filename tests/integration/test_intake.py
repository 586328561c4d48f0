"""The intake pipeline on the real stack: real schemas, a real blob store, both journal backends.

These tests call ``Intake.submit`` the way the HTTP API and the drop folder do;
``tests/acceptance/test_http_api.py`` drives the same pipeline over HTTP.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from contracts.config import GatewayConfig
from contracts.journal import DeliveryState, MessageState
from gateway import intake as intake_module
from gateway.blobs import BlobStore
from gateway.errors import IntakeRejected, JournalUnavailable
from gateway.intake import MAX_IDEMPOTENCY_KEY, Intake, Submission
from gateway.journal.store import Journal
from tests.intake_support import (
    KOMMUNE_C,
    NOBODY,
    abgabe,
    bare_message,
    blob_files,
    chunks_of,
    container,
    gateway_config,
    message_of_unknown_version,
    schema_invalid_message,
)
from tests.zipcraft import Entry, write_zip

PROZESS_ID = "6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
def config(tmp_path: Path) -> GatewayConfig:
    """Kommune B's configuration."""
    return gateway_config(tmp_path)


@pytest.fixture
def blobs(config: GatewayConfig) -> BlobStore:
    """The blob store under the test's folder."""
    return BlobStore(config.storage.blobs)


@pytest.fixture
def intake(config: GatewayConfig, journal: Journal, blobs: BlobStore) -> Intake:
    """Intake over the journal backend of the run and the blob store."""
    return Intake(config, journal, blobs)


def from_partner(
    config: GatewayConfig, partner_id: str = "kommune-a", **options: str
) -> Submission:
    """A submission of ``partner_id`` over HTTP."""
    return Submission(partner=config.partner(partner_id), channel="http", **options)


async def refused(
    intake: Intake, data: bytes, submission: Submission, **options: int
) -> IntakeRejected:
    """Submit ``data`` and return the refusal it must cause."""
    with pytest.raises(IntakeRejected) as info:
        await intake.submit(chunks_of(data), submission, **options)
    return info.value


async def test_a_valid_container_is_journaled_with_its_kopf_and_route(
    intake: Intake, journal: Journal, config: GatewayConfig, tmp_path: Path
) -> None:
    """A valid container becomes one accepted message with a pending delivery per route."""
    data = container(tmp_path, prozess_id=PROZESS_ID)

    accepted = await intake.submit(chunks_of(data), from_partner(config, file_name="abgabe.zip"))

    view = await journal.get_message(accepted.message_id)
    assert not accepted.duplicate
    assert (view.state, view.prozess_id, view.nachrichtentyp) == (
        MessageState.ACCEPTED,
        PROZESS_ID,
        "0401",
    )
    assert (view.absender, view.empfaenger, view.xdomea_version) == (
        "060:0815",
        "060:4711",
        "3.1.0",
    )
    assert (view.partner_id, view.channel, view.file_name) == ("kommune-a", "http", "abgabe.zip")
    assert [(d.destination, d.state) for d in view.deliveries] == [("dms", DeliveryState.PENDING)]


def inline_up_to(config: GatewayConfig, limit: int) -> GatewayConfig:
    """``config`` with ``[storage] inline_max_bytes = limit``."""
    storage = config.storage.model_copy(update={"inline_max_bytes": limit})
    return config.model_copy(update={"storage": storage})


async def test_a_small_message_is_kept_bit_identical_in_the_journal_without_a_blob_file(
    intake: Intake, journal: Journal, blobs: BlobStore, config: GatewayConfig, tmp_path: Path
) -> None:
    """Content up to ``inline_max_bytes`` is committed with the message; no file is written."""
    data = container(tmp_path)
    assert len(data) <= config.storage.inline_max_bytes
    digest = hashlib.sha256(data).hexdigest()

    await intake.submit(chunks_of(data), from_partner(config))

    assert await journal.inline_content(digest) == data
    assert blob_files(blobs.root) == []


async def test_content_above_inline_max_bytes_is_kept_bit_identical_in_a_blob_file(
    journal: Journal, blobs: BlobStore, config: GatewayConfig, tmp_path: Path
) -> None:
    """Larger content is a file at the address of its SHA-256, and not in the journal."""
    data = container(tmp_path)
    digest = hashlib.sha256(data).hexdigest()
    config = inline_up_to(config, len(data) - 1)

    await Intake(config, journal, blobs).submit(chunks_of(data), from_partner(config))

    assert blobs.path(digest).read_bytes() == data
    assert blob_files(blobs.root) == [blobs.path(digest)]
    assert await journal.inline_content(digest) is None


async def test_a_message_kept_in_the_journal_is_written_as_a_file_when_a_reader_needs_one(
    intake: Intake, journal: Journal, config: GatewayConfig, tmp_path: Path
) -> None:
    """``BlobStore.file`` writes the journal's copy to the blob's address, bit-identical."""
    data = bare_message()
    digest = hashlib.sha256(data).hexdigest()
    await intake.submit(chunks_of(data), from_partner(config))
    reader = BlobStore(config.storage.blobs, inline=journal.inline_content)

    path = await reader.file(digest)

    assert path == reader.path(digest)
    assert path.read_bytes() == data


@pytest.mark.parametrize("kind", ["container", "message"])
async def test_content_larger_than_memory_intake_is_staged_and_kept_bit_identical(
    intake: Intake,
    blobs: BlobStore,
    config: GatewayConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """Content over ``IN_MEMORY_BYTES`` takes the streamed path and is kept the same."""
    monkeypatch.setattr(intake_module, "IN_MEMORY_BYTES", 1000)
    data = container(tmp_path) if kind == "container" else bare_message()
    assert len(data) > 1000

    accepted = await intake.submit(chunks_of(data, size=300), from_partner(config))

    digest = hashlib.sha256(data).hexdigest()
    assert not accepted.duplicate
    assert blobs.path(digest).read_bytes() == data
    assert blob_files(blobs.root) == [blobs.path(digest)]


async def test_a_refused_streamed_upload_leaves_nothing_behind(
    intake: Intake, blobs: BlobStore, config: GatewayConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staged file of a large upload that routing refuses is removed."""
    monkeypatch.setattr(intake_module, "IN_MEMORY_BYTES", 1000)

    error = await refused(intake, bare_message(empfaenger=NOBODY), from_partner(config))

    assert error.kind == "unroutable"
    assert blob_files(blobs.root) == []


async def test_a_refused_small_message_is_never_written(
    intake: Intake, blobs: BlobStore, config: GatewayConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content held in memory is checked and routed before the blob store sees it."""
    calls: list[str] = []

    async def recorded(*args: Any, **kwargs: Any) -> None:
        calls.append("blob store")

    for method in ("store", "stage", "commit"):
        monkeypatch.setattr(blobs, method, recorded)

    await refused(intake, bare_message(empfaenger=NOBODY), from_partner(config))

    assert calls == []


def watch_accepts(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, seen: Callable[[dict[str, Any]], None]
) -> None:
    """Call ``seen`` with the keyword arguments of every ``journal.accept`` before it runs."""
    accept = journal.accept

    async def watched(*args: Any, **kwargs: Any) -> Any:
        seen(kwargs)
        return await accept(*args, **kwargs)

    monkeypatch.setattr(journal, "accept", watched)


async def test_a_message_above_inline_max_bytes_is_durable_at_its_address_before_it_is_journaled(
    blobs: BlobStore,
    journal: Journal,
    config: GatewayConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the journal is asked to accept a message, its blob is already at its address."""
    data = bare_message()
    config = inline_up_to(config, 0)
    seen: list[bytes] = []
    handed: list[bytes | None] = []

    def check(kwargs: dict[str, Any]) -> None:
        seen.append(blobs.path(hashlib.sha256(data).hexdigest()).read_bytes())
        handed.append(kwargs["content"])

    watch_accepts(journal, monkeypatch, check)

    await Intake(config, journal, blobs).submit(chunks_of(data), from_partner(config))

    assert seen == [data]
    assert handed == [None]


async def test_a_small_message_reaches_the_journal_with_its_content(
    intake: Intake,
    blobs: BlobStore,
    journal: Journal,
    config: GatewayConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The content goes into the accept's transaction; the blob store is not asked."""
    data = bare_message()
    handed: list[bytes | None] = []
    watch_accepts(journal, monkeypatch, lambda kwargs: handed.append(kwargs["content"]))

    await intake.submit(chunks_of(data), from_partner(config))

    assert handed == [data]
    assert blob_files(blobs.root) == []


def classifying_threads(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The threads content in memory is checked in, one entry per check, from now on."""
    threads: list[threading.Thread] = []
    classify = intake_module._classify_bytes

    def recorded(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return classify(*args)

    monkeypatch.setattr(intake_module, "_classify_bytes", recorded)
    return threads


@pytest.mark.parametrize(("inline", "on_loop"), [(64 * 1024, True), (0, False)])
async def test_only_small_content_is_checked_on_the_event_loop(
    intake: Intake,
    config: GatewayConfig,
    monkeypatch: pytest.MonkeyPatch,
    inline: int,
    on_loop: bool,
) -> None:
    """Content up to ``INLINE_CHECK_BYTES`` is checked on the loop, larger on the CPU pool."""
    monkeypatch.setattr(intake_module, "INLINE_CHECK_BYTES", inline)
    threads = classifying_threads(monkeypatch)

    await intake.submit(chunks_of(bare_message()), from_partner(config))

    assert (threads == [threading.current_thread()]) is on_loop


async def test_a_small_container_is_checked_on_the_cpu_pool(
    intake: Intake, config: GatewayConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """However small, a container may unpack to megabytes: never on the event loop."""
    data = container(tmp_path)
    assert len(data) <= intake_module.INLINE_CHECK_BYTES
    threads = classifying_threads(monkeypatch)

    await intake.submit(chunks_of(data), from_partner(config))

    assert len(threads) == 1
    assert threads[0] is not threading.current_thread()


async def test_a_bare_message_xml_is_journaled_as_a_message(
    intake: Intake, journal: Journal, config: GatewayConfig
) -> None:
    """A bare message XML is accepted like a container."""
    accepted = await intake.submit(chunks_of(bare_message()), from_partner(config))

    view = await journal.get_message(accepted.message_id)
    assert view.message_element == "Abgabe.Abgabe.0401"


async def test_a_repeated_upload_returns_the_first_id(
    intake: Intake, journal: Journal, config: GatewayConfig
) -> None:
    """The same bytes from the same Absender again are a duplicate of the first message."""
    data = bare_message()
    first = await intake.submit(chunks_of(data), from_partner(config))

    again = await intake.submit(chunks_of(data), from_partner(config))

    assert (again.message_id, again.duplicate) == (first.message_id, True)
    assert len(await journal.list_messages()) == 1


async def test_an_idempotency_key_reused_for_other_content_is_refused(
    intake: Intake, config: GatewayConfig
) -> None:
    """A partner's Idempotency-Key names one content; other bytes under it are refused with 422."""
    await intake.submit(chunks_of(bare_message()), from_partner(config, idempotency_key="k-1"))

    error = await refused(intake, bare_message(), from_partner(config, idempotency_key="k-1"))

    assert (error.status, error.kind) == (422, "idempotency-conflict")


async def test_on_accepted_is_called_for_new_messages_only(
    config: GatewayConfig, journal: Journal, blobs: BlobStore
) -> None:
    """The worker is woken for a new message, not for a duplicate."""
    calls: list[None] = []
    intake = Intake(config, journal, blobs, on_accepted=lambda _: calls.append(None))
    data = bare_message()

    await intake.submit(chunks_of(data), from_partner(config))
    await intake.submit(chunks_of(data), from_partner(config))

    assert len(calls) == 1


async def test_receipt_producer_is_woken_only_for_messages_that_owe_receipts(
    config: GatewayConfig, journal: Journal, blobs: BlobStore
) -> None:
    """A 0401 addressed to this node wakes it; a relayed one and a duplicate do not."""
    calls: list[None] = []
    intake = Intake(config, journal, blobs, on_receipts_owed=lambda: calls.append(None))
    data = bare_message()

    await intake.submit(chunks_of(data), from_partner(config))
    await intake.submit(chunks_of(data), from_partner(config))
    await intake.submit(chunks_of(bare_message(empfaenger=KOMMUNE_C)), from_partner(config))

    assert len(calls) == 1


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"<xdomea:Abgabe.Abgabe.0401 xmlns:xdomea=", "malformed-xml"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "unsafe-xml"),
        (b"PK\x03\x04 this is no ZIP file at all", "container-error"),
        (b"", "malformed-xml"),
    ],
    ids=["malformed-xml", "dtd", "broken-zip", "empty"],
)
async def test_unusable_content_is_refused_with_400(
    intake: Intake, config: GatewayConfig, blobs: BlobStore, data: bytes, kind: str
) -> None:
    """Content that cannot be read at all is a 400 naming why, and leaves nothing behind."""
    error = await refused(intake, data, from_partner(config))

    assert (error.status, error.kind) == (400, kind)
    assert str(blobs.root) not in error.message
    assert blob_files(blobs.root) == []


async def test_xml_that_is_not_xdomea_is_refused_with_422(
    intake: Intake, config: GatewayConfig
) -> None:
    """Well-formed XML of another kind is understood but cannot be processed: 422."""
    error = await refused(intake, b"<rechnung><betrag>12</betrag></rechnung>", from_partner(config))

    assert (error.status, error.kind) == (422, "not-xdomea")


async def test_a_schema_invalid_message_is_refused_with_findings(
    intake: Intake, config: GatewayConfig, blobs: BlobStore
) -> None:
    """Schema errors are a 422 whose findings carry line and element path."""
    error = await refused(intake, schema_invalid_message(), from_partner(config))

    assert (error.status, error.kind) == (422, "invalid-message")
    (finding,) = error.findings
    assert finding.line == 8
    assert finding.path == "/xdomea:Abgabe.Abgabe.0401/xdomea:Kopf/xdomea:Erstellungszeitpunkt"
    assert "line 8" in error.message
    assert blob_files(blobs.root) == []


async def test_a_container_missing_a_document_is_refused_as_invalid(
    intake: Intake, config: GatewayConfig, tmp_path: Path
) -> None:
    """A referenced Primärdokument missing from the container makes it invalid (422)."""
    xml, documents = abgabe(prozess_id=PROZESS_ID)
    kept = next(iter(documents))
    zip_path = write_zip(
        tmp_path / "incomplete.zip",
        [Entry(f"{PROZESS_ID}_Abgabe.Abgabe.0401.xml", xml), Entry(kept, documents[kept])],
    )

    error = await refused(intake, zip_path.read_bytes(), from_partner(config))

    assert (error.status, error.kind) == (422, "invalid-message")
    assert any(f.source == "container" for f in error.findings)


async def test_an_unknown_xdomea_version_is_refused_with_422(
    intake: Intake, config: GatewayConfig
) -> None:
    """A namespace of a version the gateway does not have is a 422 naming the versions it has."""
    error = await refused(intake, message_of_unknown_version(), from_partner(config))

    assert (error.status, error.kind) == (422, "unsupported-version")
    assert "9.9.9" in error.message and "3.1.0" in error.message


async def test_a_version_the_partner_has_not_agreed_is_refused_with_422(
    intake: Intake, config: GatewayConfig
) -> None:
    """Kommune C speaks only xdomea 3.1.0, so its 3.0.0 message is refused."""
    data = bare_message("3.0.0", absender=KOMMUNE_C)

    error = await refused(intake, data, from_partner(config, "kommune-c"))

    assert (error.status, error.kind) == (422, "version-not-agreed")
    assert "3.0.0" in error.message and "3.1.0" in error.message


async def test_a_partner_cannot_send_as_another_behoerdenkennung(
    intake: Intake, config: GatewayConfig, blobs: BlobStore
) -> None:
    """Kommune C's token with Kommune A in the Kopf is refused with 403 and nothing is kept."""
    error = await refused(intake, bare_message(), from_partner(config, "kommune-c"))

    assert (error.status, error.kind) == (403, "wrong-sender")
    assert "060:0815" in error.message and "060:1234" in error.message
    assert blob_files(blobs.root) == []


async def test_an_unknown_empfaenger_is_refused_and_never_queued(
    intake: Intake, config: GatewayConfig, journal: Journal, blobs: BlobStore
) -> None:
    """A message for an Empfänger without a route is a 422; no message and no blob remain."""
    error = await refused(intake, bare_message(empfaenger=NOBODY), from_partner(config))

    assert (error.status, error.kind) == (422, "unroutable")
    assert "060:9999" in error.message
    assert await journal.list_messages() == []
    assert blob_files(blobs.root) == []


async def test_content_over_the_limit_is_refused_with_413_and_nothing_is_kept(
    intake: Intake, config: GatewayConfig, blobs: BlobStore
) -> None:
    """More bytes than ``max_bytes`` stop the upload with 413; the partial file is gone."""
    error = await refused(intake, bare_message(), from_partner(config), max_bytes=1000)

    assert (error.status, error.kind) == (413, "too-large")
    assert blob_files(blobs.root) == []


async def test_the_file_name_is_reduced_to_its_base_name(
    intake: Intake, journal: Journal, config: GatewayConfig
) -> None:
    """A sender's folders (either separator) are not kept, only the file's own name."""
    submission = from_partner(config, file_name="C:\\Akten\\2026/abgabe.xml")

    accepted = await intake.submit(chunks_of(bare_message()), submission)

    assert (await journal.get_message(accepted.message_id)).file_name == "abgabe.xml"


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        ({"file_name": "abgabe\n.xml"}, "bad-file-name"),
        ({"file_name": "a" * 256}, "bad-file-name"),
        ({"idempotency_key": "k" * (MAX_IDEMPOTENCY_KEY + 1)}, "bad-idempotency-key"),
        ({"idempotency_key": "schlüssel"}, "bad-idempotency-key"),
        ({"idempotency_key": ""}, "bad-idempotency-key"),
    ],
    ids=["control-character", "long-name", "long-key", "non-ascii-key", "empty-key"],
)
async def test_unusable_submission_details_are_refused_with_400(
    intake: Intake, config: GatewayConfig, blobs: BlobStore, options: dict[str, str], kind: str
) -> None:
    """File names and keys the journal cannot keep faithfully are refused before any byte is read."""
    error = await refused(intake, bare_message(), from_partner(config, **options))

    assert (error.status, error.kind) == (400, kind)
    assert blob_files(blobs.root) == []


async def test_an_unreachable_journal_is_an_error_not_an_acceptance(
    config: GatewayConfig, blobs: BlobStore
) -> None:
    """Without the journal the submission fails with JournalUnavailable and no upload is left staged."""
    journal = Journal.from_url("postgresql://nobody@127.0.0.1:1/unreachable")
    intake = Intake(config, journal, blobs)
    try:
        with pytest.raises(JournalUnavailable):
            await intake.submit(chunks_of(bare_message()), from_partner(config))
    finally:
        await journal.close()

    assert list((blobs.root / "tmp").rglob("*.part")) == []


async def test_acceptance_is_logged_with_partner_prozess_id_and_message_id(
    intake: Intake, config: GatewayConfig
) -> None:
    """The message_accepted event carries the ids bound while the message was handled."""
    data = bare_message(prozess_id=PROZESS_ID)

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        accepted = await intake.submit(chunks_of(data), from_partner(config))

    (event,) = [e for e in logs if e["event"] == "message_accepted"]
    assert event["partner"] == "kommune-a"
    assert event["prozess_id"] == PROZESS_ID
    assert event["message_id"] == accepted.message_id


async def test_a_duplicate_is_logged_as_such(intake: Intake, config: GatewayConfig) -> None:
    """A repeat is logged as message_duplicate with the first message's id."""
    data = bare_message()
    first = await intake.submit(chunks_of(data), from_partner(config))

    with capture_logs() as logs:
        await intake.submit(chunks_of(data), from_partner(config))

    assert [(e["event"], e["message_id"]) for e in logs] == [
        ("message_duplicate", first.message_id)
    ]


async def test_a_refusal_is_logged_without_document_content(
    intake: Intake, config: GatewayConfig
) -> None:
    """message_rejected names status and reason, never the findings' text with document values."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await refused(intake, schema_invalid_message(), from_partner(config))

    (event,) = [e for e in logs if e["event"] == "message_rejected"]
    assert (event["status"], event["reason"], event["partner"]) == (
        422,
        "invalid-message",
        "kommune-a",
    )
    assert "gestern" not in repr(logs)


async def test_a_refusal_after_reading_the_kopf_is_logged_with_the_prozess_id(
    intake: Intake, config: GatewayConfig
) -> None:
    """Refusals of a readable message (here: unroutable) carry its ProzessID in the log."""
    data = bare_message(empfaenger=NOBODY, prozess_id=PROZESS_ID)

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await refused(intake, data, from_partner(config))

    (event,) = [e for e in logs if e["event"] == "message_rejected"]
    assert (event["reason"], event["prozess_id"]) == ("unroutable", PROZESS_ID)
