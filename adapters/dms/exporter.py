"""Export an Akte or Vorgang from a DMS into an xdomea 0401 container.

The tree is read through the DMS port (object, children, content objects), turned
into builder specs (``adapters.dms.mapping.spec``), written as a schema-valid
0401 by the project's builders, and packed with every document by the
``ContainerWriter`` (atomic: the container appears complete or not at all).
Documents are downloaded to a temporary folder first and hashed on the way; the
container's entries carry the same SHA-256.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from adapters.dms import mapping, restore
from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from adapters.xdomea.validation import check_message
from contracts.builders import new_uuid, primaerdokument_name
from contracts.dms import DmsPort, Inhalt, Objektdaten
from contracts.xdomea import ContainerEntry, Kontakt, SchriftgutobjektArt, uuid_key
from gateway.errors import PermanentDeliveryError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Export:
    """The written container and its entries with SHA-256."""

    path: Path
    entries: tuple[ContainerEntry, ...]
    prozess_id: str


async def export_0401(
    port: DmsPort,
    adresse: str,
    directory: Path,
    *,
    version: str,
    absender: Kontakt,
    empfaenger: Kontakt,
    prozess_id: str | None = None,
    erstellungszeitpunkt: datetime | None = None,
    empfangsbestaetigung: bool | None = None,
) -> Export:
    """Write the Akte or Vorgang at ``adresse`` as an Abgabe.Abgabe.0401 container.

    ``empfangsbestaetigung`` asks the recipient for a 0403 on receipt; ``None``
    (the builders' default) asks wherever the version's Kopf can.

    Raises:
        PermanentDeliveryError: no such object, or it is a Dokument (export an Akte or
            Vorgang).
        TransientDeliveryError: the DMS is unreachable or failing.
        BuildError: the tree cannot be written in ``version`` (e.g. xdomea 2.x and an
            Akte holding Dokumente and Vorgänge side by side).
    """
    inhalte: dict[str, Inhalt] = {}
    knoten = await _read_tree(port, adresse, inhalte)
    if knoten.daten.art not in mapping.AKTEN | mapping.VORGAENGE:
        raise PermanentDeliveryError(
            f"{adresse} in {port.where} is a {knoten.daten.art.value}; export an Akte or a Vorgang"
        )
    spec = mapping.spec(knoten)
    prozess_id = prozess_id or new_uuid()
    xml = builders.build_abgabe_0401(
        version,
        [spec],
        absender=absender,
        empfaenger=empfaenger,
        prozess_id=prozess_id,
        erstellungszeitpunkt=erstellungszeitpunkt,
        empfangsbestaetigung=empfangsbestaetigung,
    )
    xml = await asyncio.to_thread(_with_originals, xml, knoten, version)
    with tempfile.TemporaryDirectory(prefix="ikz-dms-export-") as folder:
        files: dict[str, Path] = {}
        for index, (name, inhalt) in enumerate(inhalte.items()):
            target = Path(folder) / f"{index}"
            await port.read_content(inhalt, target)
            files[name] = target
        path, entries = await asyncio.to_thread(write_container, directory, xml, files)
    log.info("dms_export_done", dms=port.where, adresse=adresse, documents=len(files))
    return Export(path=path, entries=tuple(entries), prozess_id=prozess_id)


async def _read_tree(port: DmsPort, adresse: str, inhalte: dict[str, Inhalt]) -> mapping.Knoten:
    objekt = await port.read(adresse)
    kinder = [await _read_tree(port, kind, inhalte) for kind in objekt.kinder]
    namen: list[str] = []
    if objekt.daten.art in (SchriftgutobjektArt.DOKUMENT, SchriftgutobjektArt.ANLAGE):
        known = {f.dateiname for f in objekt.daten.formate}
        for inhalt in objekt.inhalte:
            # A document added in the DMS by hand gets the UUID prefix xdomea wants,
            # which also keeps two "scan.pdf" of different Dokumente apart.
            name = (
                inhalt.dateiname
                if inhalt.dateiname in known
                else primaerdokument_name(inhalt.dateiname, objekt.daten.uuid)
            )
            namen.append(name)
            inhalte[name] = inhalt
    return mapping.Knoten(daten=objekt.daten, kinder=tuple(kinder), inhalte=tuple(namen))


def _with_originals(message: bytes, knoten: mapping.Knoten, version: str) -> bytes:
    """The message with the originally imported metadata restored, if still schema-valid."""
    daten: dict[str, Objektdaten] = {}
    stack = [knoten]
    while stack:
        current = stack.pop()
        daten[uuid_key(current.daten.uuid)] = current.daten
        stack.extend(current.kinder)
    restored = restore.restore(message, daten, version)
    if check_message(restored).valid:
        return restored
    # Never export less than the DMS holds because an original no longer fits.
    log.warning("dms_export_originals_dropped", reason="restored message is not schema-valid")
    return message
