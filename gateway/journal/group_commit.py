"""Group commit: requests that arrive while a transaction is being written share the next one.

A durable commit costs an fsync, whatever it holds. When sixteen intake requests
wait for the journal at once, writing them in one transaction costs one fsync
instead of sixteen, and none of them waits longer than it would have in the
queue anyway: the batch is whatever piled up while the previous one was written,
so a lone request is written at once (no timer, no added latency).

``GroupCommit(write_batch)`` takes a function that writes a list of items in one
transaction and returns one outcome per item: a result, or the exception that
item alone failed with (its caller gets it raised). An exception raised by
``write_batch`` itself (the database is gone) fails every item of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Batches concurrent ``submit`` calls into transactions written one after another."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Awaitable[Sequence[Result | BaseException]]],
        *,
        max_batch: int = 64,
    ) -> None:
        """Args:
        write_batch: writes the items in one transaction; one outcome per item, in order.
        max_batch: most items in one transaction (bounds its duration and size).
        """
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write ``item`` in the next transaction; its result once that is committed.

        If the caller is cancelled meanwhile, the item may still be written: as with
        any commit whose answer is lost, the caller cannot know (idempotent retries
        cover that).
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="journal-group-commit")
        return await future

    async def _write_all(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                outcomes = await self._write_batch([item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except BaseException as exc:  # every caller of the batch hears it, none hangs
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # its caller was cancelled
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def close(self) -> None:
        """Wait for the batch being written, if any (no new one is started after this)."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.gather(writer, return_exceptions=True)
