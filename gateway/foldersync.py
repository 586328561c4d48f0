"""Group fsync of a folder: concurrent writers into one folder share its fsyncs.

A new name (a rename, a link) is durable once its folder is fsync'd. When many
threads publish into the same folder at once (deliveries into one transfer
folder), each fsyncing the folder itself makes the disk flush once per file,
although one fsync that starts after all their renames covers them all.

``FolderSync.sync(folder)`` is called after the caller's rename and returns only
once an fsync of that folder that *started after the call* has completed. Only
one fsync per folder runs at a time; callers arriving while it runs wait and then
share the next one (one of them runs it for all). A failed fsync raises in the
thread that ran it; the callers it would have covered go on waiting, and one of
them tries again.

The waits are blocking: this is for code that already runs in a worker thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gateway.durable import fsync_dir


@dataclass
class _Folder:
    """The fsync state of one folder (guarded by ``FolderSync._lock``)."""

    changed: threading.Condition
    #: Tickets handed out so far: each call takes the next one.
    issued: int = 0
    #: Every ticket up to this one is covered by a completed fsync.
    synced: int = 0
    running: bool = False
    #: Callers inside ``sync`` for this folder; the state is dropped at zero.
    users: int = 0


class FolderSync:
    """Shares fsyncs of the same folder between threads (see the module docstring)."""

    def __init__(self, fsync: Callable[[str], None] = fsync_dir) -> None:
        """A group fsync over ``fsync`` (``durable.fsync_dir``; tests pass their own)."""
        self._fsync = fsync
        self._lock = threading.Lock()
        self._folders: dict[str, _Folder] = {}

    def sync(self, folder: str | os.PathLike[str]) -> None:
        """Return once an fsync of ``folder`` that began after this call has completed.

        Call it after the rename or link that must become durable.

        Raises:
            OSError: the fsync this thread ran failed (nothing is known to be durable).
        """
        key = os.fspath(folder)
        with self._lock:
            state = self._folders.get(key)
            if state is None:
                state = self._folders[key] = _Folder(threading.Condition(self._lock))
            state.users += 1
            state.issued += 1
            ticket = state.issued
            try:
                while state.synced < ticket:
                    if not state.running:
                        break
                    state.changed.wait()
                else:
                    self._leave(key, state)
                    return  # somebody else's fsync, begun after our ticket, covered us
                state.running = True
                # Every ticket handed out so far belongs to a rename done before now.
                covers = state.issued
            except BaseException:
                self._leave(key, state)
                raise
        try:
            self._fsync(key)
        except BaseException:
            with self._lock:
                state.running = False
                state.changed.notify_all()
                self._leave(key, state)
            raise
        with self._lock:
            state.running = False
            state.synced = max(state.synced, covers)
            state.changed.notify_all()
            self._leave(key, state)

    def _leave(self, key: str, state: _Folder) -> None:
        """One caller is done with ``key`` (holding the lock); forget idle folders."""
        state.users -= 1
        if state.users == 0 and not state.running:
            del self._folders[key]


#: The process's group fsync, shared by the blob store and the transfer folders.
shared = FolderSync()
