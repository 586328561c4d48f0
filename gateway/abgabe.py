"""Abgabe between Kommunen, started by this node's operator, and its completion action.

::

    abgabe start --akte ADDRESS --to PARTNER      POST /v1/abgaben {akte, to}
        │ checks: partner known, route for a 0401 to it, [dms] configured
        ▼
    journal: reserve the Abgabe (Akte, partner) ─ an open one is returned as it is
        ▼
    export the Akte from [dms] as a 0401 ─► intake as the node ─► journal: open
        (any failure: the reservation is removed, nothing was journaled)
        ⋮  delivered to the partner; its gateway answers 0403, 0402
    CompletionRunner ── open Abgabe whose process is completed ─► on_completed
        (record | mark-abgegeben: the Abgabevermerk as the Akte's Fachdatum
         [dms] abgabe_field, DmsPort.write_fachdaten) ─► completed
                     └─ partially imported ─► nothing marked ─► partially-imported

Idempotency: one open Abgabe per (Akte address, partner id). Starting the same
Akte to the same partner again while its Abgabe is open (its 0402 has not
arrived) returns that Abgabe. The 0401 is built deterministically from the
reservation (its ProzessID, its creation time as Erstellungszeitpunkt) and
handed in with the Idempotency-Key ``abgabe:<id>``, so a start interrupted by a
crash after intake but before the journal noted it, started again, finds the
0401 it journaled instead of sending a second.

The completion action is idempotent as well: the Abgabevermerk is built from the
journal (ProzessID, the 0402's arrival and id) and written as a set, so doing it
again after a crash between the DMS call and the journal update writes the same
note. It is never done for a partial import.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

from adapters.dms.exporter import export_0401
from contracts.api import AbgabeResponse
from contracts.config import GatewayConfig, PartnerConfig
from contracts.dms import Abgabevermerk, DmsPort
from contracts.journal import NewMessage
from contracts.processes import (
    AbgabeState,
    AbgabeView,
    CompletionState,
    ProcessState,
    ProcessStatus,
)
from contracts.xdomea import Behoerdenkennung, Kontakt
from gateway import processes
from gateway.blobs import BlobStore
from gateway.blocking import file_chunks
from gateway.errors import (
    AbgabeError,
    BuildError,
    DeliveryError,
    GatewayError,
    IntakeRejected,
    JournalUnavailable,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from gateway.intake import Intake, Submission
from gateway.journal.store import Journal
from gateway.rounds import run_rounds
from schemas import catalog

log = structlog.get_logger(__name__)

#: Exit codes of ``abgabe start`` (0: started, or the open Abgabe returned).
EXIT_REFUSED = 1  # intake refused the exported 0401 (e.g. not valid for the partner)
EXIT_CONFIG = 2  # unknown partner, no [dms], no route: fix the configuration or call
EXIT_UNKNOWN_AKTE = 3  # no Akte or Vorgang at that address in the DMS
EXIT_DMS_UNAVAILABLE = 4  # the DMS cannot be reached right now: try again


@dataclass(frozen=True)
class Started:
    """The outcome of ``start``: the Abgabe, and whether it was open already."""

    abgabe: AbgabeView
    message_id: str
    existing: bool


def response(started: Started, status_url: str) -> AbgabeResponse:
    """What ``POST /v1/abgaben`` answers and ``abgabe start --json`` prints for ``started``.

    Args:
        status_url: where the process state can be read (``GET /v1/processes/{id}``).
    """
    return AbgabeResponse(
        id=started.abgabe.id,
        akte=started.abgabe.akte,
        partner=started.abgabe.partner_id,
        prozess_id=started.abgabe.prozess_id,
        message_id=started.message_id,
        state=started.abgabe.state,
        existing=started.existing,
        status_url=status_url,
    )


def partner_for(config: GatewayConfig, to: str) -> PartnerConfig:
    """The partner ``to`` names: its id or its Behördenkennung.

    Raises:
        AbgabeError: no such partner (``unknown-partner``).
    """
    for partner in config.partners:
        if to in (partner.id, partner.behoerdenkennung):
            return partner
    known = ", ".join(f"{p.id} ({p.behoerdenkennung})" for p in config.partners) or "none"
    raise AbgabeError(
        f"{to!r} is not a partner of this gateway; give a partner id or Behördenkennung "
        f"from the configuration (partners: {known})",
        kind="unknown-partner",
        exit_code=EXIT_CONFIG,
        status=422,
    )


def check_startable(config: GatewayConfig, to: str) -> PartnerConfig:
    """The partner, once it is sure an Abgabe to it could go anywhere.

    Raises:
        AbgabeError: unknown partner, no route for a 0401 to it, no ``[dms]``.
    """
    partner = partner_for(config, to)
    if config.dms is None:
        raise AbgabeError(
            "this gateway has no [dms] table, so there is no DMS to export the Akte from; "
            "add [dms] with backend and its settings to the configuration",
            kind="no-dms",
            exit_code=EXIT_CONFIG,
            status=409,
        )
    if not config.routes_for("0401", partner.behoerdenkennung):
        raise AbgabeError(
            f"this gateway has no route for a 0401 to {partner.id} "
            f"({partner.behoerdenkennung}); add a [[routes]] entry with empfaenger = "
            f'"{partner.behoerdenkennung}" to the destination that reaches it',
            kind="no-route",
            exit_code=EXIT_CONFIG,
            status=409,
        )
    return partner


async def start(
    config: GatewayConfig,
    journal: Journal,
    intake: Intake,
    port: DmsPort,
    node: PartnerConfig,
    *,
    akte: str,
    to: str,
) -> Started:
    """Start the Abgabe of the Akte at ``akte`` in this node's DMS to partner ``to``.

    Args:
        node: the node itself as sender (``gateway.app.local_sender``).

    Raises:
        AbgabeError: the Abgabe cannot be started; nothing was journaled.
        JournalUnavailable: the journal cannot be reached.
    """
    partner = check_startable(config, to)
    abgabe, created = await journal.abgabe_reserve(akte, partner.id, config.processes.on_completed)
    with structlog.contextvars.bound_contextvars(
        abgabe=abgabe.id, prozess_id=abgabe.prozess_id, akte=akte, partner=partner.id
    ):
        if abgabe.state is AbgabeState.OPEN and abgabe.message_id is not None:
            log.info("abgabe_already_open")
            return Started(abgabe=abgabe, message_id=abgabe.message_id, existing=True)
        if not created:
            # A start interrupted after intake (a crash, a lost answer): its 0401 is
            # journaled under the reserved ProzessID and must not be sent twice.
            journaled = next(
                (
                    v
                    for v in await journal.process(abgabe.prozess_id)
                    if v.nachrichtentyp == "0401" and v.partner_id == node.id
                ),
                None,
            )
            if journaled is not None:
                await journal.abgabe_opened(abgabe.id, journaled.id)
                opened = abgabe.model_copy(
                    update={"state": AbgabeState.OPEN, "message_id": journaled.id}
                )
                log.info("abgabe_resumed", message_id=journaled.id)
                return Started(abgabe=opened, message_id=journaled.id, existing=True)
        try:
            message_id = await _export_and_submit(config, intake, port, node, partner, abgabe)
        except BaseException:
            if created:
                # Nothing of this start may stay behind: a later start begins afresh.
                await journal.abgabe_abandon(abgabe.id)
            raise
        await journal.abgabe_opened(abgabe.id, message_id)
        opened = abgabe.model_copy(update={"state": AbgabeState.OPEN, "message_id": message_id})
        log.info("abgabe_started", message_id=message_id, resumed=not created)
        return Started(abgabe=opened, message_id=message_id, existing=False)


async def _export_and_submit(
    config: GatewayConfig,
    intake: Intake,
    port: DmsPort,
    node: PartnerConfig,
    partner: PartnerConfig,
    abgabe: AbgabeView,
) -> str:
    """Export the Akte as the reservation's 0401 and hand it to intake; the message id."""
    with tempfile.TemporaryDirectory(prefix="ikz-abgabe-") as folder:
        try:
            export = await export_0401(
                port,
                abgabe.akte,
                Path(folder),
                version=newest(partner.xdomea_versions),
                absender=kontakt(config.node.behoerdenkennung),
                empfaenger=kontakt(partner.behoerdenkennung),
                prozess_id=abgabe.prozess_id,
                erstellungszeitpunkt=abgabe.created_at,
            )
        except TransientDeliveryError as exc:
            raise AbgabeError(
                f"the DMS cannot be reached right now ({exc.message}); nothing was sent, "
                "start the Abgabe again later",
                kind="dms-unavailable",
                exit_code=EXIT_DMS_UNAVAILABLE,
                status=503,
            ) from exc
        except PermanentDeliveryError as exc:
            raise AbgabeError(
                f"cannot export {abgabe.akte!r} from the DMS: {exc.message}; give the DMS "
                "address of an Akte or Vorgang",
                kind="unknown-akte",
                exit_code=EXIT_UNKNOWN_AKTE,
                status=422,
            ) from exc
        except BuildError as exc:
            raise AbgabeError(
                f"the Akte {abgabe.akte!r} cannot be written as an xdomea 0401 for "
                f"{partner.id}: {exc.message}",
                kind="export-refused",
                exit_code=EXIT_REFUSED,
                status=422,
            ) from exc
        try:
            accepted = await intake.submit(
                file_chunks(export.path),
                Submission(
                    partner=node,
                    channel="abgabe",
                    idempotency_key=f"abgabe:{abgabe.id}",
                    file_name=export.path.name,
                ),
            )
        except IntakeRejected as exc:
            raise AbgabeError(
                f"the exported 0401 was refused: {exc.title}: {exc.message}",
                kind="export-refused",
                exit_code=EXIT_REFUSED,
                status=422,
            ) from exc
    return accepted.message_id


def newest(versions: tuple[str, ...]) -> str:
    """The newest xdomea version among ``versions`` the gateway knows."""
    known = list(catalog.versions())
    return max(versions, key=lambda v: known.index(v) if v in known else -1)


def kontakt(kennung: str) -> Kontakt:
    """A Kontakt holding only a Behördenkennung (``praefix:kennung``)."""
    praefix, _, schluessel = kennung.partition(":")
    return Kontakt(behoerdenkennung=Behoerdenkennung(praefix=praefix, kennung=schluessel))


async def read_vermerk(port: DmsPort, adresse: str, field: str) -> Abgabevermerk | None:
    """The Abgabevermerk in the Fachdatum ``field`` of the object, or ``None``.

    Raises:
        PermanentDeliveryError: the Fachdatum holds something else (edited by hand).
    """
    raw = (await port.read_fachdaten(adresse, [field])).get(field)
    if not raw:
        return None
    try:
        return Abgabevermerk.model_validate_json(raw)
    except ValueError as exc:
        raise PermanentDeliveryError(
            f"the Fachdatum {field} of {adresse} in {port.where} is not the gateway's "
            f"Abgabevermerk ({str(exc).splitlines()[0]}); someone edited it"
        ) from exc


class CompletionRunner:
    """Closes open Abgaben once their 0402 arrived, with the completion action."""

    def __init__(
        self,
        config: GatewayConfig,
        journal: Journal,
        blobs: BlobStore,
        port: DmsPort | None,
        *,
        poll_seconds: float = 2.0,
    ) -> None:
        """A runner; nothing runs until ``run``.

        Args:
            config: ``[processes] on_completed`` and the process settings.
            journal: where Abgaben and their messages are.
            blobs: where the 0402's bytes are read from.
            port: this node's DMS (``mark-abgegeben``; the caller closes it); ``None``
                without ``[dms]``.
            poll_seconds: how often to look without a ``notify``.
        """
        self._config = config
        self._journal = journal
        self._blobs = blobs
        self._port = port
        self._field = config.dms.abgabe_field if config.dms is not None else "xdomea_abgabe"
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        # The ProzessIDs (lower case) of the Abgaben open at the last look; None
        # before the first. A round re-derives every open Abgabe (journal and blob
        # reads), so waking it for every accepted message would cost that per
        # message while a partner is down for days. One started meanwhile, also by
        # another process, is found by the next poll.
        self._open: frozenset[str] | None = None

    def notify(self, message: NewMessage) -> None:
        """A message was accepted: look now if it can close an open Abgabe.

        That is a 0402 while any Abgabe is open, or any message of a process
        with an open Abgabe; everything else waits for the next poll.
        """
        can_close = self._open is None or (  # None: not looked yet
            message.prozess_id.lower() in self._open
            or (message.nachrichtentyp == "0402" and bool(self._open))
        )
        if can_close:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Close completed Abgaben until ``stop`` is set; outages are waited out."""
        await run_rounds(
            self.run_once,
            stop,
            self._wake,
            poll_seconds=self._poll,
            outages=(JournalUnavailable, TransientDeliveryError),
            event="abgabe_completion_waiting",
        )

    async def run_once(self) -> int:
        """Close every open Abgabe whose 0402 arrived; how many were closed.

        Raises:
            JournalUnavailable: the journal cannot be reached.
            TransientDeliveryError: the DMS cannot be reached (the Abgabe stays open).
        """
        closed = 0
        open_ = await self._journal.abgaben_open()
        self._open = frozenset(a.prozess_id.lower() for a in open_)
        for abgabe in open_:
            views = await self._journal.process(abgabe.prozess_id)
            status = await processes.status(
                self._config, self._journal, self._blobs, abgabe.prozess_id, views
            )
            with structlog.contextvars.bound_contextvars(
                abgabe=abgabe.id, prozess_id=abgabe.prozess_id, akte=abgabe.akte
            ):
                closed += await self._close(abgabe, status)
        return closed

    async def _close(self, abgabe: AbgabeView, status: ProcessStatus) -> int:
        if status.state is ProcessState.PARTIALLY_IMPORTED:
            detail = (
                f"the 0402 reports {len(status.failures)} object(s) not imported; "
                "nothing was marked abgegeben"
            )
            done = await self._journal.abgabe_finish(
                abgabe, AbgabeState.PARTIALLY_IMPORTED, CompletionState.NOT_DONE, detail
            )
            log.warning("abgabe_partially_imported", failures=len(status.failures))
            return int(done)
        if status.state is not ProcessState.COMPLETED:
            return 0
        receipt = next(e for e in reversed(status.timeline) if e.nachrichtentyp == "0402")
        completion, detail = CompletionState.DONE, "recorded"
        if abgabe.completion_action == "mark-abgegeben":
            vermerk = Abgabevermerk(
                empfaenger=receipt.absender,
                partner=abgabe.partner_id,
                prozess_id=abgabe.prozess_id,
                abgegeben_am=receipt.at,
                importbestaetigung=receipt.message_id,
            )
            try:
                await self._dms().write_fachdaten(
                    abgabe.akte, {self._field: vermerk.model_dump_json()}
                )
                detail = f"Abgabevermerk written on {abgabe.akte} ({self._field})"
            except TransientDeliveryError:
                raise  # stays open; tried again at the next round
            except (DeliveryError, GatewayError) as exc:
                completion, detail = CompletionState.FAILED, f"Abgabevermerk refused: {exc}"
        done = await self._journal.abgabe_finish(abgabe, AbgabeState.COMPLETED, completion, detail)
        log.info("abgabe_completed", completion=completion.value, detail=detail)
        return int(done)

    def _dms(self) -> DmsPort:
        if self._port is None:  # the configuration's validator prevents it
            raise PermanentDeliveryError('on_completed = "mark-abgegeben" needs a [dms] table')
        return self._port
