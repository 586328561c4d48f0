"""Drop-folder intake: a watched inbound directory whose files are journaled, then moved.

::

    <directory>/X.zip ──settled?──► intake.submit ──accepted──► processed/X.zip
                                          ├──refused──► failed/X.zip + X.zip.error.txt
                                          └──journal down──► stays; next poll tries again

A file is read only once its size and modification time stayed the same for
``settle_seconds``, and hidden or temporary names (``.x``, ``x.part``, ``x.tmp``)
are never read, so a file still being written is not taken. Only regular files
at the top level count; symbolic links are ignored so a partner with write access
to the folder cannot make the gateway read other local files.

A file is moved to ``processed/`` only after the journal committed it. A crash in
between is harmless: the next poll submits the same bytes again, intake answers
"duplicate" with the first message's id, and the file is moved. Names already
taken in ``processed/`` or ``failed/`` get a number (``X.1.zip``); nothing there is
overwritten. Only this watcher writes into those folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import structlog

from contracts.config import DropFolderConfig, GatewayConfig, PartnerConfig
from contracts.journal import Accepted
from gateway.durable import fsync_dir
from gateway.errors import IntakeRejected, JournalUnavailable
from gateway.intake import Submission

log = structlog.get_logger(__name__)

_CHUNK = 1024 * 1024
_TEMPORARY_SUFFIXES = (".part", ".tmp")


class Submitter(Protocol):
    """What the drop folder needs of intake (``gateway.intake.Intake`` is one)."""

    async def submit(
        self,
        chunks: AsyncIterator[bytes],
        submission: Submission,
        *,
        max_bytes: int | None = None,
    ) -> Accepted:
        """Check, route and journal one message."""
        ...


class Outcome(StrEnum):
    """What became of a file."""

    PROCESSED = "processed"
    FAILED = "failed"
    KEPT = "kept"  # left in place, tried again next poll


@dataclass(frozen=True)
class Handled:
    """One file a scan took up."""

    name: str
    outcome: Outcome
    moved_to: Path | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class _Sighting:
    size: int
    mtime_ns: int
    since: float


class DropFolder:
    """Watches one inbound directory for one partner."""

    def __init__(
        self,
        folder: DropFolderConfig,
        config: GatewayConfig,
        intake: Submitter,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set up the watcher; nothing is read until ``scan`` or ``run``.

        Args:
            folder: the drop folder's settings.
            config: the gateway configuration (the partner files are attributed to).
            intake: where files are submitted.
            clock: monotonic seconds, for the settle time.

        Raises:
            KeyError: the folder names a partner the configuration lacks.
        """
        self.folder = folder
        self.directory = folder.directory
        self.partner: PartnerConfig = config.partner(folder.partner)
        self.processed = self.directory / "processed"
        self.failed = self.directory / "failed"
        self._intake = intake
        self._clock = clock
        self._seen: dict[str, _Sighting] = {}
        self._available = True

    async def run(self, stop: asyncio.Event) -> None:
        """Scan every ``poll_interval_seconds`` until ``stop`` is set."""
        log.info("dropfolder_watching", directory=str(self.directory), partner=self.partner.id)
        while not stop.is_set():
            try:
                await self.scan(stop)
            except Exception:
                # One bad scan must not end the watcher; the next poll tries again.
                log.exception("dropfolder_scan_failed", directory=str(self.directory))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.folder.poll_interval_seconds)
        log.info("dropfolder_stopped", directory=str(self.directory))

    async def scan(self, stop: asyncio.Event | None = None) -> list[Handled]:
        """One pass: submit every settled file, oldest first.

        Returns:
            What became of each file taken up in this pass (unsettled files are not listed).
        """
        try:
            ready = await asyncio.to_thread(self._settled)
        except OSError as exc:
            if self._available:
                log.error(
                    "dropfolder_unavailable", directory=str(self.directory), error=exc.strerror
                )
            self._available = False
            return []
        if not self._available:
            log.info("dropfolder_available", directory=str(self.directory))
            self._available = True
        handled = []
        for path, sighting in ready:
            if stop is not None and stop.is_set():
                break
            handled.append(await self._take(path, sighting))
        return handled

    def _settled(self) -> list[tuple[Path, _Sighting]]:
        """Files whose size and mtime did not change for ``settle_seconds``."""
        now = self._clock()
        seen: dict[str, _Sighting] = {}
        ready: list[tuple[Path, _Sighting]] = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if _ignored(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # taken away meanwhile
                before = self._seen.get(entry.name)
                if before is None or (before.size, before.mtime_ns) != (
                    stat.st_size,
                    stat.st_mtime_ns,
                ):
                    before = _Sighting(stat.st_size, stat.st_mtime_ns, now)
                seen[entry.name] = before
                if now - before.since >= self.folder.settle_seconds:
                    ready.append((Path(entry.path), before))
        # Forgetting vanished names keeps the map as small as the folder.
        self._seen = seen
        ready.sort(key=lambda item: (item[1].mtime_ns, item[0].name))
        return ready

    async def _take(self, path: Path, sighting: _Sighting) -> Handled:
        bound = log.bind(directory=str(self.directory), file=path.name, partner=self.partner.id)
        submission = Submission(partner=self.partner, channel="dropfolder", file_name=path.name)
        chunks = _read(path)
        try:
            accepted = await self._intake.submit(chunks, submission)
        except IntakeRejected as exc:
            moved = await asyncio.to_thread(self._fail, path, exc)
            bound.warning(
                "dropfolder_file_failed", reason=exc.kind, status=exc.status, moved_to=str(moved)
            )
            return self._forget(Handled(path.name, Outcome.FAILED, moved_to=moved))
        except JournalUnavailable as exc:
            bound.warning("dropfolder_journal_unavailable", error=str(exc))
            return Handled(path.name, Outcome.KEPT)
        except FileNotFoundError:
            bound.info("dropfolder_file_vanished")
            return self._forget(Handled(path.name, Outcome.KEPT))
        except Exception:
            # Our fault, not the file's (broken schemas, a bug): keep it for the next poll.
            bound.exception("dropfolder_file_error")
            return Handled(path.name, Outcome.KEPT)
        finally:
            await chunks.aclose()  # closes the file even if intake stopped reading early
        if not await asyncio.to_thread(_unchanged, path, sighting):
            # Rewritten while we read it: what was journaled may not be what lies
            # there now; keep the file, the next poll submits its current content.
            bound.warning("dropfolder_file_changed_while_read", message_id=accepted.message_id)
            return Handled(path.name, Outcome.KEPT, message_id=accepted.message_id)
        moved = await asyncio.to_thread(_move, path, self.processed)
        bound.info(
            "dropfolder_file_processed",
            message_id=accepted.message_id,
            duplicate=accepted.duplicate,
            moved_to=str(moved),
        )
        return self._forget(
            Handled(path.name, Outcome.PROCESSED, moved_to=moved, message_id=accepted.message_id)
        )

    def _fail(self, path: Path, error: IntakeRejected) -> Path:
        """Move a refused file to ``failed/`` with the reason written beside it."""
        target = _free_name(self.failed, path.name)
        # The explanation first: a file in failed/ always has one, even after a crash.
        report = target.with_name(target.name + ".error.txt")
        _write_durably(report, error_report(path, self.partner, error))
        _rename(path, target)
        return target

    def _forget(self, handled: Handled) -> Handled:
        self._seen.pop(handled.name, None)
        return handled


def error_report(path: Path, partner: PartnerConfig, error: IntakeRejected) -> str:
    """The ``.error.txt`` text: what was wrong, where, and how to fix it."""
    lines = [
        "The gateway refused this file from the drop folder; it was not accepted.",
        "",
        f"File:     {path.name}",
        f"Folder:   {path.parent}",
        f"Partner:  {partner.id} ({partner.behoerdenkennung})",
        f"Time:     {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"Refused:  {error.title} ({error.kind}, HTTP {error.status})",
        "",
        "What is wrong:",
        f"  {error.message}",
    ]
    if error.findings:
        lines += ["", "Findings:"]
        for finding in error.findings:
            where = f"line {finding.line}" if finding.line else ""
            if finding.path:
                where += f"{', ' if where else ''}{finding.path}"
            lines.append(f"  [{finding.severity}] {where + ': ' if where else ''}{finding.message}")
    lines += [
        "",
        "How to fix:",
        "  Correct the file as described above and put it into the drop folder again",
        f"  ({path.parent}). Files in failed/ are not read again.",
        "",
    ]
    return "\n".join(lines)


def _ignored(name: str) -> bool:
    """Hidden files and temporary names are still being written (or are not ours)."""
    return name.startswith(".") or name.lower().endswith(_TEMPORARY_SUFFIXES)


async def _read(path: Path) -> AsyncGenerator[bytes, None]:
    # O_NOFOLLOW: the file could have been swapped for a symbolic link since the scan.
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, "rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, _CHUNK):
            yield chunk


def _unchanged(path: Path, sighting: _Sighting) -> bool:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    return (stat.st_size, stat.st_mtime_ns) == (sighting.size, sighting.mtime_ns)


def _move(path: Path, folder: Path) -> Path:
    target = _free_name(folder, path.name)
    _rename(path, target)
    return target


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/stem.N.suffix`` for the first N not taken."""
    folder.mkdir(exist_ok=True)
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 0
    while candidate.exists() or candidate.with_name(candidate.name + ".error.txt").exists():
        number += 1
        candidate = folder / f"{stem}.{number}{suffix}"
    return candidate


def _rename(source: Path, target: Path) -> None:
    os.rename(source, target)
    fsync_dir(target.parent)
    fsync_dir(source.parent)


def _write_durably(path: Path, text: str) -> None:
    with path.open("x", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
