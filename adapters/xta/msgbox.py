"""XTA 2 message boxes and transport records: the XTA adapter's own two tables.

``xta_msgbox`` holds the messages waiting for a partner (put there by the
``xta-msgbox`` destination, fetched and closed by the partner through the
MsgBoxPort); ``xta_transports`` maps the MessageIDs the service hands out
(``createMessageId``) or receives (``sendMessage``) to journaled messages, for
``getTransportReport``. Both live in the journal's database (created by the
journal's migration ``0005``) but only this module reads or writes them.

The store runs SQLAlchemy Core on its own synchronous engine in a thread per
call; SQLite write transactions start with ``BEGIN IMMEDIATE`` (waiting for the
journal's writer rather than failing half-way), PostgreSQL uses psycopg 3.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.errors import JournalUnavailable
from gateway.journal.tables import UTCDateTime

T = TypeVar("T")

metadata = MetaData()
_ID = BigInteger().with_variant(Integer(), "sqlite")

msgbox = Table(
    "xta_msgbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("partner_id", String(200), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("xta_message_id", String(200), nullable=False, unique=True),
    Column("blob_sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_kind", String(16), nullable=False),
    Column("file_name", String(255)),
    Column("nachrichtentyp", String(4), nullable=False),
    Column("prozess_id", String(200), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=False),
    Column("fetched_at", UTCDateTime()),
    Column("closed_at", UTCDateTime()),
    UniqueConstraint("partner_id", "message_id", name="uq_xta_msgbox_partner_message"),
)

transports = Table(
    "xta_transports",
    metadata,
    Column("xta_message_id", String(200), primary_key=True),
    Column("partner_id", String(200), nullable=False),
    Column("message_id", String(36)),
    Column("metadata_xml", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
)

B = msgbox.c
X = transports.c


@dataclass(frozen=True)
class BoxEntry:
    """One message in a partner's box."""

    seq: int
    partner_id: str
    message_id: str
    xta_message_id: str
    blob_sha256: str
    size: int
    content_kind: str
    file_name: str | None
    nachrichtentyp: str
    prozess_id: str
    delivered_at: datetime
    fetched_at: datetime | None


@dataclass(frozen=True)
class Transport:
    """A MessageID the service knows for a partner, and the message sent under it."""

    xta_message_id: str
    partner_id: str
    message_id: str | None
    metadata_xml: str | None
    created_at: datetime
    sent_at: datetime | None


class MessageIdTaken(Exception):
    """A MessageID already names another partner's or another message's transport."""


def box_message_id(message_id: str) -> str:
    """The XTA MessageID under which a journaled message waits in a box."""
    return f"urn:ikz-gateway:message:{message_id}"


class MsgBoxStore:
    """The message boxes and transport records on the journal's database."""

    def __init__(self, engine: Engine) -> None:
        """A store on ``engine`` (see ``from_url``)."""
        self._engine = engine

    @classmethod
    def from_url(cls, url: str) -> MsgBoxStore:
        """The store for a journal URL (``sqlite:///PATH`` or ``postgresql://…``)."""
        if url.startswith("sqlite:///"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(engine, "connect")
            def _configure(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None
                dbapi_connection.execute("PRAGMA busy_timeout=30000")

            @event.listens_for(engine, "begin")
            def _begin(connection: Connection) -> None:
                connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                    "BEGIN IMMEDIATE"
                )

        else:
            driver_url = url.replace("postgresql+psycopg://", "postgresql://", 1).replace(
                "postgresql://", "postgresql+psycopg://", 1
            )
            engine = create_engine(driver_url, pool_size=4, max_overflow=4, pool_pre_ping=True)
        return cls(engine)

    async def close(self) -> None:
        """Release the store's connections."""
        await asyncio.to_thread(self._engine.dispose)

    async def _run(self, transaction: Callable[[Connection], T]) -> T:
        def run() -> T:
            try:
                with self._engine.begin() as conn:
                    return transaction(conn)
            except IntegrityError:
                raise
            except DBAPIError as exc:
                raise JournalUnavailable(f"the XTA message box store failed: {exc.orig}") from exc

        return await asyncio.to_thread(run)

    # ------------------------------------------------------------------ transports

    async def create_message_id(self, partner_id: str, *, prefix: str) -> str:
        """A new MessageID for ``partner_id``, recorded so reports can name it."""
        xta_id = f"{prefix}:{uuid.uuid4()}"
        row = {"xta_message_id": xta_id, "partner_id": partner_id, "created_at": _now()}
        await self._run(lambda conn: conn.execute(insert(transports).values(**row)))
        return xta_id

    async def record_sent(
        self, xta_message_id: str, partner_id: str, message_id: str, metadata_xml: str
    ) -> None:
        """Record that ``partner_id`` sent journaled ``message_id`` under ``xta_message_id``.

        Raises:
            MessageIdTaken: the MessageID belongs to another partner or message.
        """

        def record(conn: Connection) -> None:
            row = conn.execute(select(transports).where(X.xta_message_id == xta_message_id)).first()
            now = _now()
            if row is None:
                conn.execute(
                    insert(transports).values(
                        xta_message_id=xta_message_id,
                        partner_id=partner_id,
                        message_id=message_id,
                        metadata_xml=metadata_xml,
                        created_at=now,
                        sent_at=now,
                    )
                )
                return
            if row.partner_id != partner_id or row.message_id not in (None, message_id):
                raise MessageIdTaken(xta_message_id)
            if row.message_id is None:
                conn.execute(
                    update(transports)
                    .where(X.xta_message_id == xta_message_id, X.message_id.is_(None))
                    .values(message_id=message_id, metadata_xml=metadata_xml, sent_at=now)
                )

        await self._run(record)

    async def transport(self, xta_message_id: str, partner_id: str) -> Transport | None:
        """The transport record of ``xta_message_id`` if it belongs to ``partner_id``."""

        def read(conn: Connection) -> Transport | None:
            row = conn.execute(
                select(transports).where(
                    X.xta_message_id == xta_message_id, X.partner_id == partner_id
                )
            ).first()
            return None if row is None else Transport(**row._asdict())

        return await self._run(read)

    # ------------------------------------------------------------------ boxes

    async def put(
        self,
        partner_id: str,
        *,
        message_id: str,
        blob_sha256: str,
        size: int,
        content_kind: str,
        file_name: str | None,
        nachrichtentyp: str,
        prozess_id: str,
    ) -> bool:
        """Put a journaled message into a partner's box; ``False`` if it is there already."""

        def put(conn: Connection) -> bool:
            existing = conn.execute(
                select(B.id).where(B.partner_id == partner_id, B.message_id == message_id)
            ).first()
            if existing is not None:
                return False
            conn.execute(
                insert(msgbox).values(
                    partner_id=partner_id,
                    message_id=message_id,
                    xta_message_id=box_message_id(message_id),
                    blob_sha256=blob_sha256,
                    size=size,
                    content_kind=content_kind,
                    file_name=file_name,
                    nachrichtentyp=nachrichtentyp,
                    prozess_id=prozess_id,
                    delivered_at=_now(),
                )
            )
            return True

        return await self._run(put)

    async def open_entries(
        self, partner_id: str, *, limit: int, new_only: bool = False, after: int = 0
    ) -> tuple[list[BoxEntry], int]:
        """Open (not closed) entries, oldest first, and how many are open in all."""

        def read(conn: Connection) -> tuple[list[BoxEntry], int]:
            condition = [B.partner_id == partner_id, B.closed_at.is_(None), B.id > after]
            if new_only:
                condition.append(B.fetched_at.is_(None))
            rows = conn.execute(select(msgbox).where(*condition).order_by(B.id).limit(limit)).all()
            total = conn.execute(
                select(func.count()).select_from(msgbox).where(*condition)
            ).scalar_one()
            return [_entry(row) for row in rows], int(total)

        return await self._run(read)

    async def entries(self, partner_id: str, xta_message_ids: Sequence[str]) -> list[BoxEntry]:
        """The open entries of ``partner_id`` among ``xta_message_ids``."""

        def read(conn: Connection) -> list[BoxEntry]:
            rows = conn.execute(
                select(msgbox)
                .where(
                    B.partner_id == partner_id,
                    B.closed_at.is_(None),
                    B.xta_message_id.in_(list(xta_message_ids)),
                )
                .order_by(B.id)
            ).all()
            return [_entry(row) for row in rows]

        return await self._run(read)

    async def mark_fetched(self, seq: int) -> None:
        """Record the first fetch of an entry (InitialFetchedTime)."""
        await self._run(
            lambda conn: conn.execute(
                update(msgbox).where(B.id == seq, B.fetched_at.is_(None)).values(fetched_at=_now())
            )
        )

    async def close_entries(self, partner_id: str, xta_message_ids: Sequence[str]) -> list[str]:
        """Close entries of ``partner_id`` (they leave the box); the ids that were not open."""

        def close(conn: Connection) -> list[str]:
            open_ids = set(
                conn.execute(
                    select(B.xta_message_id).where(
                        B.partner_id == partner_id,
                        B.closed_at.is_(None),
                        B.xta_message_id.in_(list(xta_message_ids)),
                    )
                ).scalars()
            )
            missing = [i for i in xta_message_ids if i not in open_ids]
            if missing:
                return missing  # all or nothing: a bad id closes none
            conn.execute(
                update(msgbox)
                .where(B.partner_id == partner_id, B.xta_message_id.in_(list(open_ids)))
                .values(closed_at=_now())
            )
            return []

        return await self._run(close)


def _entry(row: Any) -> BoxEntry:
    return BoxEntry(
        seq=row.id,
        partner_id=row.partner_id,
        message_id=row.message_id,
        xta_message_id=row.xta_message_id,
        blob_sha256=row.blob_sha256,
        size=row.size,
        content_kind=row.content_kind,
        file_name=row.file_name,
        nachrichtentyp=row.nachrichtentyp,
        prozess_id=row.prozess_id,
        delivered_at=row.delivered_at,
        fetched_at=row.fetched_at,
    )


def _now() -> datetime:
    return datetime.now(UTC)
