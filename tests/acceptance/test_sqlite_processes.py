"""``serve --processes 2`` on the embedded SQLite journal: exactly-once survives ``kill -9``.

One supervisor runs two gateway processes on one listener, one SQLite journal
and one blob folder; the ``http`` destination is the counting, idempotent
receiver of ``postgres_support``. A client sends 300 distinct messages, at most
16 at a time. When half were acknowledged, the process that has a delivery in
flight at the receiver is ``kill -9``ed: the supervisor must stop the other and
exit 1. The test then restarts ``serve`` like a service manager would; the
client resends whatever the stop cut off (same ``Idempotency-Key``) until it is
acknowledged. The scenario runs once per module; each test checks one promise
against its record. The tests after it stop a supervisor gracefully and check
that drop folders are watched once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.journal import AttemptView, DeliveryState, MessageState, MessageView
from gateway.journal.store import Journal
from tests.acceptance.postgres_support import (
    PEER_TOKEN,
    PEER_TOKEN_ENV,
    Client,
    CountingReceiver,
    all_messages,
    gateway_config,
    serve_receiver,
    wait_for,
)
from tests.acceptance.processes import GatewayProcess, environment, free_port, wait_until
from tests.intake_support import bare_message

pytestmark = pytest.mark.slow

MESSAGES = 300
KILL_AFTER = MESSAGES // 2
CONCURRENCY = 8
#: Long enough for a live process on a loaded machine to renew in time, short enough
#: that the killed process's deliveries are due again soon after the restart.
LEASE_SECONDS = 5.0


def sqlite_gateway(home: Path, receiver_url: str, **config: object) -> GatewayProcess:
    """A gateway on ``home/data/journal.db`` delivering to the receiver, logging at INFO."""
    port = free_port()
    gateway = GatewayProcess(
        home=home,
        port=port,
        env=environment(**{PEER_TOKEN_ENV: PEER_TOKEN}),
        log_level="INFO",
    )
    gateway.write_config(
        gateway_config(
            port=port,
            journal_url=journal_url(home),
            blobs=home / "data" / "blobs",
            receiver_url=receiver_url,
            concurrency=CONCURRENCY,
            lease_seconds=LEASE_SECONDS,
            **config,  # type: ignore[arg-type]
        )
    )
    return gateway


def journal_url(home: Path) -> str:
    """The SQLite journal of the gateway in ``home``."""
    return f"sqlite:///{home / 'data' / 'journal.db'}"


def worker_name(pid: int) -> str:
    """The worker id a gateway process writes into leases and attempts (node@host:pid)."""
    return f"kommune-b@{socket.gethostname()}:{pid}"


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def whole_log(gateway: GatewayProcess) -> str:
    """The whole log of the latest start (``GatewayProcess.log`` is only its tail)."""
    return gateway.logs[-1].read_text(errors="replace")


def two_children(gateway: GatewayProcess) -> list[int]:
    """The two gateway processes of a supervisor, once both are there."""
    wait_until(lambda: len(gateway.children()) == 2, timeout=30, what="two gateway processes")
    return gateway.children()


async def held_by(journal: Journal, worker: str, receiver: CountingReceiver) -> set[str]:
    """Messages whose open attempt by ``worker`` waits at the receiver right now."""
    views = await journal.list_messages(state=MessageState.ACCEPTED, limit=MESSAGES)
    open_attempts = {
        view.id
        for view in views
        for delivery in view.deliveries
        for attempt in delivery.history
        if attempt.worker == worker and attempt.finished_at is None
    }
    return open_attempts & receiver.held


# --------------------------------------------------------------------------- the scenario


@dataclass(frozen=True)
class Record:
    """What the scenario left behind, for the tests to check."""

    client: Client
    received: Counter[str]
    messages: dict[str, MessageView]
    first_workers: frozenset[str]
    victim: str
    supervisor_exit: int | None
    first_log: str
    orphans: list[int]

    def acknowledged_ids(self) -> set[str]:
        """Message ids the gateway answered with."""
        return self.client.acknowledged_ids()

    def attempts(self, outcome: str | None) -> list[tuple[str, AttemptView]]:
        """(message id, attempt) for every attempt that ended with ``outcome`` (None: open)."""
        return [
            (view.id, attempt)
            for view in self.messages.values()
            for delivery in view.deliveries
            for attempt in delivery.history
            if attempt.outcome == outcome
        ]


@dataclass
class Crash:
    """What ``kill_one_and_restart`` saw."""

    victim: str = ""
    first_workers: frozenset[str] = frozenset()
    supervisor_exit: int | None = None
    first_log: str = ""
    orphans: tuple[int, ...] = ()


async def kill_one_and_restart(
    gateway: GatewayProcess, client: Client, receiver: CountingReceiver, crash: Crash
) -> None:
    """Midway, ``kill -9`` a process with a delivery at the receiver; restart after the stop."""
    children = await asyncio.to_thread(two_children, gateway)
    crash.first_workers = frozenset(worker_name(pid) for pid in children)
    await wait_for(
        lambda: len(client.acknowledged) >= KILL_AFTER, timeout=120, what=f"{KILL_AFTER} 202s"
    )
    journal = Journal.from_url(journal_url(gateway.home))
    receiver.hold()
    try:
        victim: list[int] = []

        async def one_holds_a_delivery() -> bool:
            for pid in children:
                if await held_by(journal, worker_name(pid), receiver):
                    victim.append(pid)
                    return True
            return False

        await wait_for(one_holds_a_delivery, timeout=30, interval=0.1, what="a delivery in flight")
        os.kill(victim[0], 9)
        crash.victim = worker_name(victim[0])
    finally:
        receiver.release()
        await journal.close()
    assert gateway.process is not None
    crash.supervisor_exit = await asyncio.to_thread(gateway.process.wait, 90)
    crash.first_log = whole_log(gateway)
    crash.orphans = tuple(pid for pid in children if alive(pid))
    await asyncio.to_thread(gateway.start)


async def run_scenario(home: Path) -> Record:
    """Two processes, 300 messages, one ``kill -9`` and a restart; wait until all delivered."""
    bodies = [bare_message(prozess_id=str(uuid.uuid4())) for _ in range(MESSAGES)]
    async with serve_receiver() as receiver:
        gateway = sqlite_gateway(home, receiver.url, processes=2)
        crash = Crash()
        try:
            await asyncio.to_thread(gateway.start)
            # Resends go to the same listener; they wait out the stop and the restart.
            client = Client(targets=[gateway.url], tries=240, pause=0.25)
            await asyncio.gather(
                client.send(bodies), kill_one_and_restart(gateway, client, receiver, crash)
            )
            await wait_for(
                lambda: client.acknowledged_ids() <= receiver.distinct,
                timeout=90,
                what="every acknowledged message at the receiver",
            )
            journal = Journal.from_url(journal_url(home))
            try:

                async def all_recorded() -> bool:
                    counts = await journal.counts()
                    return counts.get(DeliveryState.DELIVERED, 0) >= len(client.acknowledged)

                await wait_for(all_recorded, timeout=30, interval=0.2, what="deliveries recorded")
            finally:
                await journal.close()
            assert await asyncio.to_thread(gateway.stop) == 0, gateway.log()
        finally:
            gateway.kill()
    messages = {view.id: view for view in await all_messages(journal_url(home))}
    print(
        f"\n{MESSAGES} messages over 2 processes on SQLite: {len(client.acknowledged)} "
        f"acknowledged, {client.resent} resends, {len(client.refused)} refused; receiver: "
        f"{len(receiver.distinct)} distinct, redelivered {receiver.duplicates}"
    )
    return Record(
        client=client,
        received=Counter(receiver.keys),
        messages=messages,
        first_workers=crash.first_workers,
        victim=crash.victim,
        supervisor_exit=crash.supervisor_exit,
        first_log=crash.first_log,
        orphans=list(crash.orphans),
    )


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> Record:
    """The scenario, run once for this module's tests."""
    return asyncio.run(run_scenario(tmp_path_factory.mktemp("sqlite-processes")))


# --------------------------------------------------------------------------- the promises


def test_both_processes_deliver_from_the_one_journal(record: Record) -> None:
    """Before the kill, each of the two processes made deliveries."""
    workers = {attempt.worker for _, attempt in record.attempts("delivered")}

    assert record.first_workers <= workers


def test_a_killed_process_makes_the_supervisor_stop_the_other_and_exit_1(record: Record) -> None:
    """``kill -9`` of one process: the supervisor says so, stops the other and exits 1."""
    assert record.supervisor_exit == 1
    assert '"event": "gateway_process_died"' in record.first_log
    assert "killed by SIGKILL" in record.first_log
    assert record.orphans == []


def test_the_processes_log_whole_json_lines_into_the_shared_stderr(record: Record) -> None:
    """Lines the supervisor and both processes wrote at once are not interleaved."""
    lines = record.first_log.splitlines()
    broken = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            broken.append(line)

    assert len(lines) > KILL_AFTER  # an accept is one line, and half came before the kill
    assert not broken, broken[:3]


def test_every_acknowledged_message_reaches_the_receiver(record: Record) -> None:
    """A 202 is a promise the restarted gateway keeps, even if the process that gave it died."""
    missing = record.acknowledged_ids() - set(record.received)

    assert not missing, f"{len(missing)} acknowledged message(s) never reached the receiver"


def test_every_message_is_journaled_once_although_clients_resent_it(record: Record) -> None:
    """Each submission is one message, also when its POST was resent after the restart."""
    assert not record.client.refused
    assert len(record.client.acknowledged) == MESSAGES
    assert len(record.acknowledged_ids()) == MESSAGES
    assert set(record.messages) == record.acknowledged_ids()


def test_every_delivery_ends_delivered_by_exactly_one_successful_attempt(record: Record) -> None:
    """The journal shows each delivery delivered, and only one attempt of it succeeded."""
    wrong = {
        view.id: [(d.state, [a.outcome for a in d.history]) for d in view.deliveries]
        for view in record.messages.values()
        if view.state is not MessageState.DELIVERED
        or [d.state for d in view.deliveries] != [DeliveryState.DELIVERED]
        or [a.outcome for a in view.deliveries[0].history].count("delivered") != 1
    }

    assert not wrong
    assert not record.attempts(None), "an attempt was left open"


def test_only_deliveries_the_killed_process_had_in_flight_are_redelivered(
    record: Record,
) -> None:
    """A key the receiver saw twice belongs to an attempt of the killed process that expired."""
    expired = {
        m for m, attempt in record.attempts("lease_expired") if attempt.worker == record.victim
    }
    redelivered = {key: n for key, n in record.received.items() if n > 1}

    assert redelivered, "the kill cut no delivery at the receiver: nothing was redelivered"
    # At most what the victim held leased: its running attempts plus the ones claimed
    # ahead on SQLite (half as many again). A finished attempt frees its slot before
    # its outcome is committed, so a claimed-ahead one may reach the receiver too.
    assert len(redelivered) <= CONCURRENCY + CONCURRENCY // 2
    assert set(redelivered.values()) == {2}
    assert set(redelivered) <= expired
    assert {attempt.worker for _, attempt in record.attempts("lease_expired")} == {record.victim}


# --------------------------------------------------------------------------- stopping


async def test_sigterm_to_the_supervisor_lets_both_processes_finish_their_deliveries(
    tmp_path: Path,
) -> None:
    """SIGTERM: the processes stop only after the deliveries in flight ended, and exit 0."""
    async with serve_receiver() as receiver:
        # Two processes from the command line, although the file says one.
        gateway = sqlite_gateway(tmp_path, receiver.url)
        gateway.serve_args = ("--processes", "2")
        try:
            await asyncio.to_thread(gateway.start)
            children = await asyncio.to_thread(two_children, gateway)
            receiver.hold()
            client = Client(targets=[gateway.url])
            await client.send([bare_message(prozess_id=str(uuid.uuid4())) for _ in range(40)])
            await wait_for(lambda: len(receiver.held) >= 4, timeout=30, what="held deliveries")
            in_flight = set(receiver.held)
            assert gateway.process is not None
            gateway.process.terminate()
            await asyncio.sleep(1.5)
            still_running = gateway.process.poll() is None
            receiver.release()
            exit_code = await asyncio.to_thread(gateway.process.wait, 90)
        finally:
            receiver.release()
            gateway.kill()
    views = {view.id: view for view in await all_messages(journal_url(tmp_path))}

    assert still_running, "the supervisor did not wait for the deliveries in flight"
    assert exit_code == 0, gateway.log()
    assert not [pid for pid in children if alive(pid)]
    assert all(views[m].state is MessageState.DELIVERED for m in in_flight)
    attempts = [a for v in views.values() for d in v.deliveries for a in d.history]
    assert {a.outcome for a in attempts} == {"delivered"}, "an attempt was cut or left open"


# --------------------------------------------------------------------------- drop folders


async def test_a_drop_folder_is_watched_by_one_of_the_processes(tmp_path: Path) -> None:
    """With two processes, one watches each drop folder and every file is taken once."""
    drop_home = tmp_path
    drop = drop_home / "drop"
    drop.mkdir()
    extra = f"""
[[dropfolders]]
directory = "{drop}"
partner = "kommune-a"
poll_interval_seconds = 0.1
settle_seconds = 0
"""
    files = 30
    async with serve_receiver() as receiver:
        gateway = sqlite_gateway(drop_home, receiver.url, processes=2, extra=extra)
        try:
            await asyncio.to_thread(gateway.start)
            await asyncio.to_thread(two_children, gateway)
            for number in range(files):
                (drop / f"m{number}.xml").write_bytes(bare_message(prozess_id=str(uuid.uuid4())))
            await wait_for(
                lambda: len(list((drop / "processed").glob("*.xml"))) == files,
                timeout=60,
                what="every dropped file processed",
            )
            assert await asyncio.to_thread(gateway.stop) == 0, gateway.log()
        finally:
            gateway.kill()
    views = await all_messages(journal_url(drop_home))

    assert whole_log(gateway).count('"event": "dropfolder_watching"') == 1
    assert sorted(p.name for p in (drop / "processed").iterdir()) == sorted(
        f"m{n}.xml" for n in range(files)
    )
    assert not (drop / "failed").exists() or not any((drop / "failed").iterdir())
    assert len(views) == files


async def test_the_processes_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """``kill -9`` of the supervisor leaves no gateway process serving on."""
    async with serve_receiver() as receiver:
        gateway = sqlite_gateway(tmp_path, receiver.url, processes=2)
        children: list[int] = []
        try:
            await asyncio.to_thread(gateway.start)
            children = await asyncio.to_thread(two_children, gateway)
            await asyncio.to_thread(gateway.kill)
            await asyncio.to_thread(
                wait_until,
                lambda: not any(alive(pid) for pid in children),
                timeout=60,
                what="the gateway processes to exit",
            )
        finally:
            gateway.kill()
            for pid in children:
                if alive(pid):
                    os.kill(pid, 9)


async def test_ctrl_c_to_the_process_group_stops_everything_cleanly(tmp_path: Path) -> None:
    """SIGINT to the whole group (Ctrl-C) reaches every process at once: a clean stop, exit 0."""
    async with serve_receiver() as receiver:
        gateway = sqlite_gateway(tmp_path, receiver.url, processes=2)
        gateway.own_group = True
        try:
            await asyncio.to_thread(gateway.start)
            children = await asyncio.to_thread(two_children, gateway)
            await asyncio.to_thread(
                wait_until,
                lambda: whole_log(gateway).count('"event": "worker_started"') == 2,
                timeout=30,
                what="both processes serving",
            )
            assert gateway.process is not None
            os.killpg(gateway.process.pid, signal.SIGINT)
            exit_code = await asyncio.to_thread(gateway.process.wait, 90)
        finally:
            gateway.kill()
    log = whole_log(gateway)

    assert exit_code == 0, log
    assert "gateway_process_died" not in log
    assert log.count('"event": "gateway_stopping"') == 2
    assert not [pid for pid in children if alive(pid)]


async def test_sigterm_right_after_the_start_is_a_clean_stop(tmp_path: Path) -> None:
    """A stop while the processes are still starting ends them all, and the supervisor exits 0."""
    async with serve_receiver() as receiver:
        gateway = sqlite_gateway(tmp_path, receiver.url, processes=2)
        try:
            await asyncio.to_thread(gateway.start, wait=False)
            children = await asyncio.to_thread(two_children, gateway)
            assert gateway.process is not None
            gateway.process.terminate()
            exit_code = await asyncio.to_thread(gateway.process.wait, 90)
        finally:
            gateway.kill()

    assert exit_code == 0, whole_log(gateway)
    assert not [pid for pid in children if alive(pid)]
