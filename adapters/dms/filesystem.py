"""The embedded DMS: one folder per Akte, Vorgang and Dokument, metadata as JSON.

Layout under the configured root (which must exist; a missing mount point is
never papered over by creating it)::

    <root>/<uuid>/objekt.json           a top-level object (lower-case xdomea UUID)
    <root>/<uuid>/<uuid>/objekt.json    its children, nested as in xdomea
    <root>/…/<uuid>/inhalte/<name>      a Dokument's primary documents (name %-quoted)

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
from datetime import datetime
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote

from contracts.dms import DmsObjekt, Inhalt, Objektdaten, Opener
from contracts.xdomea import SchriftgutobjektArt, uuid_key
from gateway.durable import create_exclusive, file_sha256, fsync_dir
from gateway.errors import PermanentDeliveryError, TransientDeliveryError

_META = "objekt.json"
#: Fachdaten set after the import (e.g. after an Aussonderung), beside the metadata.
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

    async def mark(self, adresse: str, field: str, value: str) -> None:
        """Set a Fachdatum, kept in the object's ``fachdaten.json``."""
        await asyncio.to_thread(self._set_fachdaten, adresse, {field: value})

    async def set_disposal_date(self, adresse: str, when: datetime) -> None:
        """Record the disposal date as the Fachdatum ``offltscheduled`` (as dmsin names it)."""
        await asyncio.to_thread(self._set_fachdaten, adresse, {"offltscheduled": when.isoformat()})

    def fachdaten(self, adresse: str) -> dict[str, str]:
        """The Fachdaten set on an object (empty when none were set)."""
        path = self._folder(adresse) / _FACHDATEN
        return dict(json.loads(path.read_bytes())) if path.is_file() else {}

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

    def _set_fachdaten(self, adresse: str, values: dict[str, str]) -> None:
        folder = self._folder(adresse)
        if not (folder / _META).is_file():
            raise PermanentDeliveryError(f"no object {adresse!r} in the filesystem DMS {self.root}")
        merged = {**self.fachdaten(adresse), **values}
        temp = folder / f".{_FACHDATEN}.{secrets.token_hex(4)}"
        _write_synced(temp, json.dumps(merged, ensure_ascii=False, sort_keys=True).encode())
        os.replace(temp, folder / _FACHDATEN)
        fsync_dir(folder)

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
