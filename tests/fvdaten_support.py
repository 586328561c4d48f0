"""Test data for FVDaten: a Fachverfahren's Kopf, one request of each supported type, answers.

The Fachverfahren (Absender) is the Kommune's Bauamt software with its own
Behördenkennung; the DMS side (Empfänger) is the gateway's node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from adapters.xdomea import fvdaten
from contracts.builders import AkteSpec, DokumentSpec, SendendesSystem, primaerdokument_name
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


def dokument(name: str = "bescheid.pdf", *, betreff: str = "Baugenehmigung") -> DokumentSpec:
    """A Dokument with one PDF."""
    return DokumentSpec.with_file(primaerdokument_name(name), betreff=betreff)


def akte() -> AkteSpec:
    """A small Akte with one Dokument, filed under Kennzeichen 63.01."""
    return AkteSpec(
        betreff="Bauantrag Lindenweg 3", kennzeichen="63.01.05/2026", dokumente=(dokument(),)
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
