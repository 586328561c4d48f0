"""The journal's tables (SQLAlchemy Core), shared by the SQLite and PostgreSQL backends.

Schema changes go through Alembic migrations in ``migrations/versions``; this
module is the current shape the code reads and writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("journal timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value  # type: ignore[no-any-return]


_ID = BigInteger().with_variant(Integer(), "sqlite")

messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("partner_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("idempotency_key", String(200)),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("blob_sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("content_kind", String(16), nullable=False),
    Column("file_name", String(500)),
    Column("prozess_id", String(100), nullable=False),
    Column("nachrichtentyp", String(4), nullable=False),
    Column("message_element", String(100), nullable=False),
    Column("xdomea_version", String(10), nullable=False),
    Column("absender", String(200), nullable=False),
    Column("empfaenger", String(200), nullable=False),
    UniqueConstraint("partner_id", "idempotency_key"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("message_id", String(36), ForeignKey("messages.id"), nullable=False),
    Column("destination", String(100), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    # Start of the current retry budget (max age); reset when a dead letter is replayed.
    Column("window_started_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime()),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    UniqueConstraint("message_id", "destination"),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("delivery_id", _ID, ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("worker", String(100), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("outcome", String(20)),
    Column("error", Text),
)

events = Table(
    "events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("message_id", String(36), ForeignKey("messages.id"), nullable=False, index=True),
    Column("delivery_id", _ID, ForeignKey("deliveries.id")),
    Column("kind", String(40), nullable=False),
    Column("detail", Text),
)

#: The receipts this gateway owes for messages it accepted (an outbox): written in the
#: same transaction as the message (and, for the import receipt, as the delivery
#: outcome that made it due), produced later by ``gateway.receipts``. A crash
#: between accepting a message and producing its receipt therefore loses nothing.
receipts = Table(
    "receipts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("message_id", String(36), ForeignKey("messages.id"), nullable=False),
    Column("code", String(4), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    # When it became due: the receipt's Erstellungszeitpunkt, so that producing it
    # again after a crash yields the same bytes (and intake recognises the repeat).
    Column("ready_at", UTCDateTime()),
    # The per-object import results (JSON, UUID -> ObjectResult) for an import receipt.
    Column("results", Text),
    Column("last_error", Text),
    Column("receipt_message_id", String(36)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("message_id", "code"),
    Index("ix_receipts_due", "state", "next_attempt_at"),
)

#: The Abgaben this node's operator started (``abgabe start``): which DMS object went
#: to which partner under which ProzessID, and the completion action once the
#: partner's 0402 arrived. At most one open Abgabe per Akte and partner (the partial
#: unique index), so starting it again returns the open one.
abgaben = Table(
    "abgaben",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("akte", String(500), nullable=False),
    Column("partner_id", String(100), nullable=False),
    Column("prozess_id", String(100), nullable=False, unique=True),
    Column("message_id", String(36), ForeignKey("messages.id")),
    Column("state", String(20), nullable=False),
    Column("completion_action", String(20), nullable=False),
    Column("completion_state", String(20)),
    Column("completion_detail", Text),
    Column("completed_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_abgaben_state", "state"),
    Index(
        "uq_abgaben_open",
        "akte",
        "partner_id",
        unique=True,
        sqlite_where=literal_column("state IN ('starting', 'open')"),
        postgresql_where=literal_column("state IN ('starting', 'open')"),
    ),
)

#: What the Aussonderung engine (``gateway.aussonderung``) keeps beyond the messages:
#: the DMS addresses of the Akten a process offers (``start``), each DMS action done
#: after the archive's answer (``action:<uuid>``), answer files refused at intake
#: (``refused:<sha256>``). One row per (process, key): recording twice keeps the first.
aussonderung_records = Table(
    "aussonderung_records",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("prozess_id", String(100), nullable=False, index=True),
    Column("key", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    UniqueConstraint("prozess_id", "key"),
)


# Processes are looked up by their case-insensitive ProzessID (migration 0007).
Index("ix_messages_prozess_key", func.lower(messages.c.prozess_id))
Index("ix_abgaben_prozess_key", func.lower(abgaben.c.prozess_id))
Index("ix_aussonderung_records_prozess_key", func.lower(aussonderung_records.c.prozess_id))


#: The content of small messages, kept in the journal instead of the blob store's
#: files (``[storage] inline_max_bytes``): committed with the message in one
#: transaction, so durable intake costs no file, no fsync of its own and no folder
#: fsync. Addressed by SHA-256 like the blob store; identical content is kept once.
inline_blobs = Table(
    "inline_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("content", LargeBinary, nullable=False),
)
