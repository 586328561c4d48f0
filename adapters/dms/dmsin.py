"""The DMS port on Fabasoft eGov-Suite through its dmsin SOAP interface.

Which call files what (``docs/dms-mapping.md`` has every field):

* Akte → ``CreateFileGI`` under its Aktenplaneintrag (``apentry``);
* Teilakte, Vorgang, Teilvorgang → ``CreateProcedureGI`` under the parent
  (``referrednumber``) — dmsin has two container levels, deeper xdomea
  structure becomes Vorgänge in Vorgängen, and the xdomea kind is kept;
* Dokument → ``CreateIncomingGI`` (Eingang) or ``CreateInternalGI``;
* each primary document → ``CreateContentObjectGI`` in its Dokument.

Idempotency: every object is created with two Fachdaten (``userformsdata``) in
the same call, so it never exists without them: the xdomea UUID (lower case) in
``uuid_field``, and everything else of ``Objektdaten`` as JSON in
``metadata_field``. ``find`` searches the UUID with ``SearchObjNameGI``
(``reference``/``value``); content objects are found by name in their Dokument's
``gimetadatatype``. Reading back uses ``ReadMetadataObjectGI`` (class), the class's
``Read…GI`` and ``ReadUserFormsDataGI``. Fields users edit in the DMS (Betreff,
fremdes Geschäftszeichen, Eingangsdatum) win over the stored JSON on export.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path, PurePosixPath
from typing import Any

from adapters.dms import dmsin_names as names
from adapters.dms.dmsin_client import DmsinClient
from contracts.config import DmsinConfig
from contracts.dms import DmsObjekt, Dokumenttyp, Inhalt, Objektdaten, Opener, Treffer
from contracts.xdomea import SchriftgutobjektArt, uuid_key
from gateway.errors import PermanentDeliveryError

_f = names.field
#: A namespace for the stable UUIDs of objects made in the DMS without xdomea data.
_NATIVE = uuidlib.UUID("6f1c9a52-3d1e-4f5e-9b7a-2c4d8e0f1a3b")


class DmsinPort:
    """Files and reads xdomea objects through dmsin."""

    top_level = frozenset({SchriftgutobjektArt.AKTE})
    needs_aktenplan = True

    def __init__(self, config: DmsinConfig, client: DmsinClient | None = None) -> None:
        self.config = config
        self.client = client or DmsinClient(config)
        self.where = self.client.where

    # ------------------------------------------------------------------ find / create

    async def find(self, parent: str | None, daten: Objektdaten) -> str | None:
        """Search the UUID's Fachdatum among objects of the kind's class."""
        response = await self.client.call(
            "SearchObjNameGI",
            searchstring="*",
            objclass=_search_class(daten.art),
            reference=self.config.uuid_field,
            value=uuid_key(daten.uuid),
        )
        found = _refs(response.giobjecttype)
        if not found:
            return None
        if len(found) > 1:
            listed = ", ".join(address for address, _ in found)
            raise PermanentDeliveryError(
                f"{len(found)} objects in {self.where} carry the xdomea UUID {daten.uuid} "
                f"({listed}); a create probably outlived its timeout while the retry made "
                "another. Cancel all but one (CancelObjectGI) and replay the message"
            )
        return found[0][0]

    async def create(self, parent: str | None, daten: Objektdaten) -> str:
        """Create the object with its Fachdaten in one call; its address."""
        common: dict[str, Any] = {
            "shortname": _title(daten),
            "filesubj": daten.betreff,
            "userformsdata": self._userforms(daten),
        }
        if daten.art is SchriftgutobjektArt.AKTE and parent is None:
            response = await self.client.call(
                "CreateFileGI", apentry=daten.aktenplaneintrag, **common
            )
        elif daten.art in (
            SchriftgutobjektArt.AKTE,
            SchriftgutobjektArt.TEILAKTE,
            SchriftgutobjektArt.VORGANG,
            SchriftgutobjektArt.TEILVORGANG,
        ):
            response = await self.client.call("CreateProcedureGI", referrednumber=parent, **common)
        elif daten.dokumenttyp is Dokumenttyp.EINGANG:
            response = await self.client.call(
                "CreateIncomingGI",
                referrednumber=parent,
                foreignnr=daten.fremdes_geschaeftszeichen,
                delivery=_datetime(daten.posteingangsdatum),
                **common,
            )
        else:
            response = await self.client.call("CreateInternalGI", referrednumber=parent, **common)
        return str(response.objid)

    def _userforms(self, daten: Objektdaten) -> dict[str, Any]:
        metadata = daten.model_dump_json(exclude_none=True)
        return {
            _f("GIUserFormsType"): [
                {
                    _f("ufreference"): self.config.uuid_field,
                    _f("ufvalue"): {"string": [uuid_key(daten.uuid)]},
                },
                {
                    _f("ufreference"): self.config.metadata_field,
                    _f("ufvalue"): {"string": [metadata]},
                },
            ]
        }

    # ------------------------------------------------------------------ content

    async def add_content(
        self, dokument: str, dateiname: str, open_source: Opener, sha256: str, size: int
    ) -> Inhalt:
        """Upload one document as a content object, checked on the way and read back."""
        content = await asyncio.to_thread(_read_checked, open_source, dateiname, sha256, size)
        filename, extension = _split(dateiname)
        response = await self.client.call(
            "CreateContentObjectGI",
            referrednumber=dokument,
            giattachmenttype={
                _f("filename"): filename,
                _f("fileextension"): extension,
                _f("filecontent"): content,
                _f("contsize"): str(size),
            },
        )
        del content
        inhalt = Inhalt(adresse=str(response.objid), dateiname=dateiname, size=size)
        if self.config.verify_readback:
            digest = await self._digest(inhalt)
            if digest != sha256:
                raise PermanentDeliveryError(
                    f"{self.where} stored {dateiname!r} as {inhalt.adresse} but returns other "
                    f"bytes (SHA-256 {digest}, sent {sha256}); the DMS changes documents on "
                    "import. Check its conversion settings before replaying"
                )
        return inhalt

    async def read_content(self, inhalt: Inhalt, target: Path) -> str:
        """Download a content object to ``target``; its SHA-256."""
        response = await self.client.call("ReadContentObjectGI", objaddress=inhalt.adresse)
        attachment = response.giattachmenttype
        data: bytes = getattr(attachment, _f("filecontent"), None) or b""
        return await asyncio.to_thread(_write, target, data)

    async def _digest(self, inhalt: Inhalt) -> str:
        response = await self.client.call("ReadContentObjectGI", objaddress=inhalt.adresse)
        data: bytes = getattr(response.giattachmenttype, _f("filecontent"), None) or b""
        return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())

    # ------------------------------------------------------------------ read

    async def read(self, adresse: str) -> DmsObjekt:
        """Read an object's class, fields, children, content objects and Fachdaten."""
        meta = await self.client.call("ReadMetadataObjectGI", objaddress=adresse)
        objclass = str(meta.objclass or "")
        stored = await self._stored(adresse)
        if objclass == names.AKTE:
            response = await self.client.call("ReadFileGI", objaddress=adresse)
            kinder = tuple(a for a, _ in _refs(response.giobjecttype))
            daten = _merge(stored, adresse, SchriftgutobjektArt.AKTE, response.filesubj)
            return DmsObjekt(adresse=adresse, daten=daten, kinder=kinder)
        if objclass == names.VORGANG:
            response = await self.client.call("ReadProcedureGI", objaddress=adresse)
            kinder = tuple(a for a, _ in _refs(response.giobjecttype))
            daten = _merge(stored, adresse, SchriftgutobjektArt.VORGANG, response.filesubj)
            return DmsObjekt(adresse=adresse, daten=daten, kinder=kinder)
        if objclass in names.DOKUMENT_KLASSEN:
            eingang = objclass == names.EINGANG
            operation = "ReadIncomingGI" if eingang else "ReadInternalGI"
            response = await self.client.call(operation, objaddress=adresse)
            daten = _merge(stored, adresse, SchriftgutobjektArt.DOKUMENT, response.filesubj)
            update: dict[str, Any] = {
                "dokumenttyp": Dokumenttyp.EINGANG if eingang else Dokumenttyp.INTERN
            }
            if eingang:
                update["fremdes_geschaeftszeichen"] = response.foreignnr
                update["posteingangsdatum"] = (
                    response.delivery.date() if response.delivery else None
                )
            return DmsObjekt(
                adresse=adresse,
                daten=daten.model_copy(update=update),
                inhalte=_inhalte(response.gimetadatatype),
            )
        raise PermanentDeliveryError(
            f"{adresse} in {self.where} is a {objclass or 'object of unknown class'}; the export "
            "reads Akten, Vorgänge and their Dokumente"
        )

    async def _stored(self, adresse: str) -> Objektdaten | None:
        response = await self.client.call(
            "ReadUserFormsDataGI", objaddress=adresse, reference=self.config.metadata_field
        )
        if not response.value:
            return None
        try:
            return Objektdaten.model_validate_json(response.value)
        except ValueError as exc:
            raise PermanentDeliveryError(
                f"the Fachdatum {self.config.metadata_field} of {adresse} in {self.where} is not "
                f"the gateway's JSON ({str(exc).splitlines()[0]}); someone edited it"
            ) from exc

    # ------------------------------------------------------------------ FVDaten

    async def locate(self, uuid: str) -> str | None:
        """Search the UUID's Fachdatum among Akten, Vorgänge and Dokumente."""
        found: list[str] = []
        for objclass in (names.AKTE, names.VORGANG, names.DOKUMENT):
            response = await self.client.call(
                "SearchObjNameGI",
                searchstring="*",
                objclass=objclass,
                reference=self.config.uuid_field,
                value=uuid_key(uuid),
            )
            found.extend(address for address, _ in _refs(response.giobjecttype))
        if len(found) > 1:
            raise PermanentDeliveryError(
                f"{len(found)} objects in {self.where} carry the xdomea UUID {uuid} "
                f"({', '.join(found)}); cancel all but one (CancelObjectGI)"
            )
        return found[0] if found else None

    async def search(self, begriff: str, *, limit: int) -> tuple[Treffer, ...]:
        """Objects whose title (the Betreff) contains ``begriff``, with their xdomea UUID.

        Objects without the gateway's UUID Fachdatum (made in the DMS by hand) are
        left out: an FVDaten answer names objects by UUID.
        """
        pattern = "*" + begriff.replace("*", "").replace("?", "") + "*"
        treffer: list[Treffer] = []
        for objclass, art in (
            (names.AKTE, SchriftgutobjektArt.AKTE),
            (names.VORGANG, SchriftgutobjektArt.VORGANG),
            (names.DOKUMENT, SchriftgutobjektArt.DOKUMENT),
        ):
            response = await self.client.call(
                "SearchObjNameGI", searchstring=pattern, objclass=objclass
            )
            for address, name in _refs(response.giobjecttype):
                if len(treffer) >= limit:
                    return tuple(treffer)
                uuid = (await self.read_fachdaten(address, [self.config.uuid_field])).get(
                    self.config.uuid_field
                )
                if uuid:
                    treffer.append(Treffer(adresse=address, art=art, uuid=uuid, betreff=name))
        return tuple(treffer)

    async def read_fachdaten(self, adresse: str, namen: Sequence[str]) -> dict[str, str]:
        """``ReadUserFormsDataGI`` per name; unset values are left out."""
        werte: dict[str, str] = {}
        for name in namen:
            response = await self.client.call(
                "ReadUserFormsDataGI", objaddress=adresse, reference=name
            )
            if response.value is not None:
                werte[name] = str(response.value)
        return werte

    async def write_fachdaten(self, adresse: str, werte: Mapping[str, str]) -> None:
        """One ``UpdateUserFormsDataGI`` with every value."""
        await self.client.call(
            "UpdateUserFormsDataGI",
            objaddress=adresse,
            userformsdata={
                _f("GIUserFormsType"): [
                    {_f("ufreference"): name, _f("ufvalue"): {"string": [wert]}}
                    for name, wert in werte.items()
                ]
            },
        )

    async def probe(self) -> None:
        """A search for a UUID no object has: loads the WSDL and makes one round trip."""
        await self.client.call(
            "SearchObjNameGI",
            searchstring="*",
            objclass=names.AKTE,
            reference=self.config.uuid_field,
            value=str(uuidlib.UUID(int=0)),
        )

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.close()


def _search_class(art: SchriftgutobjektArt) -> str:
    if art is SchriftgutobjektArt.AKTE:
        # A top-level Akte is a file; nested, an Akte is a Teilakte and a Vorgang.
        return names.AKTE
    if art in (SchriftgutobjektArt.DOKUMENT, SchriftgutobjektArt.ANLAGE):
        return names.DOKUMENT
    return names.VORGANG


def _title(daten: Objektdaten) -> str | None:
    """The DMS title (``shortname``): the Betreff, as a person filing it would name it."""
    return daten.betreff


def _datetime(value: date | None) -> datetime | None:
    return datetime.combine(value, time(), tzinfo=UTC) if value is not None else None


def _refs(array: Any) -> list[tuple[str, str | None]]:
    items = getattr(array, _f("GIObjectType"), None) or []
    return [(str(getattr(i, _f("objaddress"))), getattr(i, _f("objname"), None)) for i in items]


def _inhalte(array: Any) -> tuple[Inhalt, ...]:
    items = getattr(array, _f("GIMetadataType"), None) or []
    result = []
    for item in items:
        filename = getattr(item, _f("filename"), None) or ""
        extension = getattr(item, _f("fileextension"), None)
        size = getattr(item, _f("contsize"), None)
        result.append(
            Inhalt(
                adresse=str(getattr(item, _f("objaddress"))),
                dateiname=f"{filename}.{extension}" if extension else filename,
                size=int(size) if size and str(size).isdigit() else None,
            )
        )
    return tuple(result)


def _merge(
    stored: Objektdaten | None, adresse: str, art: SchriftgutobjektArt, betreff: str | None
) -> Objektdaten:
    """The stored xdomea data with what the DMS shows now; made up for native objects."""
    if stored is None:
        return Objektdaten(
            art=art, uuid=str(uuidlib.uuid5(_NATIVE, adresse)), betreff=betreff or None
        )
    return stored.model_copy(update={"betreff": betreff or None})


def _split(dateiname: str) -> tuple[str, str | None]:
    """File name and extension as dmsin keeps them (``a.b.pdf`` → ``a.b``, ``pdf``)."""
    suffix = PurePosixPath(dateiname).suffix
    if not suffix or suffix == dateiname:
        return dateiname, None
    return dateiname[: -len(suffix)], suffix[1:]


def _read_checked(open_source: Opener, dateiname: str, sha256: str, size: int) -> bytes:
    with open_source() as source:
        data = source.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256 or len(data) != size:
        raise PermanentDeliveryError(
            f"{dateiname} read {len(data)} bytes with SHA-256 {digest}, the container said "
            f"{size} bytes with {sha256}; the container changed during the import. Replay"
        )
    return data


def _write(target: Path, data: bytes) -> str:
    target.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
