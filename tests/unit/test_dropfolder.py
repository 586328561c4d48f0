"""Drop-folder intake against a handler-driven fake intake: settling, moving, explaining."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from contracts.config import GatewayConfig
from contracts.journal import Accepted
from contracts.xdomea import Finding
from gateway.dropfolder import DropFolder, Outcome
from gateway.errors import IntakeRejected, JournalUnavailable, SchemaNotInstalled
from gateway.intake import Submission

Handler = Callable[[bytes, Submission], Awaitable[Accepted]]
CONTENT = b"PK\x03\x04 a container, as far as the drop folder cares"


async def accepted(data: bytes, submission: Submission) -> Accepted:
    """The intake's answer for a new message."""
    return Accepted(message_id=str(uuid.uuid4()), duplicate=False)


class FakeIntake:
    """Reads what the drop folder submits and answers through a test's handler."""

    def __init__(self, handler: Handler = accepted) -> None:
        self.handler = handler
        self.submissions: list[tuple[bytes, Submission]] = []

    async def submit(
        self,
        chunks: AsyncIterator[bytes],
        submission: Submission,
        *,
        max_bytes: int | None = None,
    ) -> Accepted:
        """Collect the streamed bytes, then let the handler answer."""
        data = b"".join([chunk async for chunk in chunks])
        self.submissions.append((data, submission))
        return await self.handler(data, submission)


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """The watched directory."""
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock."""
    return Clock()


@pytest.fixture
def intake() -> FakeIntake:
    """A fake intake that accepts everything."""
    return FakeIntake()


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log event of the test."""
    with capture_logs() as captured:
        yield captured


def gateway_config(inbox: Path, settle: float = 2.0) -> GatewayConfig:
    """A gateway with one partner whose files arrive in ``inbox``."""
    return GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-b", "behoerdenkennung": "060:4711"},
            "partners": [
                {"id": "kommune-a", "behoerdenkennung": "060:0815", "token_sha256": "0" * 64}
            ],
            "dropfolders": [
                {"directory": str(inbox), "partner": "kommune-a", "settle_seconds": settle}
            ],
        }
    )


def watcher(inbox: Path, intake: FakeIntake, clock: Clock, settle: float = 2.0) -> DropFolder:
    """The drop folder under test."""
    config = gateway_config(inbox, settle)
    return DropFolder(config.dropfolders[0], config, intake, clock=clock)


async def settled_scan(folder: DropFolder, clock: Clock) -> list[Any]:
    """Look once, let the settle time pass, look again: what the second look took up."""
    await folder.scan()
    clock.now += 2.0
    return await folder.scan()


def names(directory: Path) -> list[str]:
    """File names in ``directory``."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def rejection() -> IntakeRejected:
    """An invalid-message refusal with two findings, as intake raises it."""
    return IntakeRejected(
        "the message is not valid xdomea: 2 error(s); the first (line 12) at "
        "/Abgabe.Abgabe.0401/Kopf/ProzessID: not a UUID. Correct it and send it again",
        status=422,
        kind="invalid-message",
        title="Invalid xdomea message",
        findings=[
            Finding(message="not a UUID", line=12, path="/Abgabe.Abgabe.0401/Kopf/ProzessID"),
            Finding(message="Dokument.pdf is missing from the container", path="Dokument.pdf"),
        ],
    )


async def test_settled_file_is_submitted_and_moved_to_processed(
    inbox: Path, intake: FakeIntake, clock: Clock
) -> None:
    """A file unchanged for the settle time goes to intake as the partner's, then to processed/."""
    (inbox / "X_0401.zip").write_bytes(CONTENT)
    folder = watcher(inbox, intake, clock)

    (handled,) = await settled_scan(folder, clock)

    ((data, submission),) = intake.submissions
    assert data == CONTENT
    assert (submission.partner.id, submission.channel, submission.file_name) == (
        "kommune-a",
        "dropfolder",
        "X_0401.zip",
    )
    assert handled.outcome is Outcome.PROCESSED
    assert names(inbox) == ["processed"]
    assert (inbox / "processed" / "X_0401.zip").read_bytes() == CONTENT


async def test_file_is_not_read_before_it_settled(
    inbox: Path, intake: FakeIntake, clock: Clock
) -> None:
    """A file seen for less than the settle time is left alone."""
    (inbox / "X_0401.zip").write_bytes(CONTENT)
    folder = watcher(inbox, intake, clock)

    await folder.scan()
    clock.now += 1.9
    await folder.scan()

    assert intake.submissions == []
    assert names(inbox) == ["X_0401.zip"]


async def test_growing_file_is_read_only_once_it_stopped_growing(
    inbox: Path, intake: FakeIntake, clock: Clock
) -> None:
    """Each change of size restarts the settle time, so a file being written is never read."""
    path = inbox / "X_0401.zip"
    path.write_bytes(CONTENT[:10])
    folder = watcher(inbox, intake, clock)
    await folder.scan()
    clock.now += 2.0
    path.write_bytes(CONTENT)  # still being written
    await folder.scan()
    clock.now += 1.0

    not_yet = await folder.scan()
    clock.now += 1.0
    now_settled = await folder.scan()

    assert not_yet == []
    assert [h.outcome for h in now_settled] == [Outcome.PROCESSED]
    assert [data for data, _ in intake.submissions] == [CONTENT]


async def test_zero_settle_time_takes_files_at_first_sight(
    inbox: Path, intake: FakeIntake, clock: Clock
) -> None:
    """With settle_seconds = 0 a file is read on the first scan that sees it."""
    (inbox / "X_0401.zip").write_bytes(CONTENT)

    handled = await watcher(inbox, intake, clock, settle=0).scan()

    assert [h.outcome for h in handled] == [Outcome.PROCESSED]


@pytest.mark.parametrize("name", [".X_0401.zip", "X_0401.zip.part", "X_0401.zip.tmp", "X.TMP"])
async def test_hidden_and_temporary_names_are_never_read(
    inbox: Path, intake: FakeIntake, clock: Clock, name: str
) -> None:
    """Names writers use while a file is incomplete are skipped however long they stay."""
    (inbox / name).write_bytes(CONTENT)
    folder = watcher(inbox, intake, clock)

    await settled_scan(folder, clock)

    assert intake.submissions == []
    assert names(inbox) == [name]


async def test_directories_and_symbolic_links_are_ignored(
    inbox: Path, intake: FakeIntake, clock: Clock, tmp_path: Path
) -> None:
    """Only regular files count; a link cannot make the gateway read other local files."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for partners")
    (inbox / "link.zip").symlink_to(secret)
    (inbox / "sub").mkdir()
    folder = watcher(inbox, intake, clock)

    await settled_scan(folder, clock)

    assert intake.submissions == []


async def test_refused_file_moves_to_failed_with_an_explanation(inbox: Path, clock: Clock) -> None:
    """A refusal leaves the file in failed/ with what was wrong, where, and how to fix it."""

    async def refuse(data: bytes, submission: Submission) -> Accepted:
        raise rejection()

    (inbox / "X_0401.zip").write_bytes(CONTENT)
    folder = watcher(inbox, FakeIntake(refuse), clock)

    (handled,) = await settled_scan(folder, clock)

    failed = inbox / "failed"
    assert handled.outcome is Outcome.FAILED
    assert names(failed) == ["X_0401.zip", "X_0401.zip.error.txt"]
    assert (failed / "X_0401.zip").read_bytes() == CONTENT
    report = (failed / "X_0401.zip.error.txt").read_text(encoding="utf-8")
    assert "Refused:  Invalid xdomea message (invalid-message, HTTP 422)" in report
    assert "not a UUID. Correct it and send it again" in report
    assert "  [error] line 12, /Abgabe.Abgabe.0401/Kopf/ProzessID: not a UUID" in report
    assert "  [error] Dokument.pdf: Dokument.pdf is missing from the container" in report
    assert "put it into the drop folder again" in report


async def test_unavailable_journal_leaves_the_file_for_the_next_poll(
    inbox: Path, clock: Clock
) -> None:
    """While the journal is down the file stays where it is and is submitted again later."""
    answers: list[Handler] = []

    async def journal_down(data: bytes, submission: Submission) -> Accepted:
        raise JournalUnavailable("journal database unavailable: connection refused")

    async def next_answer(data: bytes, submission: Submission) -> Accepted:
        return await answers.pop(0)(data, submission)

    answers += [journal_down, accepted]
    intake = FakeIntake(next_answer)
    (inbox / "X_0401.zip").write_bytes(CONTENT)
    folder = watcher(inbox, intake, clock)

    first = await settled_scan(folder, clock)
    kept = names(inbox)
    second = await folder.scan()

    assert [h.outcome for h in first] == [Outcome.KEPT]
    assert kept == ["X_0401.zip"]
    assert [h.outcome for h in second] == [Outcome.PROCESSED]
    assert len(intake.submissions) == 2


async def test_resubmitted_duplicate_is_moved_like_a_new_message(inbox: Path, clock: Clock) -> None:
    """After a crash between commit and move, intake answers duplicate and the file is moved."""
    first_id = str(uuid.uuid4())

    async def duplicate(data: bytes, submission: Submission) -> Accepted:
        return Accepted(message_id=first_id, duplicate=True)

    (inbox / "X_0401.zip").write_bytes(CONTENT)
    folder = watcher(inbox, FakeIntake(duplicate), clock)

    (handled,) = await settled_scan(folder, clock)

    assert (handled.outcome, handled.message_id) == (Outcome.PROCESSED, first_id)
    assert names(inbox / "processed") == ["X_0401.zip"]


async def test_taken_names_in_processed_get_a_number(
    inbox: Path, intake: FakeIntake, clock: Clock
) -> None:
    """A file name already in processed/ is never overwritten; the newcomer is numbered."""
    processed = inbox / "processed"
    processed.mkdir()
    (processed / "X_0401.zip").write_bytes(b"earlier")
    (processed / "X_0401.1.zip").write_bytes(b"earlier too")
    (inbox / "X_0401.zip").write_bytes(CONTENT)

    (handled,) = await settled_scan(watcher(inbox, intake, clock), clock)

    assert handled.moved_to == processed / "X_0401.2.zip"
    assert (processed / "X_0401.zip").read_bytes() == b"earlier"
    assert (processed / "X_0401.2.zip").read_bytes() == CONTENT


async def test_taken_names_in_failed_number_file_and_explanation_alike(
    inbox: Path, clock: Clock
) -> None:
    """A second refusal of the same name keeps both files, each with its own explanation."""

    async def refuse(data: bytes, submission: Submission) -> Accepted:
        raise rejection()

    folder = watcher(inbox, FakeIntake(refuse), clock)
    for _ in range(2):
        (inbox / "X_0401.zip").write_bytes(CONTENT)
        await settled_scan(folder, clock)

    assert names(inbox / "failed") == [
        "X_0401.1.zip",
        "X_0401.1.zip.error.txt",
        "X_0401.zip",
        "X_0401.zip.error.txt",
    ]


async def test_our_own_failure_keeps_the_file(
    inbox: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    """An error that is not the file's fault (broken schemas) leaves it for the next poll."""

    async def broken(data: bytes, submission: Submission) -> Accepted:
        raise SchemaNotInstalled("no xdomea schemas installed")

    (inbox / "X_0401.zip").write_bytes(CONTENT)

    (handled,) = await settled_scan(watcher(inbox, FakeIntake(broken), clock), clock)

    assert handled.outcome is Outcome.KEPT
    assert names(inbox) == ["X_0401.zip"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["dropfolder_file_error"]


async def test_file_rewritten_while_read_is_kept(inbox: Path, clock: Clock) -> None:
    """If the file changes during submission it stays, so its new content is read next time."""
    path = inbox / "X_0401.zip"

    async def rewritten(data: bytes, submission: Submission) -> Accepted:
        path.write_bytes(CONTENT + b" and more")
        return Accepted(message_id=str(uuid.uuid4()), duplicate=False)

    path.write_bytes(CONTENT)

    (handled,) = await settled_scan(watcher(inbox, FakeIntake(rewritten), clock), clock)

    assert handled.outcome is Outcome.KEPT
    assert names(inbox) == ["X_0401.zip"]


async def test_oldest_file_is_submitted_first(
    inbox: Path, intake: FakeIntake, clock: Clock
) -> None:
    """Files are taken in the order they were written (modification time)."""
    for name, mtime in [("B.zip", 2_000), ("A.zip", 3_000), ("C.zip", 1_000)]:
        (inbox / name).write_bytes(CONTENT)
        os.utime(inbox / name, (mtime, mtime))

    await settled_scan(watcher(inbox, intake, clock), clock)

    assert [s.file_name for _, s in intake.submissions] == ["C.zip", "B.zip", "A.zip"]


async def test_missing_folder_is_reported_once_and_watched_on(
    tmp_path: Path, intake: FakeIntake, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    """A folder that is not there (yet) is logged once; once it appears, files are taken."""
    inbox = tmp_path / "not-yet"
    folder = watcher(inbox, intake, clock)

    await folder.scan()
    await folder.scan()
    inbox.mkdir()
    (inbox / "X_0401.zip").write_bytes(CONTENT)
    handled = await settled_scan(folder, clock)

    assert [h.outcome for h in handled] == [Outcome.PROCESSED]
    assert [e["event"] for e in logs if e["event"].startswith("dropfolder_")] == [
        "dropfolder_unavailable",
        "dropfolder_available",
        "dropfolder_file_processed",
    ]
