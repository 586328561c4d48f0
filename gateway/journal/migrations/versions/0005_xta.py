"""XTA 2: message boxes of partners and the MessageIDs of transports (adapters/xta/msgbox.py).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.journal.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``xta_msgbox`` and ``xta_transports``. A frozen snapshot: never edit it later."""
    op.create_table(
        "xta_msgbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("xta_message_id", sa.String(200), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_kind", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(255)),
        sa.Column("nachrichtentyp", sa.String(4), nullable=False),
        sa.Column("prozess_id", sa.String(200), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=False),
        sa.Column("fetched_at", UTCDateTime()),
        sa.Column("closed_at", UTCDateTime()),
        sa.UniqueConstraint("xta_message_id", name="uq_xta_msgbox_xta_message_id"),
        sa.UniqueConstraint("partner_id", "message_id", name="uq_xta_msgbox_partner_message"),
    )
    op.create_index("ix_xta_msgbox_open", "xta_msgbox", ["partner_id", "closed_at", "id"])
    op.create_table(
        "xta_transports",
        sa.Column("xta_message_id", sa.String(200), primary_key=True),
        sa.Column("partner_id", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(36)),
        sa.Column("metadata_xml", sa.Text),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime()),
    )


def downgrade() -> None:
    """Drop the XTA tables (only for development databases)."""
    op.drop_table("xta_transports")
    op.drop_table("xta_msgbox")
