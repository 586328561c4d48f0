"""Test data for the xdomea builders: parties, a Schriftgutobjekt tree, and its expected reading.

``tree()`` nests everything every version can express (Akte > Vorgang > Teilvorgang,
Akte > Teilakte, an Akte holding Dokumente, a top-level Vorgang, top-level
Dokumente) with upper-case UUIDs among them. ``expected`` turns specs into the
shape the reader must give back; ``shape`` turns the reader's view into the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.xdomea import builders
from contracts.builders import (
    AkteSpec,
    DokumentSpec,
    FormatSpec,
    SchriftgutobjektSpec,
    VersionSpec,
    VorgangSpec,
    primaerdokument_name,
)
from contracts.xdomea import Behoerdenkennung, Kontakt, Schriftgutobjekt, SchriftgutobjektArt

ABSENDER = Kontakt(
    behoerdenkennung=Behoerdenkennung(
        praefix="060", praefix_name="Kommune", kennung="0815", kennung_name="Stadt Musterstadt"
    ),
    institution="Stadt Musterstadt, Hauptamt",
    institution_kurz="HA",
)
EMPFAENGER = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="LA", kennung="LATh", kennung_name="Landesarchiv"),
    institution="Landesarchiv Thüringen",
)

UPPER_AKTE = "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"
UPPER_DOKUMENT = "FEDCBA98-7654-4321-ABCD-EF0123456789"


def dokument(betreff: str, *, uuid: str | None = None) -> DokumentSpec:
    """A document with one PDF."""
    return DokumentSpec.with_file(
        primaerdokument_name(f"{betreff}.pdf"), uuid=uuid, betreff=betreff
    )


def tree() -> tuple[SchriftgutobjektSpec, ...]:
    """Every nesting all four versions can express, including documents at the top level."""
    multi_version = DokumentSpec(
        uuid=UPPER_DOKUMENT,
        betreff="Bescheid",
        kennzeichen="1.2.3-4/5",
        versionen=(
            VersionSpec(
                nummer="1",
                formate=(FormatSpec(dateiname=primaerdokument_name("bescheid-v1.pdf")),),
            ),
            VersionSpec(
                nummer="2",
                formate=(
                    FormatSpec(
                        dateiname=primaerdokument_name("bescheid-v2.pdf"), code="044", version="1b"
                    ),
                    FormatSpec(
                        dateiname=primaerdokument_name("bescheid-v2.docx"),
                        code="035",
                        version="2016",
                    ),
                ),
            ),
        ),
    )
    return (
        AkteSpec(
            uuid=UPPER_AKTE,
            betreff="Bauantrag Musterstraße 1",
            kennzeichen="63.01.02/2024",
            vorgaenge=(
                VorgangSpec(
                    betreff="Antrag",
                    kennzeichen="63.01.02/2024-1",
                    dokumente=(dokument("Antrag"), dokument("Lageplan")),
                    teilvorgaenge=(
                        VorgangSpec(
                            betreff="Nachforderung", dokumente=(dokument("Nachforderung"),)
                        ),
                    ),
                ),
            ),
            teilakten=(AkteSpec(betreff="Statik", dokumente=(dokument("Statik"),)),),
        ),
        AkteSpec(betreff="Gebühren", dokumente=(dokument("Gebührenbescheid"),)),
        VorgangSpec(betreff="Beschwerde", dokumente=(dokument("Beschwerde"),)),
        multi_version,
        DokumentSpec.with_file(primaerdokument_name("ohne-metadaten.pdf")),
    )


@dataclass(frozen=True)
class Shape:
    """What the round trip must keep of one Schriftgutobjekt."""

    art: SchriftgutobjektArt
    uuid: str
    betreff: str | None
    kennzeichen: str | None
    #: (Nummer, ((Dateiformat code, format version, Dateiname), …)) per version.
    versionen: tuple[tuple[str | None, tuple[tuple[str | None, str | None, str], ...]], ...]
    kinder: tuple[Shape, ...]


def expected(objekte: Sequence[SchriftgutobjektSpec]) -> tuple[Shape, ...]:
    """The shapes the reader must give back for top-level ``objekte``."""
    return tuple(_expected(objekt, top=True) for objekt in objekte)


def _expected(objekt: SchriftgutobjektSpec, *, top: bool) -> Shape:
    if isinstance(objekt, AkteSpec):
        art = SchriftgutobjektArt.AKTE if top else SchriftgutobjektArt.TEILAKTE
        kinder = (
            *(_expected(d, top=True) for d in objekt.dokumente),
            *(_expected(v, top=True) for v in objekt.vorgaenge),
            *(_expected(t, top=False) for t in objekt.teilakten),
        )
    elif isinstance(objekt, VorgangSpec):
        art = SchriftgutobjektArt.VORGANG if top else SchriftgutobjektArt.TEILVORGANG
        kinder = (
            *(_expected(d, top=True) for d in objekt.dokumente),
            *(_expected(t, top=False) for t in objekt.teilvorgaenge),
        )
    else:
        art = SchriftgutobjektArt.DOKUMENT
        kinder = ()
    versionen = tuple(
        (v.nummer, tuple((f.code, f.version, f.dateiname) for f in v.formate))
        for v in getattr(objekt, "versionen", ())
    )
    return Shape(art, objekt.uuid, objekt.betreff, objekt.kennzeichen, versionen, kinder)


def shape(sgo: Schriftgutobjekt) -> Shape:
    """The shape of what the reader gave back."""
    return Shape(
        art=sgo.art,
        uuid=sgo.uuid,
        betreff=sgo.betreff,
        kennzeichen=sgo.kennzeichen,
        versionen=tuple(
            (
                v.nummer,
                tuple((f.name_code, f.version, f.primaerdokument.dateiname) for f in v.formate),
            )
            for v in sgo.versionen
        ),
        kinder=tuple(shape(k) for k in sgo.kinder),
    )


def all_uuids(objekte: Sequence[SchriftgutobjektSpec]) -> list[str]:
    """Every UUID of the tree, depth first in written order, as spelled."""
    found: list[str] = []
    for objekt in objekte:
        found.append(objekt.uuid)
        found.extend(all_uuids(objekt.kinder))
    return found


def build(
    code: str,
    version: str,
    *,
    objekte: Sequence[SchriftgutobjektSpec] | None = None,
    bewertungen: Mapping[str, str] | None = None,
    **options: Any,
) -> bytes:
    """The message ``code`` of ``version`` from the standard tree and parties.

    ``options`` go to the builder as they are (``prozess_id``, ``empfangsbestaetigung`` …).
    """
    if code == "0502":
        # The archive sends the Bewertungsverzeichnis back to the agency.
        return builders.build_bewertungsverzeichnis_0502(
            version,
            {UPPER_AKTE: "A", UPPER_DOKUMENT: "V"} if bewertungen is None else bewertungen,
            absender=EMPFAENGER,
            empfaenger=ABSENDER,
            **options,
        )
    return OBJECT_BUILDERS[code](
        version,
        tree() if objekte is None else objekte,
        absender=ABSENDER,
        empfaenger=EMPFAENGER,
        **options,
    )


#: Builders of the messages that carry Schriftgutobjekte, by Nachrichtentyp code.
OBJECT_BUILDERS: dict[str, Callable[..., bytes]] = {
    "0101": builders.build_information_0101,
    "0401": builders.build_abgabe_0401,
    "0501": builders.build_anbieteverzeichnis_0501,
    "0503": builders.build_aussonderung_0503,
}
