"""Which processes the journal may forget, and forgetting them (``ikz-gateway db purge``).

The journal keeps every message, delivery, attempt and event, and the content of
small messages, until an operator purges it. A purge forgets whole processes
(ProzessIDs, compared case-insensitively), never single messages: the process
views, receipts and the Aussonderung engine read a process from all its messages.

A process is *finished* when nothing in it is still open or recent:

* its newest message, delivery outcome, receipt, Abgabe record and Aussonderung
  record are all older than the cutoff;
* every delivery is delivered (a dead letter waits for its operator);
* no receipt this gateway owes is still waiting or pending;
* no Abgabe this node started is still starting or open;
* an Abgabe (0401) this node sent has its import confirmation (0402);
* an Aussonderung (any 05xx message) has its archive's import confirmation
  (0506), or ended without archiving: its 0502 was delivered (the engine took it)
  and no 0503 followed, because the archive valued nothing for archiving (the
  engine sends the 0503, or carries out the DMS actions and ends, while it takes
  the 0502; a 0502 it refused is a dead letter, which keeps the process anyway);
* every message put into an XTA message box was closed by its partner (fetched
  and acknowledged); the box entries and transport records go with the process.

The check runs again inside the transaction that deletes the process, so a
message of that ProzessID arriving meanwhile keeps it. Forgotten messages are
also forgotten by intake's duplicate detection: the same message sent again after
the purge is accepted and delivered again (keep the cutoff well beyond any
partner's resend window).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    column,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
    table,
)
from sqlalchemy.engine import Connection

from contracts.journal import DeliveryState, PurgedProcess, ReceiptState
from contracts.processes import AbgabeState
from gateway.journal.tables import (
    UTCDateTime,
    abgaben,
    attempts,
    aussonderung_records,
    deliveries,
    events,
    inline_blobs,
    messages,
    receipts,
)

_M = messages.c
_D = deliveries.c
_R = receipts.c
_AB = abgaben.c
_AR = aussonderung_records.c
_IB = inline_blobs.c

#: The XTA adapter's tables (``adapters.xta.msgbox``), which live in the journal's
#: database: named here rather than imported, so the journal does not depend on an
#: adapter.
_box = table("xta_msgbox", column("message_id"), column("closed_at"), column("blob_sha256"))
_transports = table("xta_transports", column("message_id"))

#: The import confirmation of an Abgabe (0402) and of an Aussonderung (0506).
_ABGABE_CONFIRMED = "0402"
_AUSSONDERUNG_CONFIRMED = "0506"


def _finished(key: Any, own_kennung: Any, cutoff: Any) -> ColumnElement[bool]:
    """The conditions of the module docstring for the process whose lower-cased id is ``key``."""
    m = messages.alias()
    same = func.lower(m.c.prozess_id) == key
    newer_message = exists().where(same, m.c.received_at >= cutoff)

    md = messages.alias()
    open_or_recent_delivery = exists().where(
        func.lower(md.c.prozess_id) == key,
        _D.message_id == md.c.id,
        or_(
            _D.state != DeliveryState.DELIVERED,
            _D.finished_at.is_(None),
            _D.finished_at >= cutoff,
        ),
    )
    mr = messages.alias()
    open_or_recent_receipt = exists().where(
        func.lower(mr.c.prozess_id) == key,
        _R.message_id == mr.c.id,
        or_(_R.state.in_([ReceiptState.WAITING, ReceiptState.PENDING]), _R.updated_at >= cutoff),
    )
    open_or_recent_abgabe = exists().where(
        func.lower(_AB.prozess_id) == key,
        or_(_AB.state.in_([AbgabeState.STARTING, AbgabeState.OPEN]), _AB.updated_at >= cutoff),
    )
    mb = messages.alias()
    open_or_recent_box_entry = exists().where(
        func.lower(mb.c.prozess_id) == key,
        _box.c.message_id == mb.c.id,
        or_(_box.c.closed_at.is_(None), _box.c.closed_at >= cutoff),
    )
    recent_aussonderung_record = exists().where(func.lower(_AR.prozess_id) == key, _AR.at >= cutoff)

    def has(condition: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
        """A message of the process for which ``condition(its columns)`` holds."""
        typed = messages.alias()
        return exists().where(func.lower(typed.c.prozess_id) == key, condition(typed.c))

    own_abgabe_unconfirmed = and_(
        has(lambda c: and_(c.nachrichtentyp == "0401", c.absender == own_kennung)),
        not_(has(lambda c: c.nachrichtentyp == _ABGABE_CONFIRMED)),
    )
    ended_without_archiving = and_(
        has(lambda c: c.nachrichtentyp == "0502"), not_(has(lambda c: c.nachrichtentyp == "0503"))
    )
    aussonderung_unconfirmed = and_(
        has(lambda c: c.nachrichtentyp.like("05%")),
        not_(has(lambda c: c.nachrichtentyp == _AUSSONDERUNG_CONFIRMED)),
        not_(ended_without_archiving),
    )
    return not_(
        or_(
            newer_message,
            open_or_recent_delivery,
            open_or_recent_receipt,
            open_or_recent_abgabe,
            recent_aussonderung_record,
            open_or_recent_box_entry,
            own_abgabe_unconfirmed,
            aussonderung_unconfirmed,
        )
    )


@cache
def _finished_check() -> Select[tuple[bool]]:
    """``_finished`` for one process, its values bound at execution: built once.

    Building the expression (a dozen aliases of ``messages``) cost more than
    running it, once per purged process.
    """
    return select(
        _finished(
            bindparam("key", type_=String()),
            bindparam("own_kennung", type_=String()),
            bindparam("cutoff", type_=UTCDateTime()),
        )
    )


def finished_processes(
    conn: Connection, *, own_kennung: str, cutoff: datetime, limit: int | None
) -> list[str]:
    """Up to ``limit`` (``None``: all) finished processes (lower-cased ProzessIDs), oldest first."""
    # Grouped in a subquery: PostgreSQL lets the correlated conditions use a
    # grouped expression only through a column of a derived table.
    processes = (
        select(
            func.lower(_M.prozess_id).label("key"),
            func.max(_M.received_at).label("newest"),
        )
        .group_by(func.lower(_M.prozess_id))
        .subquery()
    )
    query = (
        select(processes.c.key)
        .where(processes.c.newest < cutoff, _finished(processes.c.key, own_kennung, cutoff))
        .order_by(processes.c.newest)
        .limit(limit)
    )
    return [row[0] for row in conn.execute(query).all()]


def purge_process(
    conn: Connection, prozess_id: str, *, own_kennung: str, cutoff: datetime
) -> PurgedProcess | None:
    """Delete one finished process; ``None`` if it is not (or no longer) finished."""
    key = prozess_id.lower()
    if conn.dialect.name == "postgresql":
        # An accept of identical content concurrently may find the content row and
        # skip writing it (ON CONFLICT DO NOTHING takes no row lock), then commit a
        # message referring to it after this transaction looked for references.
        # This lock waits for every accept writing content to commit and holds new
        # ones off until this transaction ends, so the look-up below sees them all.
        # (SQLite transactions run one at a time anyway.)
        conn.exec_driver_sql("LOCK TABLE inline_blobs IN SHARE ROW EXCLUSIVE MODE")
    rows = conn.execute(
        select(_M.id, _M.prozess_id, _M.blob_sha256, _M.received_at).where(
            func.lower(_M.prozess_id) == key
        )
    ).all()
    if not rows:
        return None
    still = conn.execute(
        _finished_check(), {"key": key, "own_kennung": own_kennung, "cutoff": cutoff}
    ).scalar_one()
    if not still:
        return None
    ids = [row.id for row in rows]
    shas = sorted({row.blob_sha256 for row in rows})
    delivery_ids = select(_D.id).where(_D.message_id.in_(ids))
    # Children first: the foreign keys point at deliveries and messages.
    conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(delivery_ids)))
    conn.execute(delete(events).where(events.c.message_id.in_(ids)))
    conn.execute(delete(receipts).where(_R.message_id.in_(ids)))
    conn.execute(delete(deliveries).where(_D.message_id.in_(ids)))
    conn.execute(delete(abgaben).where(func.lower(_AB.prozess_id) == key))
    conn.execute(delete(aussonderung_records).where(func.lower(_AR.prozess_id) == key))
    conn.execute(delete(_box).where(_box.c.message_id.in_(ids)))
    conn.execute(delete(_transports).where(_transports.c.message_id.in_(ids)))
    conn.execute(delete(messages).where(_M.id.in_(ids)))
    # Content another process's message still refers to stays (identical content is
    # kept once, in the journal and in the blob store).
    referenced = referenced_contents(conn, shas)
    unreferenced = [sha for sha in shas if sha not in referenced]
    freed = 0
    if unreferenced:
        freed = int(
            conn.execute(
                select(func.coalesce(func.sum(func.length(_IB.content)), 0)).where(
                    _IB.sha256.in_(unreferenced)
                )
            ).scalar_one()
        )
        conn.execute(delete(inline_blobs).where(_IB.sha256.in_(unreferenced)))
    return PurgedProcess(
        prozess_id=rows[0].prozess_id,
        messages=len(ids),
        last_received_at=max(row.received_at for row in rows),
        content_bytes=freed,
        unreferenced_blobs=tuple(unreferenced),
    )


def referenced_contents(conn: Connection, shas: Sequence[str]) -> set[str]:
    """Which of ``shas`` a message or an XTA box entry still refers to."""
    wanted = list(shas)
    found = set(
        conn.execute(select(_M.blob_sha256).where(_M.blob_sha256.in_(wanted)).distinct()).scalars()
    )
    found.update(
        conn.execute(
            select(_box.c.blob_sha256).where(_box.c.blob_sha256.in_(wanted)).distinct()
        ).scalars()
    )
    return found
