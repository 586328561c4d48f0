"""The DMS port: what the xdomea import and export need from a document management system.

Two backends implement it: the embedded filesystem DMS (``adapters.dms.filesystem``)
and Fabasoft eGov-Suite over its dmsin SOAP interface (``adapters.dms.dmsin``).
The import (``adapters.dms.importer``) and the export (``adapters.dms.exporter``)
are written once against this port.

FVDaten requests (``adapters.fvdaten``) also address objects by UUID alone
(``locate``), search them, keep Fachdaten (custom metadata) on them and ask
whether the DMS answers at all (``probe``).

The port is deliberately small and idempotency-friendly: every object carries its
xdomea UUID, and ``find`` looks an object up by it before ``create`` makes it, so
a retried import never creates a second object. Content objects are found by
their file name inside their Dokument, which xdomea makes unique (it starts with
the document's UUID). Addresses are opaque strings owned by the backend (a
Fabasoft object address ``COO.…``, a relative folder path).

Methods raise ``gateway.errors.TransientDeliveryError`` (retry) or
``PermanentDeliveryError`` (dead letter); backends translate their own errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import IO, Protocol

from pydantic import BaseModel, ConfigDict, Field

from contracts.xdomea import SchriftgutobjektArt


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Dokumenttyp(StrEnum):
    """How a Dokument is filed: as an incoming letter or as an internal document."""

    EINGANG = "eingang"
    INTERN = "intern"


class FormatEintrag(_Frozen):
    """One format of one document version: which content object holds which xdomea file."""

    nummer: str | None = Field(description="Version/Nummer")
    code: str | None = Field(description="Format/Name/code (Dateiformat code list)")
    version: str | None = Field(description="Format/Version, e.g. 1.7 or 1b")
    dateiname: str = Field(description="Primaerdokument/Dateiname, the content object's name")


class Objektdaten(_Frozen):
    """Everything the DMS keeps of one Schriftgutobjekt (without its children).

    ``quelle`` is the object's original xdomea element (its child Schriftgutobjekte
    removed), kept so that an export can restore what the DMS has no field for.
    """

    art: SchriftgutobjektArt
    uuid: str
    betreff: str | None = None
    kennzeichen: str | None = None
    dokumenttyp: Dokumenttyp | None = Field(default=None, description="Dokument only")
    fremdes_geschaeftszeichen: str | None = None
    posteingangsdatum: date | None = None
    formate: tuple[FormatEintrag, ...] = ()
    aktenplaneintrag: str | None = Field(
        default=None, description="Akte only: the DMS address of its Aktenplaneintrag"
    )
    prozess_id: str | None = Field(default=None, description="the message it came with")
    xdomea_version: str | None = None
    quelle: str | None = Field(default=None, description="original element, UTF-8 XML")


class Inhalt(_Frozen):
    """A content object (a primary document's bytes) inside a Dokument."""

    adresse: str
    dateiname: str
    size: int | None = None


class DmsObjekt(_Frozen):
    """An object read back from the DMS, with the addresses of its children."""

    adresse: str
    daten: Objektdaten
    kinder: tuple[str, ...] = ()
    inhalte: tuple[Inhalt, ...] = ()


class Treffer(_Frozen):
    """An object a search found."""

    adresse: str
    art: SchriftgutobjektArt
    uuid: str
    betreff: str | None = None


#: Opens a primary document's bytes for reading; called in a worker thread.
Opener = Callable[[], IO[bytes]]


class DmsPort(Protocol):
    """A document management system as the import and export see it."""

    #: Where the backend lives, for error messages (a URL or a folder).
    where: str
    #: Kinds the backend can file without a parent (the rest need ``ablage``).
    top_level: frozenset[SchriftgutobjektArt]
    #: Whether a new Akte must name its Aktenplaneintrag.
    needs_aktenplan: bool

    async def find(self, parent: str | None, daten: Objektdaten) -> str | None:
        """The address of the object with ``daten.uuid``, or ``None`` if there is none.

        Raises:
            PermanentDeliveryError: the UUID names an object of another kind, or more
                than one object.
        """
        ...

    async def create(self, parent: str | None, daten: Objektdaten) -> str:
        """Create the object under ``parent`` (``None``: top level) and return its address."""
        ...

    async def add_content(
        self, dokument: str, dateiname: str, open_source: Opener, sha256: str, size: int
    ) -> Inhalt:
        """Store one primary document's bytes in ``dokument`` under ``dateiname``.

        The backend checks the bytes against ``sha256`` and ``size`` on the way.
        """
        ...

    async def read(self, adresse: str) -> DmsObjekt:
        """Read one object: its data, children's addresses and content objects.

        Raises:
            PermanentDeliveryError: no object at that address.
        """
        ...

    async def read_content(self, inhalt: Inhalt, target: Path) -> str:
        """Write a content object's bytes to ``target``; their SHA-256 (hex)."""
        ...

    async def locate(self, uuid: str) -> str | None:
        """The address of the object with xdomea UUID ``uuid`` anywhere in the DMS, or ``None``.

        Raises:
            PermanentDeliveryError: more than one object carries the UUID.
        """
        ...

    async def search(self, begriff: str, *, limit: int) -> tuple[Treffer, ...]:
        """Objects filed by the gateway whose Betreff or Kennzeichen contains ``begriff``."""
        ...

    async def read_fachdaten(self, adresse: str, namen: Sequence[str]) -> dict[str, str]:
        """The named Fachdaten (custom metadata) of the object; unset ones are left out."""
        ...

    async def write_fachdaten(self, adresse: str, werte: Mapping[str, str]) -> None:
        """Set Fachdaten (custom metadata) of an object; others stay as they are."""
        ...

    async def probe(self) -> None:
        """Check that the DMS answers.

        Raises:
            TransientDeliveryError: it does not (unreachable, failing, not mounted).
        """
        ...

    async def close(self) -> None:
        """Release connections and other resources."""
        ...
