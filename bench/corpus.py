"""Benchmark messages: two example parties and 0401 Abgaben of a chosen size.

The benchmarks build their inputs with the project's own builders, so what they
measure is what the gateway writes and reads. The parties are made up.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.xdomea import builders
from contracts.builders import AkteSpec, DokumentSpec, VorgangSpec, primaerdokument_name
from contracts.xdomea import Behoerdenkennung, Kontakt

VERSIONS = ("2.3.0", "2.4.0", "3.0.0", "3.1.0")

ABSENDER = Kontakt(
    behoerdenkennung=Behoerdenkennung(
        praefix="060", praefix_name="Kommune", kennung="0815", kennung_name="Stadt Beispielstadt"
    ),
    institution="Stadt Beispielstadt, Hauptamt",
    institution_kurz="HA",
)
EMPFAENGER = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="LA", kennung="LAB", kennung_name="Landesarchiv"),
    institution="Landesarchiv Beispielland",
)


def dokumente(count: int) -> list[DokumentSpec]:
    """``count`` Dokumente, each with one PDF named ``<uuid>_dokument-<n>.pdf``."""
    return [
        DokumentSpec.with_file(
            primaerdokument_name(f"dokument-{n:04}.pdf"),
            betreff=f"Dokument {n}",
            kennzeichen=f"63.01.02/2024-{n}",
        )
        for n in range(count)
    ]


def akte(dokumente: Sequence[DokumentSpec], *, per_vorgang: int = 10) -> AkteSpec:
    """One Akte whose Vorgänge hold ``dokumente``, ``per_vorgang`` each.

    Dokumente sit in Vorgänge, not directly in the Akte, so that every version
    (2.x cannot mix both in one Akte) can express the tree.
    """
    return AkteSpec(
        betreff="Bauantrag Beispielweg 1",
        kennzeichen="63.01.02/2024",
        vorgaenge=tuple(
            VorgangSpec(
                betreff=f"Vorgang {start // per_vorgang + 1}",
                dokumente=tuple(dokumente[start : start + per_vorgang]),
            )
            for start in range(0, len(dokumente), per_vorgang)
        ),
    )


def abgabe(version: str, objekte: Sequence[AkteSpec | DokumentSpec]) -> bytes:
    """A 0401 Abgabe of ``objekte`` from ``ABSENDER`` to ``EMPFAENGER``."""
    return builders.build_abgabe_0401(version, objekte, absender=ABSENDER, empfaenger=EMPFAENGER)


def dateinamen(dokumente: Sequence[DokumentSpec]) -> list[str]:
    """The primary file names of ``dokumente``, as the message references them."""
    return [f.dateiname for d in dokumente for v in d.versionen for f in v.formate]
