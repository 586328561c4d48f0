"""Filesystem transfer directory: the drop folder a DMS or archive imports from.

A message is copied from the blob store to a hidden temporary file in the target
directory (``.<name>.<random>.part``) while its SHA-256 is checked, fsync'd, and
only then published under its xdomea file name (``<ProzessID>_Abgabe.Abgabe.0401.zip``
in the configured naming style; a bare message gets ``.xml``), and the directory is
fsync'd (shared with concurrent deliveries into the same directory:
``gateway.foldersync``). An importer therefore never sees a half-written file
under an xdomea name.

Small messages (those the journal keeps, and blobs up to ``SMALL_BLOB_BYTES``)
are written in batches: deliveries arriving while one batch is written share the
next (``gateway.group_commit``), and one thread writes the whole batch (each file
in one write, fsync'd, linked) and fsyncs the folder once. Sixteen concurrent
deliveries then cost one thread hand-off and one folder fsync instead of sixteen
of each, which is where a small message's delivery spent its CPU (threads woken
and put to sleep). The files' fsyncs run one after another; on a local disk that
takes a fraction of a millisecond each.

Publishing never replaces a different file: importers take files away when they
have read them, and a second, different message with the same ProzessID and type
must not overwrite the first before it was imported. So the temporary file is
hard-linked to its name (atomic, fails if the name exists); a file already there
with identical content means this message was delivered before (a redelivery after
a crash) and counts as delivered; different content waits for the importer
(transient). Filesystems without hard links (some SMB and FUSE mounts) fall back to
an existence check and an atomic rename.

Error mapping:

* missing, unwritable or full target directory → ``TransientDeliveryError``;
* the blob's bytes do not match its SHA-256, or the blob is gone →
  ``PermanentDeliveryError`` (the gateway's own copy is damaged; retrying cannot help).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path

from adapters.transfer.local import link_new, publish
from adapters.xdomea import naming
from contracts.config import FilesystemDestination
from contracts.delivery import Outbound
from contracts.xdomea import MessageType
from gateway import foldersync
from gateway.durable import create_exclusive, read_small, write_new
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.group_commit import GroupCommit

_CHUNK = 1024 * 1024
#: Blobs up to this size are copied in one read and one write instead of in chunks.
SMALL_BLOB_BYTES = 1024 * 1024
#: Delivery slots (the destination's ``concurrency``) per thread writing small files:
#: each thread's fsyncs run one after another, so more slots get more threads.
SLOTS_PER_LANE = 4


class FilesystemTransfer:
    """Delivers messages into one transfer directory.

    A missing or unwritable directory is transient, not permanent: it is almost
    always an operations problem (a share not mounted, permissions after a
    migration) that an operator fixes, after which the queued messages should go
    through without anyone replaying them. The directory is never created, because a
    missing mount point would then silently fill the local disk underneath it. The
    retry budget (``max_attempts``, ``max_age_seconds``) still ends a lasting
    misconfiguration in the dead-letter queue.
    """

    #: A small message the journal keeps is copied from ``Outbound.content``: no blob
    #: file is written for it, nor read.
    reads_content = True

    def __init__(self, name: str, config: FilesystemDestination) -> None:
        self.name = name
        self.directory = config.directory
        self.style = naming.NamingStyle(config.naming)
        self._small: GroupCommit[tuple[Outbound, Path], None] = GroupCommit(
            self._write_small,
            lanes=max(1, config.concurrency // SLOTS_PER_LANE),
            name=f"transfer-{name}-small-files",
        )

    def target_name(self, item: Outbound) -> str:
        """The xdomea file name ``item`` is published under.

        Raises:
            PermanentDeliveryError: the ProzessID would not make a plain file name.
        """
        typ = MessageType(element=item.message_element, code=item.nachrichtentyp)
        if item.content_kind == "container":
            name = naming.container_name(item.prozess_id, typ, self.style)
        else:
            name = naming.message_name(item.prozess_id, typ, self.style)
        # The ProzessID comes from the sender's message; never let it pick another folder.
        if name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
            raise PermanentDeliveryError(
                f"ProzessID {item.prozess_id!r} does not make a safe file name ({name!r})"
            )
        return name

    async def deliver(self, item: Outbound) -> None:
        """Copy ``item`` into the transfer directory under its xdomea name.

        Raises:
            TransientDeliveryError: the directory is missing, unwritable or full, or
                holds a different file of that name not yet imported.
            PermanentDeliveryError: the blob is missing or does not match its SHA-256.
        """
        target = self.directory / self.target_name(item)
        if item.content is not None or item.size <= SMALL_BLOB_BYTES:
            await self._small.submit((item, target))
            return
        # The copy runs in a thread, which cannot be interrupted; it checks this
        # flag between chunks so a cancelled delivery stops and cleans up.
        cancelled = threading.Event()
        try:
            await asyncio.to_thread(_transfer, item, target, cancelled)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def _write_small(
        self, batch: Sequence[tuple[Outbound, Path]]
    ) -> list[BaseException | None]:
        return await asyncio.to_thread(_transfer_small, self.directory, batch)

    async def close(self) -> None:
        """Wait for the batch of small files being written, if any."""
        await self._small.close()


class _Cancelled(Exception):
    """The delivery was cancelled while the copy thread ran."""


def _transfer_small(
    directory: Path, batch: Sequence[tuple[Outbound, Path]]
) -> list[BaseException | None]:
    """Write and link each small file of ``batch``, then fsync ``directory`` once.

    One outcome per item: None once its file is durable under its name, or the
    delivery error it alone failed with.
    """
    outcomes: list[BaseException | None] = []
    for item, target in batch:
        temp = _temp_name(target)
        try:
            try:
                _copy_small(item, temp)
                link_new(temp, target, size=item.size, sha256=item.blob_sha256)
            finally:
                temp.unlink(missing_ok=True)
        except (TransientDeliveryError, PermanentDeliveryError) as exc:
            outcomes.append(exc)
        except OSError as exc:
            outcomes.append(_unwritable(directory, exc))
        else:
            outcomes.append(None)
    if any(outcome is None for outcome in outcomes):
        # Also when every name was there already: a redelivery after a crash may
        # find a name whose folder fsync never ran.
        try:
            foldersync.shared.sync(directory)
        except OSError as exc:
            failed = _unwritable(directory, exc)
            outcomes = [failed if outcome is None else outcome for outcome in outcomes]
    return outcomes


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")


def _unwritable(directory: Path, exc: OSError) -> TransientDeliveryError:
    return TransientDeliveryError(
        f"cannot write to transfer directory {directory}: "
        f"{exc.strerror or exc}; check that it exists, is mounted and writable"
    )


def _transfer(item: Outbound, target: Path, cancelled: threading.Event) -> None:
    temp = _temp_name(target)
    try:
        try:
            _copy_verified(item, temp, cancelled)
            _publish(temp, target, item)
        finally:
            temp.unlink(missing_ok=True)
    except _Cancelled:
        return
    except OSError as exc:
        raise _unwritable(target.parent, exc) from exc


def _copy_verified(item: Outbound, temp: Path, cancelled: threading.Event) -> None:
    try:
        source = item.blob_path.open("rb")
    except FileNotFoundError as exc:
        raise _missing(item) from exc
    with source, create_exclusive(temp) as sink:
        digest = hashlib.sha256()
        size = 0
        while chunk := source.read(_CHUNK):
            if cancelled.is_set():
                raise _Cancelled
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
        if digest.hexdigest() != item.blob_sha256 or size != item.size:
            raise _corrupted(item, size, digest.hexdigest())
        sink.flush()
        os.fsync(sink.fileno())
    if cancelled.is_set():
        raise _Cancelled


def _copy_small(item: Outbound, temp: Path) -> None:
    """Copy a small blob in one piece: one read (none if the item carries it), one write.

    Not interruptible: it takes a fraction of a millisecond.
    """
    if item.content is not None:
        data = item.content
    else:
        try:
            data = read_small(item.blob_path, item.size)
        except FileNotFoundError as exc:
            raise _missing(item) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != item.blob_sha256 or len(data) != item.size:
        raise _corrupted(item, len(data), digest)
    write_new(temp, data)


def _missing(item: Outbound) -> PermanentDeliveryError:
    return PermanentDeliveryError(
        f"blob {item.blob_sha256} is missing from the blob store; restore it and replay the message"
    )


def _corrupted(item: Outbound, size: int, sha256: str) -> PermanentDeliveryError:
    return PermanentDeliveryError(
        f"blob {item.blob_sha256} is corrupted (read {size} bytes with SHA-256 "
        f"{sha256}); restore it from backup and replay the message"
    )


def _publish(temp: Path, target: Path, item: Outbound) -> None:
    publish(temp, target, size=item.size, sha256=item.blob_sha256)
