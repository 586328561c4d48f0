"""The cross-process write lock of a SQLite journal: ``<journal>.lock``, held per write transaction.

Several processes writing one SQLite file (``serve --processes N``, or ``send``
beside a running ``serve``) collide on SQLite's own write lock. SQLite resolves
that with its busy handler, which sleeps in growing steps (1, 2, 5, 10 … 100 ms)
and polls: a writer that just missed the lock sleeps on long after it was freed,
which under load wastes most of what a second process gains. An exclusive
``flock`` on a file next to the database, taken around every write transaction,
queues the writers in the kernel instead: a waiting writer wakes the moment the
other one commits. SQLite's lock stays underneath as the guarantee (and the busy
handler for writers that do not take this lock, e.g. the ``sqlite3`` shell).

The lock belongs to one open file description: every journal opens the file
itself (never inherit it across ``fork``, or two processes would share one
lock). Where ``fcntl`` is missing the lock is a no-op and SQLite's busy handler
does the waiting.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(database: Path) -> Path:
    """The lock file of the SQLite database at ``database``: ``<database>.lock``."""
    return database.with_name(database.name + ".lock")


class WriteLock:
    """An exclusive advisory lock on ``path`` for the duration of a ``with`` block.

    Used from one thread only (the journal's writer thread): it is not reentrant
    and guards nothing between threads of one process.
    """

    def __init__(self, path: Path) -> None:
        """Open (create) the lock file; the lock is not taken yet."""
        self.path = path
        # O_CLOEXEC (Python's default): a child process never shares this description.
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> WriteLock:
        if self._fd is not None and fcntl is not None:
            # Blocks (without the GIL) until the other process's transaction ends.
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (releasing the lock if held)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
