"""Group commit: requests that arrive while a batch is being written share the next one.

A durable write costs an fsync, whatever it holds, and a hand-off to a thread.
When sixteen intake requests wait for the journal at once, writing them in one
transaction costs one fsync instead of sixteen, and none of them waits longer
than it would have in the queue anyway: the batch is whatever piled up while the
previous one was written, so a lone request is written at once (no timer, no
added latency). The journal batches its transactions this way; the filesystem
destination its small files (one thread hand-off and one folder fsync a batch).

``GroupCommit(write_batch)`` takes a function that writes a list of items in one
go and returns one outcome per item: a result, or the exception that item alone
failed with (its caller gets it raised). An exception raised by ``write_batch``
itself (the database is gone) fails every item of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Batches concurrent ``submit`` calls into batches written one after another."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Awaitable[Sequence[Result | BaseException]]],
        *,
        max_batch: int = 64,
        lanes: int = 1,
        name: str = "group-commit",
    ) -> None:
        """Args:
        write_batch: writes the items in one go; one outcome per item, in order.
        max_batch: most items in one batch (bounds its duration and size).
        lanes: most batches written at the same time (a journal has one writer;
            files on a disk gain from overlapping their fsyncs).
        name: the name of the tasks that write the batches (shows in task dumps).
        """
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._lanes = lanes
        self._name = name
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writers: list[asyncio.Task[None]] = []

    async def submit(self, item: Item) -> Result:
        """Write ``item`` in the next batch; its result once that is written.

        If the caller is cancelled meanwhile, the item may still be written: as with
        any commit whose answer is lost, the caller cannot know (idempotent retries
        cover that).
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        # A writer whose loop found nothing pending is done at once (its done
        # callbacks come later), so count the tasks not done, not the callbacks.
        self._writers = [writer for writer in self._writers if not writer.done()]
        if len(self._writers) < self._lanes:
            self._writers.append(asyncio.create_task(self._write_all(), name=self._name))
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
        """Wait for the batches being written, if any (no new one is started after this)."""
        writers = [writer for writer in self._writers if not writer.done()]
        if writers:
            await asyncio.gather(*writers, return_exceptions=True)
