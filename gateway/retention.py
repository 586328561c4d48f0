"""Forgetting finished processes the journal no longer needs (``ikz-gateway db purge``).

What counts as finished is the journal's business (``gateway.journal.retention``);
this module walks the finished processes in batches, forgets each in a
transaction of its own (so a purge can be interrupted at any point and run
again) and sums up what went; ``run_periodically`` does that inside ``serve``
(``[retention]``). Blob files stay: a content file no message refers to any more
is listed, and removed by ``blobs prune`` (``gateway.blob_prune``) once no gateway
has the blob store open.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from contracts.config import RetentionConfig
from contracts.journal import PurgedProcess
from gateway.errors import JournalError
from gateway.journal.store import Journal, utcnow

log = structlog.get_logger(__name__)

#: Finished processes listed per round.
BATCH = 500


@dataclass
class PurgeReport:
    """What a purge forgot (or, in a dry run, would forget)."""

    cutoff: datetime
    dry_run: bool
    #: Lower-cased ProzessIDs found finished (in a dry run: all that would go).
    finished: list[str] = field(default_factory=list)
    purged: list[PurgedProcess] = field(default_factory=list)

    @property
    def messages(self) -> int:
        """Messages forgotten."""
        return sum(p.messages for p in self.purged)

    @property
    def content_bytes(self) -> int:
        """Bytes of journal-kept content deleted."""
        return sum(p.content_bytes for p in self.purged)

    @property
    def unreferenced_blobs(self) -> list[str]:
        """SHA-256 of contents no message in the journal refers to any more."""
        return [sha for p in self.purged for sha in p.unreferenced_blobs]


async def purge(
    journal: Journal, *, own_kennung: str, cutoff: datetime, dry_run: bool = False
) -> PurgeReport:
    """Forget every process finished before ``cutoff`` (see ``gateway.journal.retention``).

    Args:
        own_kennung: this node's Behördenkennung.
        cutoff: nothing in a forgotten process happened at or after this time.
        dry_run: only list the finished processes.

    Raises:
        JournalUnavailable: the journal cannot be reached (what was forgotten
            before stays forgotten; running the purge again goes on).
    """
    report = PurgeReport(cutoff=cutoff, dry_run=dry_run)
    if dry_run:
        report.finished = await journal.finished_processes(
            own_kennung=own_kennung, cutoff=cutoff, limit=None
        )
        return report
    # A process found finished that changed before its own transaction stays and is
    # listed again; asking for that many more keeps it from blocking the rest.
    kept: set[str] = set()
    while True:
        batch = await journal.finished_processes(
            own_kennung=own_kennung, cutoff=cutoff, limit=BATCH + len(kept)
        )
        fresh = [key for key in batch if key not in kept]
        if not fresh:
            return report
        for key in fresh:
            report.finished.append(key)
            purged = await journal.purge_process(key, own_kennung=own_kennung, cutoff=cutoff)
            if purged is None:
                kept.add(key)
            else:
                report.purged.append(purged)


async def run_periodically(
    journal: Journal,
    config: RetentionConfig,
    *,
    own_kennung: str,
    stop: asyncio.Event,
    first_after_seconds: float = 60.0,
) -> None:
    """Purge as ``[retention]`` says until ``stop`` is set (``serve``'s background task).

    The first purge runs ``first_after_seconds`` after start (a gateway restarted
    more often than ``interval_hours`` still purges), then every ``interval_hours``.
    A journal that cannot be reached is tried again at the next turn.
    """
    if config.purge_after_days is None:
        return
    age = timedelta(days=config.purge_after_days)
    wait = first_after_seconds
    while not await _stopped(stop, wait):
        wait = config.interval_hours * 3600
        try:
            report = await purge(journal, own_kennung=own_kennung, cutoff=utcnow() - age)
        except JournalError as exc:
            log.warning("retention_purge_failed", error=str(exc))
            continue
        except Exception as exc:  # a bug must not end the task: the next turn tries again
            log.error("retention_purge_failed", exc_info=exc)
            continue
        if report.purged:
            log.info(
                "retention_purged",
                processes=len(report.purged),
                messages=report.messages,
                content_bytes=report.content_bytes,
                unreferenced_blobs=len(report.unreferenced_blobs),
            )


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; whether it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
