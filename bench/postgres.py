"""PostgreSQL: delivery with several ``serve`` processes; claim/complete against procrastinate.

Every part runs on its own fresh databases on the PostgreSQL server named by
``$IKZ_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
a role allowed to create databases), all dropped at the end.

(a) Delivery throughput with 1, 2 and 4 ``serve`` processes on one database.
``N`` distinct small bare 0401 messages are preloaded once through the real
intake path (``Intake.submit`` in this process, 8 concurrent submissions: staged
and fsync'd in the shared blob store, XSD-checked, routed, journaled) into a
template database. For each k a fresh database is cloned from it, and k ``serve``
subprocesses start on it, sharing the blob directory and one filesystem
destination (``[worker] concurrency = 8`` each). A start gate keeps them from
delivering until all k answer ``/v1/health``: the bench holds
``LOCK TABLE deliveries IN EXCLUSIVE MODE`` (plain reads still pass, so health
answers; every claim waits). The clock runs from releasing that lock until the
N-th file is in the transfer folder. Full runs do two rounds (1, 2, 4 processes,
then 4, 2, 1) and pool them (messages over seconds); ``--quick`` does one.
Baseline: the 1-process rate of the same run, so ``ratio`` is the growth with
processes. No target (informational). The note adds the CPU seconds per message
of the serve processes and of the PostgreSQL backends serving that database.

(b) The journal's claim/complete throughput against procrastinate on the same
server, same ``N``, same concurrency, each on a fresh database and warmed up on
it with a small pass first. Procrastinate: ``task.defer_async()`` ``N`` times from
8 concurrent tasks, then ``app.run_worker_async(concurrency=8, wait=False)`` runs
a no-op task until the queue is empty. Journal: ``Journal.accept`` of ``N``
messages with one destination each from 8 concurrent tasks, then a claim loop
shaped like ``gateway/worker.py`` (at most 8 deliveries in flight; each claim
takes up to the free slots, each delivery is ``complete``-d by its own task,
nothing else happens in between) until a claim finds nothing. Both sides run in
this process and connect through psycopg 3 with up to 20 pooled connections.
Value: journal jobs/s over enqueue + execution; baseline: procrastinate's;
target 1.0. Full runs alternate the order over 3 rounds; rates are pooled over
the rounds; each phase's rate and the CPU per job of this process (the client)
and of the server's backends are in the note.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from bench.serve import CONCURRENCY, ServeProcess, free_port, write_config

ADMIN_URL = os.environ.get(
    "IKZ_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PROCESSES = (1, 2, 4)
#: In-flight jobs on both sides of (b); also the serve processes' worker concurrency in (a).
_T = TypeVar("_T")


def run(quick: bool) -> Iterator[dict[str, Any]]:
    """Run (a) and (b); yield their result lines."""
    _quiet_logs()
    with tempfile.TemporaryDirectory(prefix="ikz-bench-postgres-") as tmp:
        yield from _delivery(Path(tmp), 300 if quick else 3000, rounds=1 if quick else 2)
    yield _claim_complete(
        600 if quick else 5000, rounds=1 if quick else 3, warmup=100 if quick else 200
    )


def _quiet_logs() -> None:
    """Gateway logs go to stderr at WARNING, so stdout carries only the result lines."""
    from gateway import logs

    logs.configure("WARNING")


# --------------------------------------------------------------------------- databases


def _admin(statement: Any) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)


def _url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(ADMIN_URL).set(database=database).render_as_string(hide_password=False)


@contextmanager
def _fresh_database(label: str, *, template: str | None = None) -> Iterator[str]:
    """Create a database (optionally a copy of ``template``), yield its name, drop it."""
    from psycopg import sql

    name = f"ikz_bench_{label}_{uuid.uuid4().hex[:8]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    _admin(create)
    try:
        yield name
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _query(url: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return list(conn.execute(statement.encode()).fetchall())  # bench-owned literal SQL


# --------------------------------------------------------------------------- CPU accounting


def _process_seconds(pid: int) -> float:
    """``utime + stime`` of a process in seconds; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends(url: str) -> list[int]:
    """Process ids of the server's backends connected to the database of ``url``."""
    rows = _query(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()",
    )
    return [int(row[0]) for row in rows]


@dataclass(frozen=True)
class _Cpu:
    """A reading of the machine's busy/total jiffies and some processes' CPU seconds."""

    busy: int
    total: int
    processes: dict[int, float]

    @staticmethod
    def now(pids: Sequence[int]) -> _Cpu:
        """Read ``/proc/stat`` and each pid's ``utime + stime``."""
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
        idle = fields[3] + fields[4]
        return _Cpu(total - idle, total, {pid: _process_seconds(pid) for pid in pids})

    def seconds_until(self, later: _Cpu) -> float:
        """CPU seconds the processes of ``later`` used since this reading.

        A process that appeared in between (a pool opening a connection) counts from
        zero; one that ended in between is missing from ``later`` and not counted.
        """
        return sum(
            seconds - self.processes.get(pid, 0.0) for pid, seconds in later.processes.items()
        )

    def busy_share(self, later: _Cpu) -> float:
        """Share of all CPUs' time that was busy between this reading and ``later``."""
        return (later.busy - self.busy) / max(1, later.total - self.total)


# --------------------------------------------------------------------------- (a) delivery


class _Serve(ServeProcess):
    """One ``serve`` subprocess on the shared database, blobs and transfer folder."""

    def __init__(self, home: Path, *, journal: str, blobs: Path, transfer: Path) -> None:
        port = free_port()
        write_config(home, port=port, journal=journal, blobs=blobs, transfer=transfer)
        super().__init__(home, port=port)


def _delivered(folder: Path) -> int:
    return sum(1 for entry in os.scandir(folder) if not entry.name.startswith("."))


def _delivery(tmp: Path, count: int, *, rounds: int) -> Iterator[dict[str, Any]]:
    """Result lines of part (a): each round runs 1, 2, 4 processes, every other round reversed."""
    blobs = tmp / "blobs"
    runs: dict[int, list[dict[str, Any]]] = {processes: [] for processes in PROCESSES}
    with _fresh_database("preload") as template:
        preload = asyncio.run(_preload(tmp / "preload", _url(template), blobs, count))
        for number in range(rounds):
            order = PROCESSES if number % 2 == 0 else tuple(reversed(PROCESSES))
            for processes in order:
                home = tmp / f"round{number}-{processes}p"
                with _fresh_database(f"deliver{processes}p", template=template) as name:
                    runs[processes].append(
                        asyncio.run(_deliver(home, _url(name), blobs, processes, count))
                    )

    def pooled(processes: int, key: str) -> float:
        return float(sum(run[key] for run in runs[processes]))

    def rate(processes: int) -> float:
        return count * len(runs[processes]) / pooled(processes, "seconds")

    base = rate(1)
    for processes in PROCESSES:
        messages = count * len(runs[processes])
        each = ", ".join(
            f"{count / run['seconds']:.1f} (attempts per process "
            + "/".join(str(n) for n in run["shares"])
            + f", start-up {run['startup']:.1f} s)"
            for run in runs[processes]
        )
        yield {
            "name": f"postgres_delivery_throughput_{processes}p",
            "value": round(rate(processes), 1),
            "unit": "messages/s",
            "baseline": round(base, 1),
            "ratio": round(rate(processes) / base, 3),
            "target": None,
            "messages": count,
            "rounds": len(runs[processes]),
            "note": (
                f"{count} small bare 0401 messages preloaded once through Intake.submit "
                f"(8 concurrent, {count / preload['seconds']:.1f} messages/s into PostgreSQL), "
                f"each run on a fresh copy of that database; {processes} serve process(es), "
                f"worker concurrency {CONCURRENCY} each, shared blob directory and filesystem "
                "destination; clock from releasing the start gate (all processes healthy) to "
                f"the last file; messages/s per round: {each}; attempts "
                f"{int(pooled(processes, 'attempts'))} for {messages} deliveries; CPU per "
                f"message: serve processes {pooled(processes, 'serve_cpu') / messages * 1000:.2f} "
                f"ms, PostgreSQL backends {pooled(processes, 'db_cpu') / messages * 1000:.2f} ms; "
                f"machine busy {statistics.mean(r['busy'] for r in runs[processes]) * 100:.0f} % "
                "of 2 vCPUs (shared machine, other work included); baseline: the 1-process "
                "rate of this run, pooled over the same rounds; informational"
            ),
        }


async def _preload(home: Path, url: str, blobs: Path, count: int) -> dict[str, float]:
    """Journal ``count`` distinct messages through the real intake path; no worker runs."""
    from bench.runtime import _messages
    from gateway.blobs import BlobStore
    from gateway.config import load_config
    from gateway.intake import Intake, Submission
    from gateway.journal.store import Journal

    config = load_config(
        write_config(home, port=free_port(), journal=url, blobs=blobs, transfer=home / "transfer")
    )
    journal = Journal.from_url(config.storage.journal)
    try:
        await journal.upgrade()
        intake = Intake(config, journal, BlobStore(config.storage.blobs))
        submission = Submission(partner=config.partner("beispielstadt"), channel="http")

        async def submit(body: bytes) -> None:
            async def chunks() -> AsyncIterator[bytes]:
                yield body

            accepted = await intake.submit(chunks(), submission)
            if accepted.duplicate:
                raise RuntimeError("a bench message was taken for a duplicate")

        messages = _messages(count)
        start = time.perf_counter()
        await _concurrently(messages, submit)
        seconds = time.perf_counter() - start
        counts = await journal.counts()
        if counts != {"pending": count}:
            raise RuntimeError(f"preload left {counts}, expected {count} pending")
    finally:
        await journal.close()
    return {"seconds": seconds}


async def _deliver(home: Path, url: str, blobs: Path, processes: int, count: int) -> dict[str, Any]:
    """Start ``processes`` serve processes behind the start gate; time the deliveries."""
    import psycopg

    transfer = home / "transfer"
    transfer.mkdir(parents=True)
    # Not autocommit: the lock lives until the transaction ends, which opens the gate.
    gate = psycopg.connect(url, connect_timeout=5)
    servers: list[_Serve] = []
    try:
        gate.execute(b"LOCK TABLE deliveries IN EXCLUSIVE MODE")
        spawned = time.perf_counter()
        servers = [
            _Serve(home / f"p{i}", journal=url, blobs=blobs, transfer=transfer)
            for i in range(processes)
        ]
        await asyncio.gather(*(server.wait_healthy() for server in servers))
        startup = time.perf_counter() - spawned
        pids = [server.process.pid for server in servers]
        before, before_db = _Cpu.now(pids), _Cpu.now(_backends(url))
        gate.commit()
        start = time.perf_counter()
        deadline = start + 600
        while _delivered(transfer) < count:
            if time.perf_counter() > deadline:
                tails = "\n".join(server.log_tail() for server in servers)
                raise RuntimeError(f"only {_delivered(transfer)} of {count} delivered: {tails}")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - start
        after, after_db = _Cpu.now(pids), _Cpu.now(_backends(url))
    finally:
        gate.close()
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait()
    delivered = _query(url, "SELECT count(*) FROM deliveries WHERE state = 'delivered'")[0][0]
    if delivered != count or _delivered(transfer) != count:
        raise RuntimeError(f"{delivered} deliveries recorded, {_delivered(transfer)} files")
    shares = [
        int(row[0])
        for row in _query(url, "SELECT count(*) FROM attempts GROUP BY worker ORDER BY 1 DESC")
    ]
    return {
        "rate": count / seconds,
        "seconds": seconds,
        "startup": startup,
        "attempts": sum(shares),
        "shares": shares,
        "serve_cpu": before.seconds_until(after),
        "db_cpu": before_db.seconds_until(after_db),
        "busy": before.busy_share(after),
    }


# --------------------------------------------------------------------------- (b) claim/complete


async def _concurrently(items: Sequence[_T], action: Callable[[_T], Awaitable[object]]) -> None:
    """Run ``action`` over ``items`` from ``CONCURRENCY`` tasks, one item at a time each."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await action(queue.pop())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


@dataclass
class _Phases:
    """Wall-clock and CPU seconds (this process's, the server's) of enqueueing and executing."""

    jobs: int = 0
    enqueue: float = 0.0
    execute: float = 0.0
    enqueue_cpu: float = 0.0
    execute_cpu: float = 0.0
    #: CPU seconds of the server's backends for this database, both phases.
    server_cpu: float = 0.0

    def add(self, other: _Phases) -> None:
        """Pool another round into this one."""
        self.jobs += other.jobs
        self.enqueue += other.enqueue
        self.execute += other.execute
        self.enqueue_cpu += other.enqueue_cpu
        self.execute_cpu += other.execute_cpu
        self.server_cpu += other.server_cpu

    @property
    def rate(self) -> float:
        """Jobs per second over both phases."""
        return self.jobs / (self.enqueue + self.execute)

    def describe(self) -> str:
        """Both phases' rates and the client CPU per job."""
        return (
            f"enqueue {self.jobs / self.enqueue:.0f}/s, execute {self.jobs / self.execute:.0f}/s, "
            f"CPU per job: client {(self.enqueue_cpu + self.execute_cpu) / self.jobs * 1000:.2f} "
            f"ms, server backends {self.server_cpu / self.jobs * 1000:.2f} ms"
        )


async def _timed(
    url: str, enqueue: Awaitable[object], execute: Callable[[], Awaitable[object]]
) -> _Phases:
    server = _Cpu.now(_backends(url))
    wall, cpu = time.perf_counter(), time.process_time()
    await enqueue
    wall_1, cpu_1 = time.perf_counter(), time.process_time()
    await execute()
    wall_2, cpu_2 = time.perf_counter(), time.process_time()
    server_cpu = server.seconds_until(_Cpu.now(_backends(url)))
    return _Phases(0, wall_1 - wall, wall_2 - wall_1, cpu_1 - cpu, cpu_2 - cpu_1, server_cpu)


def _new_messages(count: int) -> list[Any]:
    from contracts.journal import NewMessage

    return [
        NewMessage(
            partner_id="beispielstadt",
            channel="http",
            idempotency_key=None,
            blob_sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
            size=2048,
            content_kind="xml",
            file_name=None,
            prozess_id=str(uuid.uuid4()),
            nachrichtentyp="0401",
            message_element="Abgabe.0401",
            xdomea_version="3.1.0",
            absender="060:0815",
            empfaenger="LA:LAB",
        )
        for _ in range(count)
    ]


async def _journal_side(url: str, count: int, warmup: int) -> _Phases:
    """Accept ``count`` messages, then claim and complete every delivery; after a warm-up."""
    from gateway.journal.store import Journal

    journal = Journal.from_url(url)
    try:
        await journal.upgrade()
        for jobs in (warmup, count):
            messages = _new_messages(jobs)
            phases = await _timed(
                url,
                _concurrently(messages, lambda m: journal.accept(m, ["archiv"])),
                lambda: _journal_worker(journal),
            )
        counts = await journal.counts()
        if counts != {"delivered": warmup + count}:
            raise RuntimeError(f"journal ended with {counts}")
    finally:
        await journal.close()
    phases.jobs = count
    return phases


async def _journal_worker(journal: Any) -> None:
    """Claim and complete until a claim finds nothing, like ``gateway/worker.py`` does.

    At most ``CONCURRENCY`` deliveries are in flight; each claim takes up to the
    free slots and each claimed delivery is completed by its own task.
    """
    worker, lease = "bench-worker", timedelta(seconds=60)
    inflight: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []
    slot_free = asyncio.Event()

    def finished(task: asyncio.Task[None]) -> None:
        inflight.discard(task)
        if task.exception() is not None:
            errors.append(task.exception())  # type: ignore[arg-type]
        slot_free.set()

    while not errors:
        while len(inflight) >= CONCURRENCY:
            slot_free.clear()
            await slot_free.wait()
        claims = await journal.claim(worker, limit=CONCURRENCY - len(inflight), lease=lease)
        if not claims:
            break
        for claim in claims:
            task = asyncio.create_task(journal.complete(claim, worker))
            inflight.add(task)
            task.add_done_callback(finished)
    await asyncio.gather(*inflight)
    if errors:
        raise errors[0]


async def _procrastinate_side(url: str, count: int, warmup: int) -> _Phases:
    """Defer ``count`` no-op jobs, then run a worker until the queue is empty; after a warm-up."""
    import procrastinate

    # The journal's engine pools 10 connections plus 10 overflow; give procrastinate the same.
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=url, min_size=10, max_size=20)
    )

    @app.task(name="noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for jobs in (warmup, count):
            phases = await _timed(
                url,
                _concurrently(range(jobs), lambda _: noop.defer_async()),
                lambda: app.run_worker_async(
                    concurrency=CONCURRENCY,
                    wait=False,
                    listen_notify=False,
                    install_signal_handlers=False,
                    delete_jobs="never",
                ),
            )
    succeeded = _query(url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
    if succeeded[0][0] != warmup + count:
        raise RuntimeError(f"procrastinate finished {succeeded[0][0]} of {warmup + count} jobs")
    phases.jobs = count
    return phases


_SIDES: dict[str, Callable[[str, int, int], Coroutine[Any, Any, _Phases]]] = {
    "journal": _journal_side,
    "procrastinate": _procrastinate_side,
}


def _claim_complete(count: int, *, rounds: int, warmup: int) -> dict[str, Any]:
    """Result line of part (b): alternating rounds, each side on a fresh database each time."""
    pooled = {side: _Phases() for side in _SIDES}
    ratios = []
    for number in range(rounds):
        order = list(_SIDES) if number % 2 == 0 else list(reversed(_SIDES))
        this_round: dict[str, _Phases] = {}
        for side in order:
            with _fresh_database(side) as name:
                this_round[side] = asyncio.run(_SIDES[side](_url(name), count, warmup))
            pooled[side].add(this_round[side])
        ratios.append(this_round["journal"].rate / this_round["procrastinate"].rate)
    journal, baseline = pooled["journal"], pooled["procrastinate"]
    return {
        "name": "postgres_claim_complete_throughput",
        "value": round(journal.rate, 1),
        "unit": "jobs/s",
        "baseline": round(baseline.rate, 1),
        "ratio": round(journal.rate / baseline.rate, 3),
        "target": 1.0,
        "jobs": count,
        "rounds": rounds,
        "warmup": warmup,
        "round_ratios": [round(r, 3) for r in ratios],
        "note": (
            f"{count} jobs per round, {rounds} round(s) alternating who goes first, pooled; "
            f"concurrency {CONCURRENCY} on both sides, fresh database and a {warmup}-job warm-up "
            f"per side and round; journal (accept with one destination; claim up to the free "
            f"slots + complete): {journal.describe()}; procrastinate (defer_async; worker "
            f"wait=False, no-op async task): {baseline.describe()}; median round ratio "
            f"{statistics.median(ratios):.3f}"
        ),
    }


if __name__ == "__main__":  # pragma: no cover - run through ``python -m bench postgres``
    for line in run(quick="--quick" in sys.argv):
        print(json.dumps(line), flush=True)
