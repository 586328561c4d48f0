"""``serve --processes N``: one supervisor process and N gateway processes on one listener.

One gateway process is bound by the interpreter lock: its event loop, journal
writer and validation threads take turns on one core. The supervisor runs the
same gateway N times so that N cores work, on any journal (SQLite serialises
the processes' write transactions with ``gateway/journal/write_lock.py``)::

    supervisor ── load + check config, migrate the journal, clean staging (once)
       │         ── bind N listening sockets to [http] host:port (SO_REUSEPORT)
       ├─ fork ─► process 0: gateway.app.serve on socket 0 + the drop-folder watchers
       ├─ fork ─► process 1: gateway.app.serve on socket 1
       └─ …       (each: HTTP API, delivery workers, receipt producer, own worker id)

The kernel spreads incoming connections over the N sockets. The supervisor does
nothing else but wait: SIGTERM or SIGINT is passed on to every process, which
stops gracefully (in-flight deliveries finish), and the supervisor exits 0 when
all did. A process that dies on its own (a crash, ``kill -9``, the OOM killer)
is not restarted: the supervisor stops the others and exits 1 with a
``gateway_process_died`` log line, so a service manager (systemd
``Restart=on-failure``) restarts the whole unit from a clean state. Nothing
accepted is lost that way: whatever the dead process had claimed is delivered
after the restart, once its lease has expired.

Processes are forked from the prepared supervisor (no threads run at that
point), so they start without importing and loading everything again; each
opens its own journal connections, blob staging folder and lock file. Every
process asks the kernel for SIGTERM when the supervisor dies, so a
``kill -9`` of the supervisor leaves no orphan serving on.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any

import structlog

from contracts.config import GatewayConfig
from gateway import app, tls
from gateway.errors import ConfigError

log = structlog.get_logger(__name__)

#: How long the processes get to stop after SIGTERM before they are killed: the HTTP
#: shutdown (30 s) plus the workers' grace for deliveries in flight (30 s), and margin.
STOP_SECONDS = 75.0
#: How often the supervisor looks at its processes when no signal arrives.
POLL_SECONDS = 0.2
_BACKLOG = 128
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


def run(config: GatewayConfig, processes: int) -> int:
    """Run ``processes`` gateway processes until SIGTERM/SIGINT or until one dies.

    Returns:
        The exit code: 0 after a requested stop that every process completed, 1
        when a process died unexpectedly or had to be killed.

    Raises:
        ConfigError: a TLS file is unusable, or the listener cannot be bound.
        JournalError: the journal cannot be opened or migrated.
    """
    if config.http.tls is not None:
        tls.server_context(config.http.tls)  # fail here, once, not in N processes
    asyncio.run(app.prepare_storage(config))
    listeners = bind_listeners(config.http.host, config.http.port, processes)
    supervisor = _Supervisor(config, listeners)
    return supervisor.run()


def bind_listeners(host: str, port: int, count: int) -> list[list[socket.socket]]:
    """``count`` sets of listening sockets on ``host:port``, one set per process.

    Each set holds one socket per address ``host`` resolves to (as aiohttp binds
    them); all carry ``SO_REUSEPORT`` so the kernel balances new connections over
    the sets. Port 0 gets a free port, the same for every set.

    Raises:
        ConfigError: the address cannot be resolved or bound (e.g. already in use).
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"[http] host {host!r} cannot be resolved: {exc.strerror}") from exc
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError(
            "[http] processes above 1 needs SO_REUSEPORT, which this system lacks; "
            "set processes = 1"
        )
    unique = list(dict.fromkeys((family, address) for family, _, _, _, address in addresses))
    sets: list[list[socket.socket]] = []
    try:
        # First without SO_REUSEPORT: that fails while anything listens there, also
        # another supervisor's processes, which would otherwise quietly share the port.
        # It also turns port 0 into the one free port every set then binds.
        unique = [(family, _probe(family, address)) for family, address in unique]
        for _ in range(count):
            sets.append([_listener(family, address) for family, address in unique])
    except OSError as exc:
        for bound in sets:
            for sock in bound:
                sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ([http] host and port): {exc.strerror}"
        ) from exc
    return sets


def _probe(family: socket.AddressFamily, address: tuple[Any, ...]) -> tuple[Any, ...]:
    """``address`` with its port once bound exclusively (port 0: the port the kernel chose)."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind(address)
        return (address[0], probe.getsockname()[1], *address[2:])


def _listener(family: socket.AddressFamily, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Supervisor:
    """Starts the processes, passes stop signals on, and watches for deaths."""

    def __init__(self, config: GatewayConfig, listeners: list[list[socket.socket]]) -> None:
        self._config = config
        self._listeners = listeners
        self._context = multiprocessing.get_context("fork")
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._stop_requested: str | None = None
        self._signals: list[str] = []

    def run(self) -> int:
        """Start every process, then wait; the exit code (see ``supervisor.run``)."""
        if threading.active_count() > 1:
            # Forking while another thread holds a lock would copy the lock held.
            raise RuntimeError("the supervisor must not run threads before it forks")
        for number in _STOP_SIGNALS:
            signal.signal(number, self._on_signal)
        log.info(
            "supervisor_starting",
            node=self._config.node.id,
            processes=len(self._listeners),
            host=self._config.http.host,
            port=self._listeners[0][0].getsockname()[1],
        )
        for index in range(len(self._listeners)):
            if self._signals:
                break
            process = self._context.Process(
                target=_child,
                args=(self._config, self._listeners, index, os.getpid()),
                name=f"gateway-{index}",
            )
            # Held back while forking: the child must not run the supervisor's handlers
            # before it has replaced them; a signal arriving meanwhile waits, then counts.
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            self._processes.append(process)
            for sock in self._listeners[index]:
                sock.close()  # the process holds it now
        return self._watch()

    def _on_signal(self, number: int, _frame: FrameType | None) -> None:
        # Only note it: the handler may interrupt the main loop anywhere, also inside a
        # log call holding the log's lock. The loop acts on it within POLL_SECONDS.
        self._signals.append(signal.Signals(number).name)

    def _handle_signals(self) -> None:
        """Act on the stop signals noted since the last look: pass the first one on."""
        while self._signals:
            name = self._signals.pop(0)
            if self._stop_requested:
                log.info("supervisor_stop_signal_repeated", signal=name)
                continue
            self._stop_requested = name
            log.info("supervisor_stopping", signal=name, processes=len(self._processes))
            self._terminate_all()

    def _terminate_all(self) -> None:
        for process in self._processes:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: a graceful stop

    def _watch(self) -> int:
        """Wait until every process ended; stop them all when one ends on its own."""
        failed = False
        deadline: float | None = None
        seen_ended: set[int] = set()  # indexes of the processes whose end was judged
        while True:
            self._handle_signals()
            # Judge every end not judged yet, also one between the last wait and now.
            for index, process in enumerate(self._processes):
                if process.exitcode is None or index in seen_ended:
                    continue
                seen_ended.add(index)
                if self._stop_requested:
                    continue  # asked to stop: the end is checked below
                log.error(
                    "gateway_process_died",
                    process=process.name,
                    pid=process.pid,
                    exit=_describe_exit(process.exitcode),
                    consequence="stopping the other processes; the supervisor exits 1",
                )
                failed = True
                self._stop_requested = "process_died"
                self._terminate_all()
            running = [p for p in self._processes if p.exitcode is None]
            if not running:
                break
            if self._stop_requested and deadline is None:
                deadline = time.monotonic() + STOP_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                for process in running:
                    log.error(
                        "gateway_process_killed",
                        process=process.name,
                        pid=process.pid,
                        reason=f"not stopped {STOP_SECONDS:.0f} s after SIGTERM",
                    )
                    process.kill()
                failed = True
                deadline = float("inf")  # wait for the kills to land
            multiprocessing.connection.wait([p.sentinel for p in running], timeout=POLL_SECONDS)
            # A Ctrl-C reaches the processes as well: one that stopped on it did not die.
            self._handle_signals()
        for process in self._processes:
            process.join()
            # A process still starting has no handler yet: our SIGTERM simply ends it,
            # which is a clean stop too (it had not taken any work).
            stopped = process.exitcode in (0, -signal.SIGTERM)
            if not stopped and not failed:
                log.error(
                    "gateway_process_failed",
                    process=process.name,
                    exit=_describe_exit(process.exitcode),
                )
                failed = True
        log.info("supervisor_stopped", failed=failed)
        return 1 if failed else 0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _child(
    config: GatewayConfig,
    listeners: list[list[socket.socket]],
    index: int,
    supervisor_pid: int,
) -> None:
    """A forked gateway process: serve on ``listeners[index]`` until told to stop."""
    # The supervisor's handlers were copied by fork (with stop signals blocked): until
    # the gateway installs its own, a stop signal simply ends this process (nothing is
    # in flight yet).
    # A Ctrl-C reaches the supervisor too, which passes it on as SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the fork
    _die_with_parent()
    if os.getppid() != supervisor_pid:
        return  # the supervisor died before the request above was in place
    for number, sockets in enumerate(listeners):
        if number != index:
            for sock in sockets:
                sock.close()  # another process's listener: never hold it open here
    try:
        app.serve(config, sockets=listeners[index], process_index=index)
    except Exception as exc:
        # A clear last line for the log; the supervisor reports the exit code.
        log.error("gateway_process_failed", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)


def _die_with_parent() -> None:
    """Ask the kernel (Linux) for SIGTERM when the supervisor exits, however it exits."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
