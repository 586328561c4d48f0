"""Group commit: concurrent submissions share one transaction, each keeps its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.group_commit import GroupCommit


class Recorder:
    """A ``write_batch`` that records its batches and waits for a gate before answering."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_a_lone_submission_is_written_at_once() -> None:
    """No timer: one caller waits for nothing but its own transaction."""
    recorder = Recorder()
    commit = GroupCommit(recorder.write)

    assert await commit.submit(2) == 20
    assert recorder.batches == [[2]]


async def test_submissions_arriving_during_a_write_share_the_next_one() -> None:
    """While one batch is written, the others pile up and go together."""
    recorder = Recorder()
    recorder.gate.clear()
    commit = GroupCommit(recorder.write)
    first = asyncio.create_task(commit.submit(0))
    await asyncio.sleep(0)  # the first batch is being written
    rest = [asyncio.create_task(commit.submit(i)) for i in (2, 4, 6)]
    await asyncio.sleep(0)
    recorder.gate.set()

    assert await first == 0
    assert [await task for task in rest] == [20, 40, 60]
    assert recorder.batches == [[0], [2, 4, 6]]


async def test_an_item_that_fails_fails_only_its_own_caller() -> None:
    """Per-item exceptions reach their caller; the rest of the batch succeeds."""
    recorder = Recorder()
    recorder.gate.clear()
    commit = GroupCommit(recorder.write)
    blocker = asyncio.create_task(commit.submit(0))
    await asyncio.sleep(0)
    good, bad = asyncio.create_task(commit.submit(2)), asyncio.create_task(commit.submit(3))
    await asyncio.sleep(0)
    recorder.gate.set()

    await blocker
    assert await good == 20
    with pytest.raises(ValueError, match="odd 3"):
        await bad


async def test_a_failed_transaction_fails_every_caller_of_the_batch() -> None:
    """When the write itself fails (the database is gone), nobody hangs."""

    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("database gone")

    commit = GroupCommit(broken)
    results = await asyncio.gather(*(commit.submit(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, ConnectionError) for r in results)


async def test_batches_are_capped() -> None:
    """``max_batch`` bounds the size of one transaction."""
    recorder = Recorder()
    recorder.gate.clear()
    commit = GroupCommit(recorder.write, max_batch=2)
    blocker = asyncio.create_task(commit.submit(0))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(commit.submit(i)) for i in (2, 4, 6, 8, 10)]
    await asyncio.sleep(0)
    recorder.gate.set()
    await asyncio.gather(blocker, *tasks)

    assert recorder.batches == [[0], [2, 4], [6, 8], [10]]


async def test_with_two_lanes_a_second_batch_is_written_while_the_first_is() -> None:
    """``lanes`` batches may be in flight at once; the rest still pile up behind them."""
    recorder = Recorder()
    recorder.gate.clear()
    commit = GroupCommit(recorder.write, lanes=2)
    first = asyncio.create_task(commit.submit(0))
    await asyncio.sleep(0)
    second = asyncio.create_task(commit.submit(2))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(commit.submit(i)) for i in (4, 6)]
    await asyncio.sleep(0)

    assert recorder.batches == [[0], [2]]  # both lanes busy, 4 and 6 wait
    recorder.gate.set()
    await asyncio.gather(first, second, *rest)
    assert sorted(map(sorted, recorder.batches)) == [[0], [2], [4, 6]]


async def test_a_lane_freed_by_a_finished_writer_is_used_again() -> None:
    """After a writer ran out of work, the next submission starts a new one."""
    recorder = Recorder()
    commit = GroupCommit(recorder.write, lanes=1)

    assert await commit.submit(2) == 20
    assert await commit.submit(4) == 40
    assert recorder.batches == [[2], [4]]


def test_lanes_below_one_are_refused() -> None:
    """Zero lanes would never write anything."""
    with pytest.raises(ValueError, match="lanes must be at least 1"):
        GroupCommit(Recorder().write, lanes=0)
