"""Indexes for looking up processes and contents (``db purge``, process views).

A process is looked up by ``lower(prozess_id)`` (``Journal.process``, the process
views, ``db purge``): the index on ``messages.prozess_id`` served no query and is
replaced by one on that expression; without it, listing the finished processes
among 10 000 took 143 s. Whether a content is still referred to is a look-up by
``blob_sha256`` (``db purge``, ``blobs prune``); the XTA tables are looked up by
message id.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the indexes. A frozen snapshot: never edit it later."""
    op.drop_index("ix_messages_prozess_id", "messages")
    op.create_index("ix_messages_prozess_key", "messages", [sa.text("lower(prozess_id)")])
    op.create_index("ix_messages_blob_sha256", "messages", ["blob_sha256"])
    op.create_index("ix_abgaben_prozess_key", "abgaben", [sa.text("lower(prozess_id)")])
    op.create_index(
        "ix_aussonderung_records_prozess_key",
        "aussonderung_records",
        [sa.text("lower(prozess_id)")],
    )
    op.create_index("ix_xta_msgbox_message_id", "xta_msgbox", ["message_id"])
    op.create_index("ix_xta_transports_message_id", "xta_transports", ["message_id"])


def downgrade() -> None:
    """Drop the indexes, and bring back the one on ``messages.prozess_id``."""
    op.drop_index("ix_xta_transports_message_id", "xta_transports")
    op.drop_index("ix_xta_msgbox_message_id", "xta_msgbox")
    op.drop_index("ix_aussonderung_records_prozess_key", "aussonderung_records")
    op.drop_index("ix_abgaben_prozess_key", "abgaben")
    op.drop_index("ix_messages_blob_sha256", "messages")
    op.drop_index("ix_messages_prozess_key", "messages")
    op.create_index("ix_messages_prozess_id", "messages", ["prozess_id"])
