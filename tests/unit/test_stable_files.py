"""The stable-file rule: a file is ready once two listings far enough apart agree on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.transfer.polling import StableFiles, poll_ready
from contracts.transfer import FolderEntry
from gateway.errors import TransientDeliveryError

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 23, 14, 0, 1, tzinfo=UTC)


def entry(
    name: str, size: int = 10, modified: datetime = T0, etag: str | None = None
) -> FolderEntry:
    return FolderEntry(name=name, size=size, modified=modified, etag=etag)


def test_a_file_seen_once_is_not_ready() -> None:
    """One listing cannot tell a finished file from one being written."""
    assert StableFiles(2.0).observe([entry("a.zip")], now=0.0) == []


def test_a_file_unchanged_for_the_settle_time_is_ready() -> None:
    """Same size, time and ETag at least settle_seconds apart: ready."""
    stable = StableFiles(2.0)
    stable.observe([entry("a.zip")], now=0.0)
    assert [e.name for e in stable.observe([entry("a.zip")], now=2.0)] == ["a.zip"]


def test_a_file_unchanged_for_less_than_the_settle_time_is_not_ready_yet() -> None:
    """Two quick listings are not enough; a later one is."""
    stable = StableFiles(2.0)
    stable.observe([entry("a.zip")], now=0.0)
    assert stable.observe([entry("a.zip")], now=1.0) == []
    assert [e.name for e in stable.observe([entry("a.zip")], now=2.5)] == ["a.zip"]


@pytest.mark.parametrize(
    "changed",
    [entry("a.zip", size=11), entry("a.zip", modified=T1), entry("a.zip", etag='"v2"')],
    ids=["size", "modified", "etag"],
)
def test_a_change_in_size_time_or_etag_restarts_the_wait(changed: FolderEntry) -> None:
    """A file still growing (or rewritten) must settle again from its last change."""
    stable = StableFiles(2.0)
    stable.observe([entry("a.zip", etag='"v1"' if changed.etag else None)], now=0.0)
    assert stable.observe([changed], now=2.0) == []
    assert stable.observe([changed], now=3.0) == []
    assert stable.observe([changed], now=4.0) == [changed]


def test_a_ready_file_is_reported_once() -> None:
    """A file left in the folder is not handed out again and again."""
    stable = StableFiles(0.0)
    stable.observe([entry("a.zip")], now=0.0)
    assert len(stable.observe([entry("a.zip")], now=1.0)) == 1
    assert stable.observe([entry("a.zip")], now=2.0) == []


def test_a_file_that_comes_back_after_being_taken_away_is_new() -> None:
    """A second file under the same name (the next message) is reported in its turn."""
    stable = StableFiles(0.0)
    stable.observe([entry("a.zip")], now=0.0)
    stable.observe([entry("a.zip")], now=1.0)
    stable.observe([], now=2.0)
    assert stable.observe([entry("a.zip")], now=3.0) == []
    assert len(stable.observe([entry("a.zip")], now=4.0)) == 1


def test_temporary_names_are_never_ready() -> None:
    """A file under a temporary name is still being written, however long it stays."""
    stable = StableFiles(0.0)
    for now in (0.0, 1.0, 2.0):
        assert stable.observe([entry(".a.zip.1234.part"), entry("b.zip.tmp")], now=now) == []


def test_forget_makes_a_file_settle_again() -> None:
    """A consumer that could not process a ready file can have it offered again."""
    stable = StableFiles(0.0)
    stable.observe([entry("a.zip")], now=0.0)
    stable.observe([entry("a.zip")], now=1.0)
    stable.forget("a.zip")
    assert stable.observe([entry("a.zip")], now=2.0) == []
    assert len(stable.observe([entry("a.zip")], now=3.0)) == 1


def test_negative_settle_time_is_refused() -> None:
    """A negative wait is a configuration mistake."""
    with pytest.raises(ValueError, match="negative"):
        StableFiles(-1.0)


class _ScriptedFolder:
    """A transfer folder whose listings follow a script (an exception raises)."""

    def __init__(self, listings: list[list[FolderEntry] | Exception]) -> None:
        self.listings = listings
        self.calls = 0

    async def list(self, folder: str) -> list[FolderEntry]:
        step = self.listings[min(self.calls, len(self.listings) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        return step

    async def download(self, folder: str, name: str, target: Path) -> str:
        raise NotImplementedError

    async def upload(self, folder: str, name: str, source: Path, sha256: str) -> None:
        raise NotImplementedError

    async def remove(self, folder: str, name: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


async def test_poll_ready_yields_each_settled_file_once_and_survives_a_failed_listing() -> None:
    """A transient listing error is skipped; files are yielded once they settled."""
    folder = _ScriptedFolder(
        [
            [entry("a.zip", size=1)],
            TransientDeliveryError("share away"),
            [entry("a.zip", size=5), entry("b.zip")],
            [entry("a.zip", size=5), entry("b.zip")],
        ]
    )
    ticks = iter(range(100))
    found: list[str] = []

    async def collect() -> None:
        async for ready in poll_ready(
            folder, "in", interval=0, settle_seconds=1, clock=lambda: float(next(ticks))
        ):
            found.append(ready.name)

    task = asyncio.create_task(collect())
    while folder.calls < 8:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert found == ["a.zip", "b.zip"]
