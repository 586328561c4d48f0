"""Abgaben started by this node's operator, and their completion action.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.journal.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OPEN = "state IN ('starting', 'open')"


def upgrade() -> None:
    """Create the ``abgaben`` table. A migration is a frozen snapshot: never edit it later."""
    op.create_table(
        "abgaben",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("akte", sa.String(500), nullable=False),
        sa.Column("partner_id", sa.String(100), nullable=False),
        sa.Column("prozess_id", sa.String(100), nullable=False),
        sa.Column(
            "message_id",
            sa.String(36),
            sa.ForeignKey("messages.id", name="fk_abgaben_message_id"),
        ),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("completion_action", sa.String(20), nullable=False),
        sa.Column("completion_state", sa.String(20)),
        sa.Column("completion_detail", sa.Text),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("prozess_id", name="uq_abgaben_prozess_id"),
    )
    op.create_index("ix_abgaben_state", "abgaben", ["state"])
    op.create_index(
        "uq_abgaben_open",
        "abgaben",
        ["akte", "partner_id"],
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    """Drop the abgaben table (only for development databases)."""
    op.drop_table("abgaben")
