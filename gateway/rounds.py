"""The loop of a background runner: a round, then wait for a wake-up, the poll, or stop.

The receipt producer and the Abgabe completion runner work in rounds: each round
does what is due, then the runner sleeps until ``notify`` wakes it, its poll
interval passes, or the gateway stops. An outage (the journal, a DMS) fails a
round; it is logged and waited out with a growing pause, so a long outage costs
a look now and then, not a tight loop of failures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

#: The longest pause after failed rounds, in poll intervals.
MAX_BACKOFF = 30


async def run_rounds(
    round_: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    wake: asyncio.Event,
    *,
    poll_seconds: float,
    outages: tuple[type[Exception], ...],
    event: str,
) -> None:
    """Run ``round_`` until ``stop`` is set, again after each wake-up or poll interval.

    Args:
        round_: one round of the runner's work.
        stop: set when the gateway stops; the loop ends at the next wait.
        wake: set by the runner's ``notify``; cleared before each round, so a
            wake-up during a round starts the next one at once.
        poll_seconds: the pause between rounds without a wake-up.
        outages: the errors that fail a round without ending the loop.
        event: the warning logged for such a failure (with ``error``, ``failures``).
    """
    failures = 0
    while not stop.is_set():
        wake.clear()
        try:
            await round_()
            failures = 0
        except outages as exc:
            failures += 1
            log.warning(event, error=str(exc), failures=failures)
        # 2, 4, 8, … poll intervals after failures in a row, at most MAX_BACKOFF.
        delay = poll_seconds * min(2**failures, MAX_BACKOFF)
        waiters = [asyncio.create_task(e.wait()) for e in (stop, wake)]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
