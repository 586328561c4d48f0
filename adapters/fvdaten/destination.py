"""The ``fvdaten`` destination: carry out a routed FVDaten request on the DMS and answer it.

``deliver`` checks the blob, opens the request (bare XML or container), lets
``adapters.fvdaten.service`` carry it out and builds the 0630 that answers it: a
bare message, or for 0631 a container with the exported documents. The answer is
handed to the node outbox (``contracts.delivery.NodeOutbox``) with the key
``fvdaten:<message id>``; a request whose Kopf sets ``Empfangsbestaetigung``
first gets a 0629 (key ``fvdaten:<message id>:0629``). Answers enter intake as
this node, addressed to the request's Absender, and are routed like any message
(to an XTA message box, a peer, a folder).

The answer is built deterministically — Erstellungszeitpunkt is the request's,
every DMS call is idempotent — so a redelivery after a crash builds the same
bytes and intake answers with the first answer's id. Should the DMS have
changed in between (a 0625 whose DMS came back), intake refuses the other bytes
under the same key; the first answer stands and the delivery counts as done.

Error mapping: a damaged blob, a message that is no FVDaten request, and an
answer intake refuses (no route back to the Fachverfahren) are permanent; the
DMS being down and the journal being unreachable are transient.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from adapters.dms import mapping
from adapters.dms.destination import build_port, verify_blob
from adapters.fvdaten.service import Anfrage, DmsZiel, FVDatenService
from adapters.xdomea import fvdaten, naming
from adapters.xdomea.container import Container, ContainerReport, ContainerWriter
from adapters.xdomea.validation import check_message
from contracts.config import FvdatenDestination
from contracts.delivery import NodeOutbox, Outbound
from contracts.dms import DmsPort
from contracts.xdomea import MessageType
from gateway.errors import (
    GatewayError,
    IntakeRejected,
    JournalUnavailable,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = structlog.get_logger(__name__)

_ANTWORT = MessageType.from_element(fvdaten.ANTWORT_ELEMENT)
_EMPFANG = MessageType.from_element(fvdaten.EMPFANG_ELEMENT)


class FVDatenDestination:
    """Answers a Fachverfahren's FVDaten requests from one DMS."""

    def __init__(
        self,
        name: str,
        config: FvdatenDestination,
        outbox: NodeOutbox | None,
        port: DmsPort | None = None,
    ) -> None:
        """A destination over ``config``'s DMS that answers through ``outbox``.

        ``outbox`` is ``None`` where nothing is served (tools); delivering then fails.
        """
        self.name = name
        self.port = port or build_port(config)
        self.outbox = outbox
        self.service = FVDatenService(
            self.port,
            DmsZiel(
                name=name,
                aktenplan=mapping.Aktenplan(config.aktenplan, config.aktenplan_default),
                ablage=config.ablage,
            ),
            fachverfahren=config.fachverfahren,
            max_search_results=config.max_search_results,
        )

    async def deliver(self, item: Outbound) -> None:
        """Carry out the request ``item`` and submit its answer to the node outbox.

        Raises:
            TransientDeliveryError: the DMS or the journal is unavailable; retry.
            PermanentDeliveryError: the blob is damaged, the message is no FVDaten
                request, or intake refused the answer (e.g. no route back).
        """
        if self.outbox is None:
            raise PermanentDeliveryError(
                f"destination {self.name!r} has no node outbox to answer through; it works "
                "only inside a running gateway (serve)"
            )
        with ExitStack() as stack:
            anfrage = await asyncio.to_thread(self._open, item, stack)
            if fvdaten.asks_for_empfang(anfrage.report.checked):
                # Receipt first: it says the request arrived, whatever the DMS does next.
                empfang = fvdaten.build_empfang_0629(
                    anfrage.report.checked, erstellungszeitpunkt=_erstellt(item, anfrage.report)
                )
                name = naming.message_name(item.prozess_id, _EMPFANG)
                await self._submit(item, empfang, name, f"fvdaten:{item.message_id}:0629")
            arbeitsordner = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ikz-fv-")))
            antwort = await self.service.answer(anfrage, arbeitsordner)
            body, file_name = await asyncio.to_thread(
                _build, item, anfrage.report, antwort, arbeitsordner
            )
            answer_id = await self._submit(item, body, file_name, f"fvdaten:{item.message_id}")
        log.info(
            "fvdaten_answer_submitted",
            message_id=item.message_id,
            answer_id=answer_id,
            erfolgreich=antwort.erfolgreich,
        )

    def _open(self, item: Outbound, stack: ExitStack) -> Anfrage:
        """Check the blob and read the request; in a worker thread."""
        verify_blob(item)
        where = f"message {item.message_id} (ProzessID {item.prozess_id})"
        source: Callable[[str], IO[bytes]] = _no_documents
        try:
            if item.content_kind == "container":
                container = stack.enter_context(Container(item.blob_path))
                report = container.report()
                source = container.open_document
            else:
                checked = check_message(item.blob_path.read_bytes(), where=str(item.blob_path))
                report = ContainerReport(
                    path=str(item.blob_path), checked=checked, message_entry=""
                )
        except GatewayError as exc:
            raise PermanentDeliveryError(
                f"{where} cannot be read as an FVDaten request: {exc.message}"
            ) from exc
        typ = report.checked.detected.typ
        if typ.family != fvdaten.FAMILY or typ.code not in fvdaten.REQUESTS:
            raise PermanentDeliveryError(
                f"destination {self.name!r} answers FVDaten requests, but {where} is a "
                f"{typ.element}; limit the route to it with nachrichtentyp (e.g. 0602-0631)"
            )
        return Anfrage(report=report, source=source, where=where)

    async def _submit(self, item: Outbound, body: bytes, file_name: str, key: str) -> str:
        assert self.outbox is not None  # checked by deliver
        try:
            return await self.outbox.submit(body, idempotency_key=key, file_name=file_name)
        except IntakeRejected as exc:
            if exc.kind == "idempotency-conflict":
                # A crash after the first answer was journaled, and the DMS changed since:
                # the first answer stands (the Fachverfahren may have it already).
                log.warning("fvdaten_answer_exists", message_id=item.message_id, key=key)
                return "(journaled before)"
            code = "0629" if key.endswith(":0629") else "0630"
            raise PermanentDeliveryError(
                f"the {code} answering message {item.message_id} was refused by this gateway's "
                f"intake: {exc.message}. Add a route for nachrichtentyp {code} to the "
                "Fachverfahren's Behördenkennung and retry the message; the DMS work is kept "
                "and is not done twice"
            ) from exc
        except JournalUnavailable as exc:
            raise TransientDeliveryError(
                f"the answer to message {item.message_id} cannot be journaled: {exc.message}"
            ) from exc

    async def close(self) -> None:
        """Close the DMS backend's connections."""
        await self.port.close()


def _build(
    item: Outbound, report: ContainerReport, antwort: fvdaten.Antwort, arbeitsordner: Path
) -> tuple[bytes, str]:
    """The answer's bytes and file name: the 0630, in a container when it carries files."""
    kopf = report.nachricht.kopf
    xml = fvdaten.build_antwort_0630(
        report.checked, antwort, erstellungszeitpunkt=_erstellt(item, report)
    )
    if not antwort.dateien:
        return xml, naming.message_name(kopf.prozess_id, _ANTWORT)
    folder = arbeitsordner / "antwort"
    with ContainerWriter(folder, xml) as writer:
        for name, path in antwort.dateien.items():
            writer.add_unreferenced(name, path)
    target = folder / writer.file_name
    return target.read_bytes(), target.name


def _erstellt(item: Outbound, report: ContainerReport) -> datetime:
    """The answers' Erstellungszeitpunkt: the request's, so building again gives the same bytes."""
    erstellt = report.nachricht.kopf.erstellungszeitpunkt
    if erstellt is not None:
        return erstellt
    # The blob is written once and never touched: its time is as stable as the request's.
    return datetime.fromtimestamp(item.blob_path.stat().st_mtime, tz=UTC).replace(microsecond=0)


def _no_documents(dateiname: str) -> IO[bytes]:
    raise PermanentDeliveryError(
        f"{dateiname} is referenced, but the request came without a container; send the ZIP"
    )
