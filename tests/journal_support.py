"""Journal records for tests that write to the journal directly, as intake would."""

from __future__ import annotations

import hashlib
import uuid

from contracts.journal import NewMessage


def journal_record(data: bytes, **changes: object) -> NewMessage:
    """The record intake hands the journal for content ``data``: a received bare 0401.

    ``changes`` override any field (``prozess_id``, ``nachrichtentyp``, ``absender`` …).
    """
    values: dict[str, object] = {
        "partner_id": "kommune-a",
        "channel": "http",
        "idempotency_key": None,
        "blob_sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_kind": "message",
        "file_name": None,
        "prozess_id": str(uuid.uuid4()),
        "nachrichtentyp": "0401",
        "message_element": "Abgabe.Abgabe.0401",
        "xdomea_version": "3.1.0",
        "absender": "060:0815",
        "empfaenger": "060:4711",
    }
    values.update(changes)
    return NewMessage.model_validate(values)
