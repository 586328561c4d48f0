"""Inputs of the xdomea message builders: what to write, not how to write it.

These immutable specs describe a Schriftgutobjekt tree and the outcome per object
of an import; ``adapters.xdomea.builders`` and ``adapters.xdomea.receipts`` turn
them into schema-valid XML of any supported version. Parties (Absender and
Empfänger) are ``contracts.xdomea.Kontakt``, the same model the reader returns, so
what is written can be compared with what is read back.

The tree is typed the way xdomea nests it: an Akte holds Dokumente, Vorgänge and
Teilakten, a Vorgang holds Dokumente and Teilvorgänge, a Dokument holds versions
of its primary files. Keeping the kinds in separate fields rules out trees no
version can express (a Vorgang containing an Akte) and fixes the order the
schemas demand, which ``kinder`` reports.
"""

from __future__ import annotations

from datetime import date
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def new_uuid() -> str:
    """A fresh xdomea UUID (random, lower case)."""
    return str(uuid4())


class FormatSpec(_Frozen):
    """One format of a document version: a primary file and what kind of file it is."""

    dateiname: str = Field(
        description=(
            "file name inside the container; the schemas want it to start with a UUID "
            "(2.x: '<uuid>_<name>.<ext>')"
        )
    )
    code: str = Field(default="018", description="Dateiformat code, e.g. 018 pdf, 044 PDF/A")
    version: str = Field(default="1.7", description="version of the file format, e.g. 1.7, 1b")
    codeliste_version: str = Field(
        default="1.0",
        description=(
            "version of the Dateiformat code list, written as listVersionID: 3.x requires "
            "it, 2.x fixes it at 1.0"
        ),
    )


class VersionSpec(_Frozen):
    """A numbered version of a document with one or more formats."""

    nummer: str = "1"
    formate: tuple[FormatSpec, ...] = Field(min_length=1)


class DokumentSpec(_Frozen):
    """A Dokument with its versions, in an Akte, in a Vorgang or at the top level of a message."""

    uuid: str = Field(default_factory=new_uuid)
    betreff: str | None = None
    kennzeichen: str | None = None
    fremdes_geschaeftszeichen: str | None = Field(
        default=None, description="the sender's reference; marks an incoming letter"
    )
    posteingangsdatum: date | None = Field(default=None, description="date it came in by post")
    versionen: tuple[VersionSpec, ...] = ()

    @property
    def kinder(self) -> tuple[SchriftgutobjektSpec, ...]:
        """Child objects in written order (a Dokument has none here)."""
        return ()

    @classmethod
    def with_file(
        cls,
        dateiname: str,
        *,
        uuid: str | None = None,
        betreff: str | None = None,
        kennzeichen: str | None = None,
        code: str = "018",
        format_version: str = "1.7",
    ) -> DokumentSpec:
        """A document with one version holding one primary file, the common case."""
        fmt = FormatSpec(dateiname=dateiname, code=code, version=format_version)
        return cls(
            uuid=uuid or new_uuid(),
            betreff=betreff,
            kennzeichen=kennzeichen,
            versionen=(VersionSpec(formate=(fmt,)),),
        )


class VorgangSpec(_Frozen):
    """A Vorgang (or, nested in a Vorgang, a Teilvorgang)."""

    uuid: str = Field(default_factory=new_uuid)
    betreff: str | None = None
    kennzeichen: str | None = None
    dokumente: tuple[DokumentSpec, ...] = ()
    teilvorgaenge: tuple[VorgangSpec, ...] = ()

    @property
    def kinder(self) -> tuple[SchriftgutobjektSpec, ...]:
        """Child objects in the order every version's schema writes them."""
        return (*self.dokumente, *self.teilvorgaenge)


class AkteSpec(_Frozen):
    """An Akte (or, nested in an Akte, a Teilakte).

    xdomea 2.x cannot hold Dokumente and Vorgänge directly in the same Akte (its
    ``Akteninhalt`` is a choice); the 2.x builders refuse such a spec.
    """

    uuid: str = Field(default_factory=new_uuid)
    betreff: str | None = None
    kennzeichen: str | None = None
    dokumente: tuple[DokumentSpec, ...] = ()
    vorgaenge: tuple[VorgangSpec, ...] = ()
    teilakten: tuple[AkteSpec, ...] = ()

    @property
    def kinder(self) -> tuple[SchriftgutobjektSpec, ...]:
        """Child objects in the order every version's schema writes them."""
        return (*self.dokumente, *self.vorgaenge, *self.teilakten)


#: What may stand at the top level of a message (``Schriftgutobjekt``).
SchriftgutobjektSpec = AkteSpec | VorgangSpec | DokumentSpec


class SendendesSystem(_Frozen):
    """The sending system named in the Kopf (required there by xdomea 2.x)."""

    produktname: str = "ikz-gateway"
    version: str | None = None
    instanz_id: str | None = None


class ObjectResult(_Frozen):
    """Outcome of importing one Schriftgutobjekt, reported in a 0402 or 0506."""

    erfolgreich: bool = True
    fehlermeldungen: tuple[str, ...] = ()
    archivkennung: str | None = Field(
        default=None, description="the archive's signature for the object (0506 only)"
    )

    @classmethod
    def ok(cls, archivkennung: str | None = None) -> ObjectResult:
        """A successful import, optionally with the archive's signature."""
        return cls(erfolgreich=True, archivkennung=archivkennung)

    @classmethod
    def failed(cls, *fehlermeldungen: str) -> ObjectResult:
        """A failed import with the reasons to report back."""
        return cls(erfolgreich=False, fehlermeldungen=fehlermeldungen)


def primaerdokument_name(name: str, uuid: str | None = None) -> str:
    """A container file name every version's schema accepts: ``<uuid>_<name>``.

    The 2.x schemas demand the UUID prefix and an extension; 3.x still wants the UUID.
    """
    return f"{uuid or new_uuid()}_{name}"
