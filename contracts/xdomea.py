"""Views of xdomea messages: the Kopf, the Schriftgutobjekt tree, validation findings.

The original XML stays the source of truth; these immutable models are read-only
views extracted from it (``adapters.xdomea.reader``), so nothing in them is ever
written back. UUIDs keep the sender's spelling; compare them with ``uuid_key``.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def uuid_key(value: str) -> str:
    """The comparison key of an xdomea UUID: senders differ in case, the value does not."""
    return value.strip().lower()


class MessageType(_Frozen):
    """A message type as given by the root element, e.g. ``Abgabe.Abgabe.0401``."""

    element: str = Field(description="root element local name, e.g. Abgabe.Abgabe.0401")
    code: str = Field(description="four-digit Nachrichtentyp code, e.g. 0401")

    @property
    def family(self) -> str:
        """The message family ("Bereich"), e.g. ``Abgabe``."""
        return self.element.split(".", 1)[0]

    @property
    def name(self) -> str:
        """The family-qualified name without the code, e.g. ``Abgabe.Abgabe``."""
        return self.element.rsplit(".", 1)[0]

    @classmethod
    def from_element(cls, element: str) -> MessageType:
        """Build from a root element local name."""
        return cls(element=element, code=element.rsplit(".", 1)[1])


class Behoerdenkennung(_Frozen):
    """An agency key: Präfix code plus Behördenschlüssel (3.x) / Kennung (2.x) code."""

    praefix: str | None = None
    kennung: str | None = None
    praefix_name: str | None = None
    kennung_name: str | None = None

    def __str__(self) -> str:
        return f"{self.praefix or ''}:{self.kennung or ''}"


class Kontakt(_Frozen):
    """Absender or Empfänger of a message."""

    behoerdenkennung: Behoerdenkennung | None = None
    institution: str | None = None
    institution_kurz: str | None = None


class Kopf(_Frozen):
    """The message header."""

    prozess_id: str
    nachrichtentyp: str
    erstellungszeitpunkt: datetime | None
    absender: Kontakt
    empfaenger: Kontakt


class SchriftgutobjektArt(StrEnum):
    """Kinds of Schriftgutobjekt in the tree."""

    AKTE = "Akte"
    TEILAKTE = "Teilakte"
    VORGANG = "Vorgang"
    TEILVORGANG = "Teilvorgang"
    DOKUMENT = "Dokument"
    ANLAGE = "Anlage"


class Primaerdokument(_Frozen):
    """A primary document reference: the file name inside the container."""

    dateiname: str
    dateiname_original: str | None = None


class Format(_Frozen):
    """One format of a document version."""

    name_code: str | None
    version: str | None
    primaerdokument: Primaerdokument


class DokumentVersion(_Frozen):
    """A numbered version of a document."""

    nummer: str | None
    formate: tuple[Format, ...] = ()


class Schriftgutobjekt(_Frozen):
    """An Akte, Vorgang or Dokument (or their Teil-/Anlage forms) with its children."""

    art: SchriftgutobjektArt
    uuid: str = Field(description="xdomeaUUID (Identifikation/ID) as the sender spelled it")
    betreff: str | None = None
    kennzeichen: str | None = None
    fremdes_geschaeftszeichen: str | None = Field(
        default=None, description="Dokument only: the sender's reference (an incoming letter)"
    )
    posteingangsdatum: date | None = Field(
        default=None, description="Dokument only: the date it came in by post"
    )
    versionen: tuple[DokumentVersion, ...] = ()
    kinder: tuple[Schriftgutobjekt, ...] = ()
    line: int | None = Field(default=None, description="line of the element in the message")

    @property
    def uuid_key(self) -> str:
        """Case-insensitive comparison key of the UUID."""
        return uuid_key(self.uuid)

    def walk(self) -> tuple[Schriftgutobjekt, ...]:
        """This object and all descendants, depth first."""
        result: list[Schriftgutobjekt] = [self]
        for kind in self.kinder:
            result.extend(kind.walk())
        return tuple(result)

    def dateinamen(self) -> tuple[str, ...]:
        """File names of this object's own primary documents (not its children's)."""
        return tuple(f.primaerdokument.dateiname for v in self.versionen for f in v.formate)


class Nachricht(_Frozen):
    """What the gateway reads from one xdomea message."""

    version: str
    typ: MessageType
    kopf: Kopf
    schriftgutobjekte: tuple[Schriftgutobjekt, ...] = ()

    def walk(self) -> tuple[Schriftgutobjekt, ...]:
        """Every Schriftgutobjekt in document order."""
        result: list[Schriftgutobjekt] = []
        for sgo in self.schriftgutobjekte:
            result.extend(sgo.walk())
        return tuple(result)

    def dateinamen(self) -> tuple[str, ...]:
        """Every referenced ``Primaerdokument/Dateiname``, in document order, with repeats."""
        return tuple(name for sgo in self.walk() for name in sgo.dateinamen())


class Severity(StrEnum):
    """How bad a finding is."""

    ERROR = "error"
    WARNING = "warning"


class Finding(_Frozen):
    """One validation finding with where it is."""

    severity: Severity = Severity.ERROR
    message: str
    line: int | None = None
    path: str | None = Field(default=None, description="element path or container entry")
    source: str = Field(default="schema", description="schema, container or semantic")


class ContainerEntry(_Frozen):
    """One file in a container, with its checksum."""

    name: str
    size: int
    compressed_size: int
    sha256: str
    role: str = Field(description="message, primaerdokument or unreferenced")


class ValidationReport(_Frozen):
    """Result of validating a message or container."""

    path: str
    valid: bool
    version: str | None = None
    message_type: str | None = None
    prozess_id: str | None = None
    findings: tuple[Finding, ...] = ()
    entries: tuple[ContainerEntry, ...] = ()
