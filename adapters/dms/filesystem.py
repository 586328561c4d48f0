"""The embedded DMS: one folder per Akte, Vorgang and Dokument, metadata as JSON.

Layout under the configured root (which must exist; a missing mount point is
never papered over by creating it)::

    <root>/<uuid>/objekt.json           a top-level object (lower-case xdomea UUID)
    <root>/<uuid>/<uuid>/objekt.json    its children, nested as in xdomea
    <root>/…/<uuid>/inhalte/<name>      a Dokument's primary documents (name %-quoted)
    <root>/…/<uuid>/fachdaten.json      Fachdaten (custom metadata) set by FVDaten requests

An object's address is its folder path relative to the root. Because the folder
name is the object's UUID, the import is idempotent by construction: ``find`` is
an existence check, and ``create`` builds the folder under a temporary name and
renames it into place (atomic; an existing folder wins), so a crash leaves either
the whole object or only a hidden ``.part`` folder, never half an object.
Documents are written to a temporary file, checked against their SHA-256,
fsync'd and hard-linked to their name (fails if the name is taken).

Errors: a missing or unwritable root is transient (an operator mounts or fixes
it); different bytes under an existing document name and addresses outside the
root are permanent.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote

from contracts.dms import DmsObjekt, Inhalt, Objektdaten, Opener, Treffer
from contracts.xdomea import SchriftgutobjektArt, uuid_key
from gateway.durable import create_exclusive, file_sha256, fsync_dir
from gateway.errors import PermanentDeliveryError, TransientDeliveryError

_META = "objekt.json"
_FACHDATEN = "fachdaten.json"
_INHALTE = "inhalte"
_CHUNK = 1024 * 1024


class FilesystemDms:
    """The DMS port on a local or mounted folder."""

    top_level = frozenset(SchriftgutobjektArt)
    needs_aktenplan = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.where = str(self.root)

    async def find(self, parent: str | None, daten: Objektdaten) -> str | None:
        """The address of ``daten.uuid`` under ``parent``, or ``None``."""
        return await asyncio.to_thread(self._find, parent, daten)

    async def create(self, parent: str | None, daten: Objektdaten) -> str:
        """Create the object's folder under ``parent`` atomically; its address."""
        return await asyncio.to_thread(self._create, parent, daten)

    async def add_content(
        self, dokument: str, dateiname: str, open_source: Opener, sha256: str, size: int
    ) -> Inhalt:
        """Store one document's bytes under ``dateiname``, checked against ``sha256``."""
        return await asyncio.to_thread(
            self._add_content, dokument, dateiname, open_source, sha256, size
        )

    async def read(self, adresse: str) -> DmsObjekt:
        """Read an object folder: metadata, children, content objects."""
        return await asyncio.to_thread(self._read, adresse)

    async def read_content(self, inhalt: Inhalt, target: Path) -> str:
        """Copy a document to ``target``; its SHA-256."""
        return await asyncio.to_thread(self._read_content, inhalt, target)

    async def locate(self, uuid: str) -> str | None:
        """The folder holding ``uuid`` at any depth, or ``None``."""
        return await asyncio.to_thread(self._locate, uuid)

    async def search(self, begriff: str, *, limit: int) -> tuple[Treffer, ...]:
        """Objects whose Betreff or Kennzeichen contains ``begriff`` (case-insensitive)."""
        return await asyncio.to_thread(self._search, begriff, limit)

    async def read_fachdaten(self, adresse: str, namen: Sequence[str]) -> dict[str, str]:
        """The named values from the object's ``fachdaten.json``."""
        stored = await asyncio.to_thread(self._fachdaten, adresse)
        return {name: stored[name] for name in namen if name in stored}

    async def write_fachdaten(self, adresse: str, werte: Mapping[str, str]) -> None:
        """Merge ``werte`` into the object's ``fachdaten.json`` (replaced atomically)."""
        await asyncio.to_thread(self._write_fachdaten, adresse, werte)

    async def probe(self) -> None:
        """The root folder must exist (a missing mount is the usual outage)."""
        await asyncio.to_thread(self._check_root)

    async def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ in threads

    def _folder(self, adresse: str | None) -> Path:
        if not adresse:
            return self.root
        parts = PurePosixPath(adresse).parts
        if PurePosixPath(adresse).is_absolute() or any(p in ("..", ".") for p in parts):
            raise PermanentDeliveryError(
                f"{adresse!r} is not an address in the filesystem DMS {self.root}; addresses "
                "are folder paths relative to its root"
            )
        return self.root.joinpath(*parts)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise TransientDeliveryError(
                f"the DMS folder {self.root} does not exist or is no folder; check that it "
                "is mounted and configured as the destination's directory"
            )

    def _find(self, parent: str | None, daten: Objektdaten) -> str | None:
        self._check_root()
        folder = self._folder(parent) / uuid_key(daten.uuid)
        meta = folder / _META
        if not meta.is_file():
            return None
        existing = _load(meta).daten
        if _group(existing.art) != _group(daten.art):
            raise PermanentDeliveryError(
                f"{folder} holds a {existing.art.value} with UUID {daten.uuid}, but the message "
                f"has a {daten.art.value} with that UUID; every object needs its own UUID"
            )
        return _address(parent, uuid_key(daten.uuid))

    def _objects(self) -> Iterator[tuple[str, Path]]:
        """Every object folder's address and metadata file, parents before children."""
        for folder, subfolders, files in os.walk(self.root):
            # Hidden folders are half-made objects (".part") and not searched.
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            if _META in files and folder != str(self.root):
                yield Path(folder).relative_to(self.root).as_posix(), Path(folder) / _META

    def _locate(self, uuid: str) -> str | None:
        self._check_root()
        name = uuid_key(uuid)
        found = [adresse for adresse, _ in self._objects() if adresse.rsplit("/", 1)[-1] == name]
        if len(found) > 1:
            raise PermanentDeliveryError(
                f"{len(found)} objects in the DMS {self.root} carry the xdomea UUID {uuid} "
                f"({', '.join(found)}); remove all but one"
            )
        return found[0] if found else None

    def _search(self, begriff: str, limit: int) -> tuple[Treffer, ...]:
        self._check_root()
        wanted = begriff.casefold()
        treffer: list[Treffer] = []
        for adresse, meta in self._objects():
            daten = _load(meta).daten
            texts = (daten.betreff or "", daten.kennzeichen or "")
            if any(wanted in text.casefold() for text in texts):
                treffer.append(
                    Treffer(adresse=adresse, art=daten.art, uuid=daten.uuid, betreff=daten.betreff)
                )
                if len(treffer) >= limit:
                    break
        return tuple(treffer)

    def _fachdaten(self, adresse: str) -> dict[str, str]:
        self._check_root()
        folder = self._folder(adresse)
        if not (folder / _META).is_file():
            raise PermanentDeliveryError(f"no object at {adresse!r} in the DMS {self.root}")
        path = folder / _FACHDATEN
        if not path.is_file():
            return {}
        stored: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return stored

    def _write_fachdaten(self, adresse: str, werte: Mapping[str, str]) -> None:
        merged = {**self._fachdaten(adresse), **werte}
        folder = self._folder(adresse)
        temp = folder / f".{_FACHDATEN}.{secrets.token_hex(4)}.part"
        try:
            _write_synced(temp, json.dumps(merged, ensure_ascii=False, sort_keys=True).encode())
            os.replace(temp, folder / _FACHDATEN)
            fsync_dir(folder)
        except OSError as exc:
            raise TransientDeliveryError(
                f"cannot write the Fachdaten of {adresse!r} in the DMS folder {folder}: "
                f"{exc.strerror or exc}; check that it is writable and has space"
            ) from exc
        finally:
            temp.unlink(missing_ok=True)

    def _create(self, parent: str | None, daten: Objektdaten) -> str:
        self._check_root()
        parent_folder = self._folder(parent)
        if parent is not None and not (parent_folder / _META).is_file():
            raise PermanentDeliveryError(f"no object at {parent!r} in the DMS {self.root}")
        name = uuid_key(daten.uuid)
        temp = parent_folder / f".{name}.{secrets.token_hex(4)}.part"
        try:
            temp.mkdir()
            (temp / _INHALTE).mkdir()
            record = {"created_ns": time.time_ns(), "daten": daten.model_dump(mode="json")}
            _write_synced(temp / _META, json.dumps(record, ensure_ascii=False).encode())
            fsync_dir(temp)
            try:
                os.rename(temp, parent_folder / name)
            except OSError as exc:
                # An earlier attempt made it (a lost answer, a crash after the rename).
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            fsync_dir(parent_folder)
        except OSError as exc:
            raise TransientDeliveryError(
                f"cannot create {daten.art.value} {daten.uuid} in the DMS folder "
                f"{parent_folder}: {exc.strerror or exc}; check that it is writable and has space"
            ) from exc
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return _address(parent, name)

    def _add_content(
        self, dokument: str, dateiname: str, open_source: Opener, sha256: str, size: int
    ) -> Inhalt:
        self._check_root()
        folder = self._folder(dokument) / _INHALTE
        target = folder / quote(dateiname, safe="")
        temp = folder / f".{secrets.token_hex(8)}.part"
        adresse = f"{dokument}/{_INHALTE}/{target.name}"
        try:
            try:
                with open_source() as source, create_exclusive(temp) as sink:
                    digest = hashlib.sha256()
                    written = 0
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        written += len(chunk)
                        sink.write(chunk)
                    if digest.hexdigest() != sha256 or written != size:
                        raise PermanentDeliveryError(
                            f"{dateiname} read {written} bytes with SHA-256 {digest.hexdigest()}"
                            f", the container said {size} bytes with {sha256}; the container "
                            "changed during the import. Replay the message"
                        )
                    sink.flush()
                    os.fsync(sink.fileno())
                try:
                    os.link(temp, target)
                except FileExistsError:
                    if file_sha256(target) != sha256:
                        raise PermanentDeliveryError(
                            f"Dokument {dokument} already holds {dateiname!r} with other bytes; "
                            "compare both versions, remove the wrong one, and replay"
                        ) from None
                fsync_dir(folder)
            finally:
                temp.unlink(missing_ok=True)
        except OSError as exc:
            raise TransientDeliveryError(
                f"cannot store {dateiname!r} in the DMS folder {folder}: "
                f"{exc.strerror or exc}; check that it is writable and has space"
            ) from exc
        return Inhalt(adresse=adresse, dateiname=dateiname, size=size)

    def _read(self, adresse: str) -> DmsObjekt:
        self._check_root()
        folder = self._folder(adresse)
        meta = folder / _META
        if not meta.is_file():
            raise PermanentDeliveryError(f"no object at {adresse!r} in the DMS {self.root}")
        record = _load(meta)
        kinder = sorted(
            (
                (_load(child / _META).created_ns, _address(adresse, child.name))
                for child in folder.iterdir()
                if child.is_dir() and not child.name.startswith(".") and (child / _META).is_file()
            ),
        )
        inhalte_folder = folder / _INHALTE
        inhalte = tuple(
            Inhalt(
                adresse=f"{adresse}/{_INHALTE}/{path.name}",
                dateiname=unquote(path.name),
                size=path.stat().st_size,
            )
            for path in sorted(inhalte_folder.iterdir() if inhalte_folder.is_dir() else ())
            if not path.name.startswith(".")
        )
        return DmsObjekt(
            adresse=adresse,
            daten=record.daten,
            kinder=tuple(a for _, a in kinder),
            inhalte=inhalte,
        )

    def _read_content(self, inhalt: Inhalt, target: Path) -> str:
        source = self._folder(inhalt.adresse)
        digest = hashlib.sha256()
        try:
            with source.open("rb") as reader, target.open("wb") as writer:
                while chunk := reader.read(_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
        except FileNotFoundError as exc:
            raise PermanentDeliveryError(
                f"no document at {inhalt.adresse!r} in the DMS {self.root}"
            ) from exc
        return digest.hexdigest()


class _Record:
    def __init__(self, created_ns: int, daten: Objektdaten) -> None:
        self.created_ns = created_ns
        self.daten = daten


def _load(meta: Path) -> _Record:
    record = json.loads(meta.read_text(encoding="utf-8"))
    return _Record(int(record["created_ns"]), Objektdaten.model_validate(record["daten"]))


def _group(art: SchriftgutobjektArt) -> str:
    # Akte/Teilakte and Vorgang/Teilvorgang are the same object at another depth.
    return art.value.removeprefix("Teil").lower()


def _address(parent: str | None, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _write_synced(path: Path, data: bytes) -> None:
    with create_exclusive(path) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
