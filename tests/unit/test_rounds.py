"""The background runners' loop: rounds on wake-up and poll, outages waited out with backoff."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import JournalUnavailable
from gateway.rounds import run_rounds


async def test_a_wake_up_starts_the_next_round_before_the_poll_interval() -> None:
    """``wake`` set during the wait runs another round at once, not after the poll."""
    stop, wake = asyncio.Event(), asyncio.Event()
    rounds: list[float] = []

    async def round_() -> None:
        rounds.append(asyncio.get_running_loop().time())
        if len(rounds) == 2:
            stop.set()

    task = asyncio.create_task(
        run_rounds(round_, stop, wake, poll_seconds=3600, outages=(), event="unused")
    )
    await asyncio.sleep(0.05)
    wake.set()
    await asyncio.wait_for(task, timeout=5)

    assert len(rounds) == 2


async def test_an_outage_is_waited_out_and_the_loop_goes_on() -> None:
    """A round failing with a listed error is retried after a pause, without ending the loop."""
    stop, wake = asyncio.Event(), asyncio.Event()
    calls = 0

    async def round_() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise JournalUnavailable("journal down")
        stop.set()

    await asyncio.wait_for(
        run_rounds(
            round_,
            stop,
            wake,
            poll_seconds=0.01,
            outages=(JournalUnavailable,),
            event="test_waiting",
        ),
        timeout=5,
    )

    assert calls == 2


async def test_an_unlisted_error_ends_the_loop() -> None:
    """An error that is not an outage is not swallowed."""

    async def round_() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await run_rounds(
            round_,
            asyncio.Event(),
            asyncio.Event(),
            poll_seconds=0.01,
            outages=(JournalUnavailable,),
            event="test_waiting",
        )
