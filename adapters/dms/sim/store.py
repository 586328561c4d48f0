"""The simulator's durable object store: one SQLite file in the data folder.

Objects get Fabasoft-like addresses (``COO.2150.9151.1.<n>``). Each object has a
class, an optional parent, a name, its interface fields and its Fachdaten (user
form values) as JSON, and — for content objects — its bytes. Every write is one
transaction (WAL, ``synchronous=FULL``), so an answered request is on disk and a
restarted simulator sees it. The store is used from worker threads, one call at
a time (a lock), which is plenty for a test double.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_PREFIX = "COO.2150.9151.1."

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    objclass TEXT NOT NULL,
    parent TEXT,
    objname TEXT NOT NULL,
    fields TEXT NOT NULL,
    userforms TEXT NOT NULL,
    created_at TEXT NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS objects_parent ON objects(parent);
CREATE TABLE IF NOT EXISTS contents (
    id INTEGER PRIMARY KEY REFERENCES objects(id),
    data BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class Objekt:
    """One stored object."""

    address: str
    objclass: str
    parent: str | None
    objname: str
    fields: dict[str, Any] = field(default_factory=dict)
    userforms: dict[str, str] = field(default_factory=dict)
    created_at: str = ""


class Store:
    """Objects and contents in ``<data>/dmsin-sim.sqlite``."""

    def __init__(self, data: Path) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self.path = data / "dmsin-sim.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def create(
        self,
        objclass: str,
        parent: str | None,
        objname: str,
        fields: dict[str, Any],
        userforms: dict[str, str],
        content: bytes | None = None,
    ) -> Objekt:
        """Store a new object (and its bytes) in one transaction."""
        created_at = datetime.now(UTC).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT INTO objects (objclass, parent, objname, fields, userforms, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        objclass,
                        parent,
                        objname,
                        json.dumps(fields, default=str),
                        json.dumps(userforms),
                        created_at,
                    ),
                )
                row_id = cursor.lastrowid
                if content is not None:
                    self._db.execute(
                        "INSERT INTO contents (id, data) VALUES (?, ?)", (row_id, content)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Objekt(
            address=f"{_PREFIX}{row_id}",
            objclass=objclass,
            parent=parent,
            objname=objname,
            fields=fields,
            userforms=userforms,
            created_at=created_at,
        )

    def get(self, address: str) -> Objekt | None:
        """The live (not cancelled) object at ``address``."""
        row_id = _row_id(address)
        if row_id is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT id, objclass, parent, objname, fields, userforms, created_at "
                "FROM objects WHERE id = ? AND cancelled = 0",
                (row_id,),
            ).fetchone()
        return _objekt(row) if row else None

    def children(self, address: str) -> list[Objekt]:
        """Live children in creation order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, objclass, parent, objname, fields, userforms, created_at "
                "FROM objects WHERE parent = ? AND cancelled = 0 ORDER BY id",
                (address,),
            ).fetchall()
        return [_objekt(row) for row in rows]

    def all(self, *, include_cancelled: bool = False) -> list[Objekt]:
        """Every object in creation order."""
        where = "" if include_cancelled else "WHERE cancelled = 0"
        with self._lock:
            rows = self._db.execute(
                "SELECT id, objclass, parent, objname, fields, userforms, created_at "
                f"FROM objects {where} ORDER BY id"
            ).fetchall()
        return [_objekt(row) for row in rows]

    def content(self, address: str) -> bytes | None:
        """The bytes of a content object."""
        row_id = _row_id(address)
        if row_id is None:
            return None
        with self._lock:
            row = self._db.execute("SELECT data FROM contents WHERE id = ?", (row_id,)).fetchone()
        return bytes(row[0]) if row else None

    def set_userforms(self, address: str, values: dict[str, str]) -> None:
        """Merge Fachdaten values into an object's."""
        objekt = self.get(address)
        if objekt is None:
            raise KeyError(address)
        merged = {**objekt.userforms, **values}
        with self._lock:
            self._db.execute(
                "UPDATE objects SET userforms = ? WHERE id = ?",
                (json.dumps(merged), _row_id(address)),
            )

    def cancel(self, address: str) -> bool:
        """Mark an object cancelled (storniert); whether it was live."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE objects SET cancelled = 1 WHERE id = ? AND cancelled = 0",
                (_row_id(address),),
            )
        return cursor.rowcount == 1


def _row_id(address: str) -> int | None:
    if not address.startswith(_PREFIX):
        return None
    try:
        return int(address[len(_PREFIX) :])
    except ValueError:
        return None


def _objekt(row: tuple[Any, ...]) -> Objekt:
    return Objekt(
        address=f"{_PREFIX}{row[0]}",
        objclass=row[1],
        parent=row[2],
        objname=row[3],
        fields=json.loads(row[4]),
        userforms=json.loads(row[5]),
        created_at=row[6],
    )
