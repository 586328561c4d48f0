"""Where the runtime's blocking work runs.

File I/O (writes with fsync, renames) mostly waits on the disk and goes to the
event loop's default executor (many threads; see ``app.new_event_loop``).
CPU-bound work (parsing, XSD validation, container hashing) goes to one pool
sized to the cores: more threads would not run it faster, and every thread that
validates compiles its own copy of each schema (an lxml schema must not
validate in two threads at once), which costs a fraction of a second each.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: How much of a file ``file_chunks`` reads at a time.
FILE_CHUNK = 1024 * 1024

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _cpu_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="cpu-bound"
            )
        return _pool


async def run_cpu_bound(function: Callable[..., T], *args: object) -> T:
    """Run ``function(*args)`` on the process's CPU-bound pool and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_cpu_pool(), function, *args)


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file's bytes in 1 MiB chunks, each read in the default executor.

    The file is opened (in a thread) when the first chunk is asked for and closed
    when the iteration ends or is abandoned.
    """
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, FILE_CHUNK):
            yield chunk
    finally:
        handle.close()
