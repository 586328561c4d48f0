"""Receipts this gateway produces for the 0401s it accepts (0403, 0402).

::

    intake ── accept 0401 from a partner ─► journal: message + deliveries + receipts
                                                        0403 pending, 0402 waiting
    worker ── local destination imported it ─► journal: 0402 pending (+ results)
    ReceiptProducer ── due receipt ─► build (answered blob, adapters.xdomea.receipts)
                      ─► intake.submit as the node itself ─► routed like any message
                      ─► journal: receipt produced | skipped

The receipts owed are an outbox written in the same transaction as the message
(0403) and as the delivery outcome that made the import receipt due (0402), so a
crash at any point leaves them pending and the next start produces them. A receipt
is built deterministically (its Erstellungszeitpunkt is when it became due) and
submitted with the Idempotency-Key ``receipt:<message id>:<code>``: producing it
again after a crash between submitting and recording yields the same bytes, which
intake recognises as the message it already has. So at most one copy of each
receipt is ever journaled, and delivery to the peer is at least once as for
every message.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from datetime import UTC, timedelta
from pathlib import Path

import structlog

from adapters.xdomea.container import Container
from adapters.xdomea.receipts import build_receipt, requested_receipts
from adapters.xdomea.validation import CheckedMessage, check_message
from contracts.config import PartnerConfig
from contracts.journal import ReceiptState, ReceiptTask
from gateway.blobs import BlobStore
from gateway.errors import GatewayError, JournalUnavailable
from gateway.intake import Intake, Submission
from gateway.journal.store import Journal, utcnow
from gateway.rounds import run_rounds

log = structlog.get_logger(__name__)

#: Longest pause before a failed receipt is tried again (e.g. while a route is missing).
MAX_BACKOFF_SECONDS = 300.0


class ReceiptProducer:
    """Produces the due receipts of the journal and hands them to intake."""

    def __init__(
        self,
        journal: Journal,
        blobs: BlobStore,
        intake: Intake,
        sender: PartnerConfig,
        *,
        routable: Callable[[str, str], bool] = lambda code, empfaenger: True,
        poll_seconds: float = 1.0,
    ) -> None:
        """A producer; nothing runs until ``run``.

        Args:
            journal: where owed receipts are recorded.
            blobs: where the answered messages' bytes are.
            intake: this gateway's intake; receipts enter it like any message.
            sender: the node itself (``gateway.app.local_sender``).
            routable: whether a receipt of this code to this Behördenkennung has a
                route (checked before building it, so a receipt without one costs a
                look-up per retry, not a build and a refused intake).
            poll_seconds: how often to look for due receipts without a ``notify``.
        """
        self._journal = journal
        self._blobs = blobs
        self._intake = intake
        self._sender = sender
        self._routable = routable
        self._poll = poll_seconds
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A receipt may have become due: look now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Produce due receipts until ``stop`` is set; journal outages are waited out."""
        await run_rounds(
            lambda: self.produce_due(stop),
            stop,
            self._wake,
            poll_seconds=self._poll,
            outages=(JournalUnavailable,),
            event="receipts_journal_unavailable",
        )

    async def produce_due(self, stop: asyncio.Event | None = None) -> int:
        """Produce every receipt due now; how many were produced or skipped.

        Args:
            stop: when set, return after the receipt being produced (shutdown must
                not wait for a long backlog; what is left stays pending).

        Raises:
            JournalUnavailable: the journal cannot be reached.
        """
        done = 0
        while tasks := await self._journal.due_receipts(limit=20):
            for task in tasks:
                if stop is not None and stop.is_set():
                    return done
                done += await self._produce(task)
            if len(tasks) < 20:
                break
        return done

    async def _produce(self, task: ReceiptTask) -> int:
        with structlog.contextvars.bound_contextvars(
            message_id=task.message_id, prozess_id=task.prozess_id, receipt=task.code
        ):
            if not self._routable(task.code, task.absender):
                await self._retry_later(
                    task,
                    f"no route for a {task.code} to {task.absender}; add one to answer "
                    "this partner",
                )
                return 0
            try:
                path = await self._blobs.file(task.blob_sha256)
                receipt = await asyncio.to_thread(self._build, task, path)
                if receipt is None:
                    await self._journal.receipt_done(task, ReceiptState.SKIPPED)
                    log.info("receipt_not_requested")
                    return 1
                accepted = await self._intake.submit(
                    _once(receipt),
                    Submission(
                        partner=self._sender,
                        channel="receipt",
                        idempotency_key=f"receipt:{task.message_id}:{task.code}",
                        file_name=f"{task.prozess_id}_{task.code}.xml",
                    ),
                )
            except JournalUnavailable:
                raise
            except GatewayError as exc:
                await self._retry_later(task, exc.message)
                return 0
            except OSError as exc:
                await self._retry_later(task, f"cannot read message {task.message_id}: {exc}")
                return 0
            await self._journal.receipt_done(
                task, ReceiptState.PRODUCED, receipt_message_id=accepted.message_id
            )
            log.info(
                "receipt_produced",
                receipt_message_id=accepted.message_id,
                failed_objects=sum(1 for r in task.results.values() if not r.erfolgreich),
            )
            return 1

    def _build(self, task: ReceiptTask, path: Path) -> bytes | None:
        """The receipt's bytes, or ``None`` when the Kopf does not ask for it (thread).

        Args:
            path: the file of the message answered (``BlobStore.file``).
        """
        with ExitStack() as stack:
            incoming = read_message(path, task.content_kind, stack)
            if task.code not in requested_receipts(incoming):
                return None
            return build_receipt(
                incoming,
                task.code,
                results=task.results or None,
                # Deterministic: the same bytes however often it is produced.
                erstellungszeitpunkt=task.ready_at.astimezone(UTC).replace(microsecond=0),
            )

    async def _retry_later(self, task: ReceiptTask, error: str) -> None:
        delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(task.attempts, 20)) * random.uniform(0.5, 1)
        at = utcnow() + timedelta(seconds=delay)
        await self._journal.receipt_retry_later(task, at, error)
        log.warning(
            "receipt_failed",
            error=error,
            attempts=task.attempts + 1,
            retry_at=at.isoformat(),
        )


def read_message(path: Path, content_kind: str | None, stack: ExitStack) -> CheckedMessage:
    """A journaled message as checked XML, from a container or a bare message.

    Args:
        content_kind: ``"container"`` or ``"message"``; ``None`` looks at the bytes.
        stack: keeps an opened container open for as long as the caller needs it.

    Only the message XML is read and checked: the documents of a journaled
    container were hashed and checked complete at intake, and hashing them again
    (``Container.report``) would read the whole container, up to gigabytes, for
    every receipt built and every process view.
    """
    if content_kind is None:
        with path.open("rb") as handle:
            content_kind = "container" if handle.read(4) == b"PK\x03\x04" else "message"
    if content_kind == "container":
        container = stack.enter_context(Container(path))
        return container.checked
    return check_message(path.read_bytes(), where=str(path))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
