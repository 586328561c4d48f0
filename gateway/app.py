"""Wiring: one gateway process = HTTP API + delivery workers + drop folders.

``build_app(config)`` returns the aiohttp application whose cleanup contexts own
every resource: the journal (migrated at start), the blob store, the
destinations, the worker task and the drop-folder watchers. ``serve`` runs it
until SIGINT/SIGTERM, then stops intake, lets in-flight deliveries finish within
a grace period, and closes everything. With ``[http.tls]`` it serves HTTPS; an
in-process site does the same with ``ssl_context=tls.server_context(...)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from adapters.dms.destination import build_port
from contracts.config import ArchiveConfig, GatewayConfig, PartnerConfig
from contracts.journal import Accepted, NewMessage
from gateway import retention, tls, xta
from gateway.abgabe import CompletionRunner, Started, check_startable
from gateway.abgabe import start as abgabe_start
from gateway.api import create_api
from gateway.blobs import BlobStore
from gateway.blocking import file_chunks
from gateway.destinations import build_destinations
from gateway.dropfolder import DropFolder
from gateway.intake import Intake, IntakeOutbox, Submission
from gateway.journal.store import Journal
from gateway.receipts import ReceiptProducer
from gateway.worker import Worker

log = structlog.get_logger(__name__)

JOURNAL = web.AppKey("journal", Journal)
INTAKE = web.AppKey("intake", Intake)
WORKER = web.AppKey("worker", Worker)
#: Threads for blocking work (file I/O with fsync, XSD validation, hashing).
BLOCKING_THREADS = 32


def worker_id(config: GatewayConfig) -> str:
    """A worker identity unique per process: node, host and pid."""
    return f"{config.node.id}@{socket.gethostname()}:{os.getpid()}"


async def build_app(
    config: GatewayConfig,
    *,
    workers: bool = True,
    watchers: bool = True,
    prepare: bool = True,
) -> web.Application:
    """The whole gateway as one aiohttp application.

    Args:
        workers: run delivery workers and the receipt producer (``False``: intake only).
        watchers: watch the configured drop folders and archive answer folders; of
            several processes on one configuration exactly one may (two watchers
            would race for each file).
        prepare: migrate the journal and remove staging leftovers first; ``False``
            where a supervisor did that once for all its processes.
    """
    journal = Journal.from_url(config.storage.journal)
    blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
    if prepare:
        await _prepare(journal, blobs)
    worker: Worker | None = None
    producer: ReceiptProducer | None = None
    # This node's own DMS (abgabe start, the completion action); opens nothing yet.
    node_dms = build_port(config.dms) if config.dms is not None else None
    completion = CompletionRunner(
        config,
        journal,
        blobs,
        node_dms,
        poll_seconds=max(config.worker.poll_interval_seconds, 1.0),
    )

    def accepted(message: NewMessage) -> None:
        if worker is not None:
            worker.notify()
        # A 0402 closes an Abgabe; the runner decides whether this one can.
        completion.notify(message)

    def receipts_owed() -> None:
        if producer is not None:
            producer.notify()

    intake = Intake(config, journal, blobs, on_accepted=accepted, on_receipts_owed=receipts_owed)
    destinations = build_destinations(
        config, IntakeOutbox(intake, local_sender(config)), journal=journal, blobs=blobs
    )
    worker = Worker(config, journal, blobs, destinations, worker_id=worker_id(config))
    producer = ReceiptProducer(
        journal,
        blobs,
        intake,
        local_sender(config),
        routable=lambda code, empfaenger: bool(config.routes_for(code, empfaenger)),
        poll_seconds=config.worker.poll_interval_seconds,
    )
    app = create_api(config, journal, blobs, intake=intake, dms=node_dms)
    xta.install(app, config, intake, journal, blobs)
    app[JOURNAL] = journal
    app[INTAKE] = intake
    app[WORKER] = worker

    async def resources(_: web.Application) -> AsyncIterator[None]:
        yield
        for destination in destinations.values():
            await destination.close()
        if node_dms is not None:
            await node_dms.close()
        await journal.close()
        blobs.close()

    app.cleanup_ctx.append(resources)
    if workers:
        app.cleanup_ctx.append(_background(lambda stop: worker.run(stop), "worker"))
        # Receipts are produced where deliveries are made: a process without workers
        # (an intake-only replica) leaves them to the processes that have them.
        app.cleanup_ctx.append(_background(producer.run, "receipts"))
        app.cleanup_ctx.append(_background(completion.run, "abgabe-completion"))
    if workers and watchers and config.retention.purge_after_days is not None:
        # One process of several purges (each purge re-checks in its own transaction,
        # so two would only do the same work twice).
        app.cleanup_ctx.append(
            _background(
                lambda stop: retention.run_periodically(
                    journal,
                    config.retention,
                    own_kennung=config.node.behoerdenkennung,
                    stop=stop,
                ),
                "retention",
            )
        )
    for folder in config.dropfolders if watchers else ():
        watcher = DropFolder(folder, config, intake)
        app.cleanup_ctx.append(_background(watcher.run, f"dropfolder:{folder.directory}"))
    for name, archive in config.archives.items() if watchers else ():
        app.cleanup_ctx.append(_archive_inbox(name, archive, intake, journal))
    return app


def _archive_inbox(
    name: str, archive: ArchiveConfig, intake: Intake, journal: Journal
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Poll an archive's answers for the app's lifetime (the folder opens inside the loop)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        from gateway.aussonderung import ArchiveInbox

        inbox = ArchiveInbox(name, archive, intake, journal)
        async for _ in _background(inbox.run, f"archive:{name}")(app):
            yield

    return context


async def prepare_storage(config: GatewayConfig) -> None:
    """Once per start, before any process serves: migrate the journal, clean staging.

    Raises:
        JournalError: the journal cannot be opened or migrated.
    """
    journal = Journal.from_url(config.storage.journal)
    blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
    try:
        await _prepare(journal, blobs)
    finally:
        await journal.close()
        blobs.close()


async def _prepare(journal: Journal, blobs: BlobStore) -> None:
    await journal.upgrade()
    removed = blobs.clean_staging()
    if removed:
        log.info("staging_cleaned", leftovers=removed)


def _background(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]], name: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that runs ``run(stop)`` as a task for the app's lifetime."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(stop), name=name)
        yield
        stop.set()
        with suppress(asyncio.CancelledError):
            await task

    return context


def serve(
    config: GatewayConfig,
    *,
    sockets: list[socket.socket] | None = None,
    process_index: int | None = None,
) -> None:
    """Run the gateway until SIGINT or SIGTERM (over HTTPS when ``[http.tls]`` is set).

    Args:
        sockets: listening sockets to serve on instead of binding ``[http] host``
            and ``port`` (a process of ``gateway.supervisor``).
        process_index: this process's number under a supervisor, which already
            prepared the storage; only process 0 watches the drop folders.

    Raises:
        ConfigError: a TLS file is missing, unreadable or does not fit.
    """
    supervised = process_index is not None

    async def app() -> web.Application:
        application = await build_app(
            config, watchers=process_index in (None, 0), prepare=not supervised
        )
        if supervised:
            application.on_startup.append(_stop_once)
        return application

    # Built before the loop starts, so a bad certificate stops the start at once.
    ssl_context = tls.server_context(config.http.tls) if config.http.tls is not None else None
    log.info(
        "gateway_starting",
        node=config.node.id,
        host=config.http.host,
        port=sockets[0].getsockname()[1] if sockets else config.http.port,
        tls=ssl_context is not None,
        process_index=process_index,
    )
    web.run_app(
        app(),
        host=None if sockets else config.http.host,
        port=None if sockets else config.http.port,
        sock=sockets,
        ssl_context=ssl_context,
        print=None,
        shutdown_timeout=30,
        access_log=None,  # every request that matters is logged as a gateway event
        loop=new_event_loop(),
    )


async def _stop_once(_: web.Application) -> None:
    """Make only the first SIGTERM/SIGINT stop this process; ignore repeats.

    A supervised process gets the signal twice when a terminal's Ctrl-C (or a
    service manager stopping the whole group) reaches it besides the supervisor's
    forwarded SIGTERM. aiohttp would let the second one abort the graceful
    shutdown half-way, cutting the deliveries it is waiting for.
    """
    loop = asyncio.get_running_loop()
    stopping = False

    def stop(signal_name: str) -> None:
        nonlocal stopping
        if stopping:
            log.info("gateway_stop_signal_repeated", signal=signal_name)
            return
        stopping = True
        log.info("gateway_stopping", signal=signal_name)
        raise web.GracefulExit()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop, number.name)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop a gateway process runs on: uvloop where installed, else asyncio's.

    Its default executor, which takes the blocking work (fsync, XSD validation,
    hashing), gets more threads than asyncio's ``cpu + 4``: most of them wait on
    the disk, not the CPU, and a small pool would queue uploads behind fsyncs.
    """
    try:
        import uvloop
    except ImportError:  # e.g. on Windows
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="blocking"))
    return loop


def local_sender(config: GatewayConfig) -> PartnerConfig:
    """The node itself as sender, for messages its own operator submits (``ikz-gateway send``).

    It is not in ``config.partners``, so no HTTP token can ever authenticate as it.
    """
    return PartnerConfig(
        id=f"local.{config.node.id}",
        behoerdenkennung=config.node.behoerdenkennung,
        token_sha256=hashlib.sha256(os.urandom(32)).hexdigest(),
    )


async def send_file(config: GatewayConfig, path: Path) -> Accepted:
    """Submit a local file into this gateway's journal as the node itself.

    A running ``serve`` process on the same journal picks it up and delivers it.
    """
    journal = Journal.from_url(config.storage.journal)
    blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
    try:
        await journal.upgrade()
        intake = Intake(config, journal, blobs)
        return await intake.submit(
            file_chunks(path),
            Submission(partner=local_sender(config), channel="cli", file_name=path.name),
        )
    finally:
        await journal.close()
        blobs.close()


async def start_abgabe(config: GatewayConfig, akte: str, to: str) -> Started:
    """Start an Abgabe as the node itself from this process (``ikz-gateway abgabe start``).

    A running ``serve`` process on the same journal delivers it and closes it once
    the partner's 0402 arrived.

    Raises:
        AbgabeError: the Abgabe cannot be started; nothing was journaled.
    """
    check_startable(config, to)
    assert config.dms is not None  # check_startable guarantees it
    journal = Journal.from_url(config.storage.journal)
    blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
    port = build_port(config.dms)
    try:
        await journal.upgrade()
        intake = Intake(config, journal, blobs)
        return await abgabe_start(
            config, journal, intake, port, local_sender(config), akte=akte, to=to
        )
    finally:
        await port.close()
        await journal.close()
        blobs.close()
