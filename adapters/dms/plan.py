"""Plan an import before the first DMS call: every object, its parent and its documents.

Everything that can be wrong with the input is found here — an invalid or
incomplete container, an Akte without Aktenplaneintrag, a Vorgang outside any
Akte with no ``ablage`` configured, a tree the DMS cannot hold — so a bad message
is refused with a clear error and leaves nothing behind in the DMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from adapters.dms import mapping
from adapters.xdomea.container import ContainerReport
from contracts.dms import Objektdaten
from contracts.xdomea import (
    ContainerEntry,
    Nachricht,
    Schriftgutobjekt,
    SchriftgutobjektArt,
    Severity,
)
from gateway.errors import BuildError, PermanentDeliveryError


@dataclass(frozen=True)
class Datei:
    """A primary document to store: its name in the container, SHA-256 and size."""

    dateiname: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Schritt:
    """One object to file: what the DMS keeps, where it goes, and its documents."""

    daten: Objektdaten
    #: Index of the parent's step; ``None`` for a top-level object.
    parent: int | None
    dateien: tuple[Datei, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The objects of one message in filing order (parents before children)."""

    prozess_id: str
    nachrichtentyp: str
    schritte: tuple[Schritt, ...]
    #: Where top-level objects other than Akten go (the destination's ``ablage``).
    ablage: str | None


@dataclass(frozen=True)
class Ziel:
    """What the plan needs to know about the DMS it files into."""

    name: str
    top_level: frozenset[SchriftgutobjektArt]
    needs_aktenplan: bool
    aktenplan: mapping.Aktenplan
    ablage: str | None


def plan_import(report: ContainerReport, ziel: Ziel, *, where: str | None = None) -> Plan:
    """The import plan of a checked container.

    Args:
        report: the container's check, with every document's SHA-256.
        ziel: the DMS it goes to.
        where: how errors name the message (default: the container's path).

    Raises:
        PermanentDeliveryError: the container is invalid or the DMS cannot hold it; the
            message says which object and what to change.
    """
    where = where or report.path
    errors = [f for f in report.all_findings if f.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        line = f"line {first.line}: " if first.line else ""
        raise PermanentDeliveryError(
            f"the container cannot be imported into {ziel.name!r}, it is invalid "
            f"({len(errors)} errors; first: {line}{first.message})",
            where=where,
        )
    return plan_objekte(report, report.nachricht.schriftgutobjekte, ziel, where=where)


def plan_objekte(
    report: ContainerReport,
    objekte: Sequence[Schriftgutobjekt],
    ziel: Ziel,
    *,
    where: str,
) -> Plan:
    """The import plan of some top-level objects of a checked message (FVDaten: one each).

    Unlike ``plan_import`` the report's findings are not looked at: the caller
    decided the message is usable.

    Raises:
        PermanentDeliveryError: the DMS cannot hold the objects.
    """
    nachricht = report.nachricht.model_copy(update={"schriftgutobjekte": tuple(objekte)})
    hashes = {e.name: e for e in report.entries if e.role == "primaerdokument"}
    return _plan(nachricht, report.checked.detected.root, hashes, ziel, where)


def _plan(
    nachricht: Nachricht,
    root: etree._Element,
    hashes: dict[str, ContainerEntry],
    ziel: Ziel,
    where: str,
) -> Plan:
    try:
        mapping.check_tree(nachricht.schriftgutobjekte)
    except BuildError as exc:
        raise PermanentDeliveryError(exc.message, where=where) from exc
    quellen = mapping.object_sources(root)
    schritte: list[Schritt] = []

    def visit(sgo: Schriftgutobjekt, parent: int | None) -> None:
        aktenplaneintrag = None
        if parent is None:
            _check_top_level(sgo, ziel, where)
            if sgo.art is SchriftgutobjektArt.AKTE and ziel.needs_aktenplan:
                aktenplaneintrag = ziel.aktenplan.eintrag(sgo.kennzeichen)
                if aktenplaneintrag is None:
                    raise PermanentDeliveryError(
                        f"Akte {sgo.uuid} (Kennzeichen {sgo.kennzeichen or 'none'}, line "
                        f"{sgo.line}) has no Aktenplaneintrag in {ziel.name!r}: add its "
                        "Aktenzeichen prefix to the destination's aktenplan table or set "
                        "aktenplan_default",
                        where=where,
                    )
        dateien = []
        for name in sgo.dateinamen():
            entry = hashes.get(name)
            if entry is None:  # pragma: no cover - the container check guarantees it
                raise PermanentDeliveryError(f"{name} is missing from the container", where=where)
            dateien.append(Datei(dateiname=name, sha256=entry.sha256, size=entry.size))
        daten = mapping.objektdaten(
            sgo,
            prozess_id=nachricht.kopf.prozess_id,
            xdomea_version=nachricht.version,
            quelle=quellen.get(sgo.uuid_key),
            aktenplaneintrag=aktenplaneintrag,
        )
        schritte.append(Schritt(daten=daten, parent=parent, dateien=tuple(dateien)))
        index = len(schritte) - 1
        for kind in sgo.kinder:
            visit(kind, index)

    for sgo in nachricht.schriftgutobjekte:
        visit(sgo, None)
    if not schritte:
        raise PermanentDeliveryError(
            f"the {nachricht.typ.element} carries no Schriftgutobjekt; there is nothing to "
            f"import into {ziel.name!r}",
            where=where,
        )
    return Plan(
        prozess_id=nachricht.kopf.prozess_id,
        nachrichtentyp=nachricht.typ.code,
        schritte=tuple(schritte),
        ablage=ziel.ablage,
    )


def _check_top_level(sgo: Schriftgutobjekt, ziel: Ziel, where: str) -> None:
    if sgo.art in ziel.top_level or ziel.ablage is not None:
        return
    raise PermanentDeliveryError(
        f"{sgo.art.value} {sgo.uuid} (line {sgo.line}) stands outside any Akte, and "
        f"{ziel.name!r} files only Akten at the top level: set the destination's ablage to "
        "the DMS address of an Akte or Vorgang that takes such objects",
        where=where,
    )
