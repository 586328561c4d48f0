"""One SQLite journal written by several processes: the cross-process write lock and claims.

The other processes are real: ``python -c`` subprocesses on the same file.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.journal.store import Journal
from tests.integration.test_journal import new_message

ROOT = Path(__file__).resolve().parent.parent.parent

#: Holds ``<journal>.lock`` as a journal's writer does during a transaction, until stdin ends.
HOLD_LOCK = """
import sys
from pathlib import Path
from gateway.journal.write_lock import WriteLock
lock = WriteLock(Path(sys.argv[1]))
with lock:
    print("held", flush=True)
    sys.stdin.read()
"""

#: Once told to start (a line on stdin), claims one delivery at a time until none is
#: due; prints the claims' message ids.
CLAIM_ALL = """
import asyncio, json, sys
from datetime import timedelta
from gateway.journal.store import Journal

async def main():
    journal = Journal.from_url(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = []
    try:
        while claims := await journal.claim(sys.argv[2], limit=1, lease=timedelta(minutes=5)):
            claimed += [c.message_id for c in claims]
    finally:
        await journal.close()
    print(json.dumps(claimed))

asyncio.run(main())
"""


def python(code: str, *args: str, **popen: object) -> subprocess.Popen[str]:
    """Run ``code`` in a fresh interpreter with the repository importable."""
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", code, *args], cwd=ROOT, text=True, **popen
    )


@pytest.fixture
async def sqlite_journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """A migrated SQLite journal in the test's folder."""
    journal = Journal.from_url(f"sqlite:///{tmp_path / 'journal.db'}")
    await journal.upgrade()
    yield journal
    await journal.close()


async def test_a_write_waits_while_another_process_holds_the_journal_write_lock(
    sqlite_journal: Journal, tmp_path: Path
) -> None:
    """A write transaction starts only after the other process's write lock is released."""
    holder = python(
        HOLD_LOCK,
        str(tmp_path / "journal.db.lock"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        write = asyncio.create_task(sqlite_journal.accept(new_message(), ["dms"]))
        await asyncio.sleep(1.0)
        waited = not write.done()
        holder.stdin.close()
        accepted = await asyncio.wait_for(write, timeout=10)
    finally:
        holder.kill()
        holder.wait(timeout=10)
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()

    assert waited, "the write did not wait for the lock another process held"
    assert (await sqlite_journal.get_message(accepted.message_id)).id == accepted.message_id


async def test_two_processes_claiming_one_journal_never_claim_the_same_delivery(
    sqlite_journal: Journal, tmp_path: Path
) -> None:
    """Every due delivery goes to exactly one of two processes claiming at the same time."""
    accepted = [
        await sqlite_journal.accept(new_message(prozess_id=str(uuid.uuid4())), ["dms"])
        for _ in range(300)
    ]
    expected = {a.message_id for a in accepted}  # one delivery each
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    claimers = [
        python(CLAIM_ALL, url, f"p{n}", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for n in (1, 2)
    ]
    for claimer in claimers:  # both started up before either claims
        assert claimer.stdout is not None
        assert await asyncio.to_thread(claimer.stdout.readline) == "ready\n"
    outputs = await asyncio.gather(
        *(asyncio.to_thread(c.communicate, "go\n", timeout=120) for c in claimers)
    )

    claimed = [json.loads(out) for out, _ in outputs]
    assert [c.returncode for c in claimers] == [0, 0]
    assert all(claimed), "one process claimed nothing: the two did not run side by side"
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(expected)
