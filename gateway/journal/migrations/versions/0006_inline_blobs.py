"""Small messages' content kept in the journal (``inline_blobs``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``inline_blobs``. A frozen snapshot: never edit it later."""
    op.create_table(
        "inline_blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    """Drop ``inline_blobs`` (only for development databases: its content is lost)."""
    op.drop_table("inline_blobs")
