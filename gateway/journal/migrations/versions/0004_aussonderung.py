"""Aussonderung records: process start (Akten addresses), DMS actions, refused answers.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.journal.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``aussonderung_records``. A migration is a frozen snapshot: never edit it later."""
    op.create_table(
        "aussonderung_records",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("prozess_id", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("prozess_id", "key", name="uq_aussonderung_records_prozess_id_key"),
    )
    op.create_index("ix_aussonderung_records_prozess_id", "aussonderung_records", ["prozess_id"])


def downgrade() -> None:
    """Drop the Aussonderung records (only for development databases)."""
    op.drop_table("aussonderung_records")
