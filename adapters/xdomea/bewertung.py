"""Reading an archive's Bewertungsverzeichnis (0502): the Aussonderungsart per object.

2.x writes the code directly in ``BewertetesObjekt/Aussonderungsart``; 3.x wraps it
in an ``Aussonderungsart`` choice (``…/Aussonderungsart/Aussonderungsart/code``).
Both are read; whatever the schema let through but the code list does not know is
reported, since the sender's appraisal must not be guessed.
"""

from __future__ import annotations

from adapters.xdomea import builders
from adapters.xdomea.validation import CheckedMessage
from contracts.xdomea import uuid_key
from gateway.errors import ReceiptError


def read_bewertungen(message: CheckedMessage) -> dict[str, str]:
    """The Aussonderungsart code (``A``, ``B``, ``V``) per valued object, keyed by UUID key.

    Raises:
        ReceiptError: not a 0502, an object without ID or code, a code outside the
            Aussonderungsart code list, or one object valued twice.
    """
    typ = message.detected.typ
    if typ.code != "0502":
        raise ReceiptError(f"{typ.element} is no Bewertungsverzeichnis (0502)")
    d = builders.dialect(message.detected.version)
    bewertungen: dict[str, str] = {}
    for index, objekt in enumerate(message.detected.root.iterfind(d.q("BewertetesObjekt")), 1):
        uuid = (objekt.findtext(d.q("ID")) or "").strip()
        holder = objekt.find(d.q("Aussonderungsart"))
        if holder is not None and d.nested_aussonderungsart:
            holder = holder.find(d.q("Aussonderungsart"))
        code = (holder.findtext("code") or "").strip() if holder is not None else ""
        where = f"BewertetesObjekt {index}" + (f" ({uuid})" if uuid else "")
        if not uuid or not code:
            raise ReceiptError(f"{where} has no ID or no Aussonderungsart code")
        if code not in builders.AUSSONDERUNGSARTEN:
            allowed = ", ".join(sorted(builders.AUSSONDERUNGSARTEN))
            raise ReceiptError(
                f"{where} has Aussonderungsart {code!r}, which is not in the code list ({allowed})"
            )
        if uuid_key(uuid) in bewertungen:
            raise ReceiptError(f"{where} is valued twice")
        bewertungen[uuid_key(uuid)] = code
    return bewertungen
