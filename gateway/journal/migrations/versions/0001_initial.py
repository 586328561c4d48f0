"""Initial journal: messages, deliveries, attempts, events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.journal.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the four tables. A migration is a frozen snapshot: never edit it later."""
    op.create_table(
        "messages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("partner_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_kind", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(500)),
        sa.Column("prozess_id", sa.String(100), nullable=False),
        sa.Column("nachrichtentyp", sa.String(4), nullable=False),
        sa.Column("message_element", sa.String(100), nullable=False),
        sa.Column("xdomea_version", sa.String(10), nullable=False),
        sa.Column("absender", sa.String(200), nullable=False),
        sa.Column("empfaenger", sa.String(200), nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_messages_dedup_key"),
        sa.UniqueConstraint(
            "partner_id", "idempotency_key", name="uq_messages_partner_id_idempotency_key"
        ),
    )
    op.create_index("ix_messages_prozess_id", "messages", ["prozess_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "message_id",
            sa.String(36),
            sa.ForeignKey("messages.id", name="fk_deliveries_message_id"),
            nullable=False,
        ),
        sa.Column("destination", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("window_started_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.UniqueConstraint(
            "message_id", "destination", name="uq_deliveries_message_id_destination"
        ),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at"])
    op.create_table(
        "attempts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            _ID,
            sa.ForeignKey("deliveries.id", name="fk_attempts_delivery_id"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(100), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("outcome", sa.String(20)),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_attempts_delivery_id", "attempts", ["delivery_id"])
    op.create_table(
        "events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column(
            "message_id",
            sa.String(36),
            sa.ForeignKey("messages.id", name="fk_events_message_id"),
            nullable=False,
        ),
        sa.Column("delivery_id", _ID, sa.ForeignKey("deliveries.id", name="fk_events_delivery_id")),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_events_message_id", "events", ["message_id"])


def downgrade() -> None:
    """Drop everything (only for development databases)."""
    for table in ("events", "attempts", "deliveries", "messages"):
        op.drop_table(table)
