"""Which files in a transfer folder the other side has finished writing.

The gateway writes atomically (temporary name, then move), but the other side
may not: x-man and many DMS write a file under its final name and append to it
until done. A file counts as ready when two listings at least ``settle_seconds``
apart show it with the same size, modification time and ETag, and its name is no
temporary name. ``StableFiles`` applies that rule to listings it is fed (pure,
no I/O, its clock passed in); ``poll_ready`` polls one sub-folder of a
``TransferFolder`` with it and yields each ready file once.

A ready file stays reported until it disappears from the listings (taken away by
whoever processed it) or changes (rewritten: then it must settle again and is
reported anew).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog

from adapters.transfer.local import is_temporary
from contracts.transfer import FolderEntry, TransferFolder
from gateway.errors import TransientDeliveryError

log = structlog.get_logger(__name__)

_Signature = tuple[int, datetime | None, str | None]


@dataclass
class _Seen:
    signature: _Signature
    #: Clock reading of the first listing that showed this signature.
    since: float
    reported: bool = False


def _signature(entry: FolderEntry) -> _Signature:
    return (entry.size, entry.modified, entry.etag)


class StableFiles:
    """The stable-file rule over consecutive listings of one folder."""

    def __init__(self, settle_seconds: float) -> None:
        """Args:
        settle_seconds: how long a file must stay unchanged before it is ready (≥ 0;
            with 0 two listings still have to agree).
        """
        if settle_seconds < 0:
            raise ValueError("settle_seconds must not be negative")
        self.settle_seconds = settle_seconds
        self._seen: dict[str, _Seen] = {}

    def observe(self, entries: Iterable[FolderEntry], now: float) -> list[FolderEntry]:
        """Feed one listing taken at ``now`` (seconds on a monotonic clock).

        Returns:
            The files that became ready with this listing, by name; each only once
            while it stays unchanged.
        """
        current: dict[str, FolderEntry] = {e.name: e for e in entries if not is_temporary(e.name)}
        # Files gone from the folder are forgotten: a new file of that name is new.
        for name in list(self._seen):
            if name not in current:
                del self._seen[name]
        ready = []
        for name, entry in sorted(current.items()):
            signature = _signature(entry)
            seen = self._seen.get(name)
            if seen is None or seen.signature != signature:
                self._seen[name] = _Seen(signature=signature, since=now)
                continue
            if not seen.reported and now - seen.since >= self.settle_seconds:
                seen.reported = True
                ready.append(entry)
        return ready

    def forget(self, name: str) -> None:
        """Stop remembering ``name`` (e.g. it was processed but must be seen again if it stays)."""
        self._seen.pop(name, None)


async def poll_ready(
    folder: TransferFolder,
    sub_folder: str,
    *,
    interval: float,
    settle_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    stable: StableFiles | None = None,
) -> AsyncIterator[FolderEntry]:
    """List ``sub_folder`` every ``interval`` seconds and yield each file once it is ready.

    A listing that fails transiently (server down, share not mounted) is logged and
    tried again at the next interval; the generator runs until it is closed or its
    task cancelled. Pass ``stable`` to ``forget`` a file whose processing failed,
    so it is offered again once it settled anew.

    Raises:
        PermanentDeliveryError: the folder refuses access (credentials); polling on
            cannot help.
    """
    stable = stable if stable is not None else StableFiles(settle_seconds)
    while True:
        try:
            entries = await folder.list(sub_folder)
        except TransientDeliveryError as exc:
            log.warning("transfer_folder_poll_failed", folder=sub_folder, error=str(exc))
        else:
            for entry in stable.observe(entries, clock()):
                yield entry
        await asyncio.sleep(interval)
