"""Group fsync of a folder: threads publishing into one folder share its fsyncs."""

from __future__ import annotations

import threading
from collections.abc import Callable

from gateway.foldersync import FolderSync

WAIT = 5.0


class ControlledFsync:
    """An fsync that records when each call begins and ends and blocks until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[str] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.count = 0

    def __call__(self, folder: str) -> None:
        with self.lock:
            self.count += 1
            number = self.count
            self.log.append(f"fsync {number} begins")
        self.started.release()
        assert self.release.acquire(timeout=WAIT)
        with self.lock:
            self.log.append(f"fsync {number} ends")

    def note(self, event: str) -> None:
        with self.lock:
            self.log.append(event)


def in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def waiting_in_sync(sync: FolderSync, folder: str, count: int) -> None:
    """Wait until ``count`` callers are inside ``sync`` for ``folder``."""
    for _ in range(int(WAIT / 0.001)):
        state = sync._folders.get(folder)
        if state is not None and state.users >= count:
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"{count} callers never arrived")


def test_callers_arriving_during_an_fsync_share_the_next_one() -> None:
    """Three callers, one fsync running when two arrive: two fsyncs in all, not three."""
    fsync = ControlledFsync()
    sync = FolderSync(fsync)
    first = in_thread(lambda: sync.sync("/folder"))
    assert fsync.started.acquire(timeout=WAIT)
    later = [in_thread(lambda: sync.sync("/folder")) for _ in range(2)]
    waiting_in_sync(sync, "/folder", 3)

    fsync.release.release()  # the first fsync ends; one of the later callers runs the next
    assert fsync.started.acquire(timeout=WAIT)
    fsync.release.release()
    for thread in (first, *later):
        thread.join(WAIT)

    assert fsync.count == 2
    assert not any(thread.is_alive() for thread in (first, *later))


def test_nobody_returns_on_an_fsync_that_began_before_their_call() -> None:
    """A caller arriving while an fsync runs waits for one that begins after its call."""
    fsync = ControlledFsync()
    sync = FolderSync(fsync)
    in_thread(lambda: sync.sync("/folder"))
    assert fsync.started.acquire(timeout=WAIT)

    def late() -> None:
        fsync.note("late caller enters")
        sync.sync("/folder")
        fsync.note("late caller returns")

    late_thread = in_thread(late)
    waiting_in_sync(sync, "/folder", 2)
    fsync.release.release()
    assert fsync.started.acquire(timeout=WAIT)
    fsync.release.release()
    late_thread.join(WAIT)

    assert fsync.log == [
        "fsync 1 begins",
        "late caller enters",
        "fsync 1 ends",
        "fsync 2 begins",
        "fsync 2 ends",
        "late caller returns",
    ]


def test_a_lone_caller_runs_its_own_fsync() -> None:
    """Without company, a call is one fsync of the folder, run before it returns."""
    folders: list[str] = []
    sync = FolderSync(folders.append)

    sync.sync("/a")
    sync.sync("/b")

    assert folders == ["/a", "/b"]


def test_different_folders_are_not_shared() -> None:
    """An fsync of one folder never counts for another."""
    fsync = ControlledFsync()
    sync = FolderSync(fsync)
    first = in_thread(lambda: sync.sync("/a"))
    assert fsync.started.acquire(timeout=WAIT)
    other = in_thread(lambda: sync.sync("/b"))

    assert fsync.started.acquire(timeout=WAIT)  # /b's fsync runs beside /a's
    fsync.release.release()
    fsync.release.release()
    first.join(WAIT)
    other.join(WAIT)

    assert fsync.count == 2


def test_a_failed_fsync_fails_its_caller_and_a_waiter_tries_again() -> None:
    """The error reaches the thread that ran the fsync; a waiter it would have covered retries."""
    calls: list[str] = []
    entered = threading.Event()
    proceed = threading.Event()

    def failing_once(folder: str) -> None:
        calls.append(folder)
        if len(calls) == 1:
            entered.set()
            assert proceed.wait(WAIT)
            raise OSError(5, "Input/output error")

    sync = FolderSync(failing_once)
    errors: list[OSError] = []

    def first() -> None:
        try:
            sync.sync("/folder")
        except OSError as exc:
            errors.append(exc)

    failing = in_thread(first)
    assert entered.wait(WAIT)
    waiter = in_thread(lambda: sync.sync("/folder"))
    waiting_in_sync(sync, "/folder", 2)
    proceed.set()
    failing.join(WAIT)
    waiter.join(WAIT)

    assert [e.errno for e in errors] == [5]
    assert calls == ["/folder", "/folder"]
    assert not waiter.is_alive()


def test_idle_folders_are_forgotten() -> None:
    """The state of a folder nobody is syncing is dropped (the blob store has many)."""
    sync = FolderSync(lambda folder: None)

    sync.sync("/a")

    assert sync._folders == {}


def test_many_concurrent_callers_all_return_after_a_covering_fsync() -> None:
    """Under contention every caller returns, and an fsync began after each one's call."""
    lock = threading.Lock()
    began: list[int] = []
    clock = iter(range(1_000_000))

    def fsync(folder: str) -> None:
        with lock:
            began.append(next(clock))
        threading.Event().wait(0.002)

    sync = FolderSync(fsync)
    checks: list[bool] = []
    callers = 16

    def caller() -> None:
        with lock:
            entered = next(clock)
        sync.sync("/folder")
        with lock:
            checks.append(any(start > entered for start in began))

    threads = [in_thread(caller) for _ in range(callers)]
    for thread in threads:
        thread.join(WAIT)

    assert checks == [True] * callers
    assert len(began) < callers
