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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from adapters.dms import mapping, restore
from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from adapters.xdomea.validation import check_message
from contracts.builders import (
    AkteSpec,
    DokumentSpec,
    VorgangSpec,
    new_uuid,
    primaerdokument_name,
)
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


@dataclass(frozen=True)
class AussonderungExport:
    """An Aussonderung message made from DMS objects.

    ``path`` is the container (0503, with every primary document) or ``None`` for
    a bare message (0501, metadata only), whose bytes are ``xml``.
    """

    xml: bytes
    path: Path | None
    baeume: tuple[mapping.Knoten, ...]


async def export_aussonderung(
    port: DmsPort,
    adressen: list[str],
    build: Callable[[list[AkteSpec | VorgangSpec | DokumentSpec]], bytes],
    *,
    version: str,
    select: Callable[[mapping.Knoten], mapping.Knoten | None] = lambda knoten: knoten,
    documents_into: Path | None = None,
    file_name: str | None = None,
) -> AussonderungExport:
    """Build an Aussonderung message (0501 or 0503) from the objects at ``adressen``.

    Args:
        build: writes the message from the top-level specs (a builder with its Kopf).
        select: what of each tree goes in (the 0503 takes only what is valued A);
            ``None`` leaves the whole tree out.
        documents_into: write a container with every primary document of the selected
            objects into this folder (0503); ``None`` builds the bare message (0501).
        file_name: the container's name (default: the long xdomea name).

    Raises:
        PermanentDeliveryError: no object at an address.
        TransientDeliveryError: the DMS is unreachable or failing.
        BuildError: the trees cannot be written in ``version``.
    """
    inhalte: dict[str, Inhalt] = {}
    baeume = []
    for adresse in adressen:
        gewaehlt = select(await _read_tree(port, adresse, inhalte))
        if gewaehlt is not None:
            baeume.append(gewaehlt)
    xml = build([mapping.spec(knoten) for knoten in baeume])
    for knoten in baeume:
        xml = await asyncio.to_thread(_with_originals, xml, knoten, version)
    if documents_into is None:
        return AussonderungExport(xml=xml, path=None, baeume=tuple(baeume))
    wanted = [name for knoten in baeume for name in _names(knoten)]
    with tempfile.TemporaryDirectory(prefix="ikz-dms-export-") as folder:
        files: dict[str, Path] = {}
        for index, name in enumerate(wanted):
            target = Path(folder) / f"{index}"
            await port.read_content(inhalte[name], target)
            files[name] = target
        path, _ = await asyncio.to_thread(
            write_container, documents_into, xml, files, file_name=file_name
        )
    log.info("dms_export_done", dms=port.where, adressen=len(adressen), documents=len(files))
    return AussonderungExport(xml=xml, path=path, baeume=tuple(baeume))


def _names(knoten: mapping.Knoten) -> list[str]:
    return [*knoten.inhalte, *(name for kind in knoten.kinder for name in _names(kind))]


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
