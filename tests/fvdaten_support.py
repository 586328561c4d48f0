"""Test data for FVDaten: a Fachverfahren's Kopf, one request of each supported type, answers.

The Fachverfahren (Absender) is the Kommune's Bauamt software with its own
Behördenkennung; the DMS side (Empfänger) is the gateway's node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from adapters.fvdaten.service import Anfrage
from adapters.xdomea import fvdaten
from adapters.xdomea.container import Container, ContainerReport, write_container
from adapters.xdomea.validation import check_message
from contracts.builders import (
    AkteSpec,
    DokumentSpec,
    SchriftgutobjektSpec,
    SendendesSystem,
    primaerdokument_name,
)
from contracts.xdomea import Behoerdenkennung, Kontakt

FACHVERFAHREN = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="060", kennung="0815-FV"),
    institution="Stadt Musterstadt, Bauordnungsamt (Fachverfahren)",
)
DMS = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="060", kennung="0815"),
    institution="Stadt Musterstadt, DMS",
)
ZEITPUNKT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def kopf(**overrides: object) -> fvdaten.FVKopf:
    """A request Kopf from the Fachverfahren to the DMS, with a fixed time."""
    values: dict[str, object] = {
        "absender": FACHVERFAHREN,
        "empfaenger": DMS,
        "erstellerkennung": "sachbearbeiter.mueller",
        "erstellungszeitpunkt": ZEITPUNKT,
        "sendendes_system": SendendesSystem(produktname="BauFV", version="4.2"),
    }
    values.update(overrides)
    return fvdaten.FVKopf(**values)  # type: ignore[arg-type]


AKTE_UUID = "9b2e7c1a-5d4f-4e8b-a1c3-7f6e5d4c3b2a"
DOKUMENT_UUID = "1d2c3b4a-6e5f-4a7b-8c9d-0e1f2a3b4c5d"


def dokument(
    name: str = "bescheid.pdf", *, betreff: str = "Baugenehmigung", uuid: str | None = None
) -> DokumentSpec:
    """A Dokument with one PDF (a fresh UUID unless given)."""
    return DokumentSpec.with_file(primaerdokument_name(name, uuid), uuid=uuid, betreff=betreff)


def akte() -> AkteSpec:
    """The same small Akte every time: one Dokument, filed under Kennzeichen 63.01."""
    return AkteSpec(
        uuid=AKTE_UUID,
        betreff="Bauantrag Lindenweg 3",
        kennzeichen="63.01.05/2026",
        dokumente=(dokument(uuid=DOKUMENT_UUID),),
    )


UUID = "4c1f6f7e-8a64-4c7b-9d1e-2f3a4b5c6d7e"

#: One request of every supported type, built for a version.
REQUESTS: Mapping[str, Callable[[str], bytes]] = {
    "0602": lambda v: fvdaten.build_sgo_ansehen_0602(v, UUID, kopf()),
    "0604": lambda v: fvdaten.build_sgo_erstellen_0604(
        v, [fvdaten.Erstellen(objekt=akte(), fachverfahren_objekt_id="BV-2026-17")], kopf()
    ),
    "0605": lambda v: fvdaten.build_sgo_ablegen_0605(
        v,
        [
            fvdaten.Erstellen(objekt=dokument(), fachverfahren_objekt_id="BV-1", id_container=UUID),
            fvdaten.Erstellen(objekt=dokument("plan.pdf"), fachverfahren_objekt_id="BV-2"),
        ],
        kopf(),
    ),
    "0608": lambda v: fvdaten.build_sgo_suchen_0608(v, "Lindenweg", kopf()),
    "0609": lambda v: fvdaten.build_metadaten_anlegen_0609(
        v, UUID, [fvdaten.Feld(name="Bauvorhaben", wert="Carport", datentyp="001")], kopf()
    ),
    "0610": lambda v: fvdaten.build_metadaten_aktualisieren_0610(
        v, UUID, [fvdaten.Feld(name="Bauvorhaben", wert="Garage")], kopf()
    ),
    "0625": lambda v: fvdaten.build_systemstatus_abfragen_0625(v, 1, kopf()),
    "0631": lambda v: fvdaten.build_primaerdokument_exportieren_0631(v, UUID, kopf()),
}


# --------------------------------------------------------------------------- requests to carry out


@contextmanager
def anfrage(
    folder: Path, xml: bytes, documents: Mapping[str, bytes] | None = None
) -> Iterator[Anfrage]:
    """The request ``xml`` as the destination hands it to the service (in a container if it has files)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not documents:
        report = ContainerReport(path="request.xml", checked=check_message(xml), message_entry="")
        yield Anfrage(report=report, source=_nothing, where="request")
        return
    path, _ = write_container(folder, xml, dict(documents))
    with Container(path) as container:
        yield Anfrage(report=container.report(), source=container.open_document, where=path.name)


def _nothing(name: str) -> IO[bytes]:
    raise AssertionError(f"{name} requested from a request without container")


def documents_of(xml: bytes, pdf: bytes) -> dict[str, bytes]:
    """Distinct bytes built on a real PDF for every primary document ``xml`` names."""
    names = check_message(xml).read().dateinamen()
    return {name: pdf + f"\n% {index} {name}\n".encode() for index, name in enumerate(names)}


def erstellen(
    version: str,
    *objekte: SchriftgutobjektSpec,
    id_container: str | None = None,
    **kopf_values: object,
) -> bytes:
    """A 0604 creating ``objekte`` (one Stapel entry each)."""
    items = [
        fvdaten.Erstellen(objekt=o, fachverfahren_objekt_id=f"FV-{i}", id_container=id_container)
        for i, o in enumerate(objekte, start=1)
    ]
    return fvdaten.build_sgo_erstellen_0604(version, items, kopf(**kopf_values))
