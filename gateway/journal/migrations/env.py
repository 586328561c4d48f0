"""Alembic environment: runs on the connection the journal hands in (see ``Journal.upgrade``)."""

from __future__ import annotations

from alembic import context

from gateway.journal.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
