"""Receipts outbox: the receipts (0403, 0402) the gateway owes for accepted messages.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.journal.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the ``receipts`` table. A migration is a frozen snapshot: never edit it later."""
    op.create_table(
        "receipts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "message_id",
            sa.String(36),
            sa.ForeignKey("messages.id", name="fk_receipts_message_id"),
            nullable=False,
        ),
        sa.Column("code", sa.String(4), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("ready_at", UTCDateTime()),
        sa.Column("results", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("receipt_message_id", sa.String(36)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("message_id", "code", name="uq_receipts_message_id_code"),
    )
    op.create_index("ix_receipts_due", "receipts", ["state", "next_attempt_at"])


def downgrade() -> None:
    """Drop the receipts outbox (only for development databases)."""
    op.drop_table("receipts")
