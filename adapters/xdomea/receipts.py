"""Acknowledgement messages the gateway answers incoming xdomea messages with.

A receipt is correlated to the message it answers: the same ProzessID, the same
xdomea version, and the parties swapped. The incoming Kopf's ``Absender`` and
``Empfaenger`` elements are copied verbatim (the original XML is the source of
truth, so no sub-element a partner relies on is lost).

Which receipt answers which message::

    0401 Abgabe.Abgabe            -> 0402 ImportBestaetigen, 0403 EmpfangBestaetigen (3.x)
    0501 Anbieteverzeichnis       -> 0504 AnbietungEmpfangBestaetigen
    0502 Bewertungsverzeichnis    -> 0505 BewertungEmpfangBestaetigen
    0503 Aussonderung             -> 0506 AussonderungImportBestaetigen,
                                     0507 AussonderungEmpfangBestaetigen (3.x)
    0101 Information              -> 0102 EmpfangBestaetigen

Only 0402 and 0506 have a body. In 3.x it lists every Schriftgutobjekt
(``AbgegebenesObjekt``/``AusgesondertesSGO``: IDSGO, Erfolgreich, Fehlermeldung*,
and for 0506 Archivkennung). In 2.x it is one ``ErfolgOderMisserfolg`` for the whole
message (Erfolgreich, one Fehlermeldung, and for 0506 a ``Rueckgabeparameter`` with
ID and Archivkennung per object the archive names).

Errors: ``ReceiptError`` and ``ReceiptNotApplicable`` in ``gateway.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from adapters.xdomea import builders
from adapters.xdomea.validation import CheckedMessage
from contracts.builders import ObjectResult, SendendesSystem
from contracts.xdomea import uuid_key
from gateway.errors import ReceiptError, ReceiptNotApplicable

#: What 2.x reports for a failed object that came without an error text.
_DEFAULT_FAILURE = "Import fehlgeschlagen"


@dataclass(frozen=True)
class ReceiptType:
    """One acknowledgement message type and the message it answers."""

    code: str
    element: str
    #: Nachrichtentyp code of the message this receipt answers.
    answers: str
    #: The incoming Kopf flag that asks for this receipt.
    requested_by: str
    #: The first major version whose schemas declare the receipt.
    since_major: int = 2
    #: 3.x element that reports one Schriftgutobjekt; ``None`` for receipts without body.
    result_element: str | None = None
    #: Whether the body reports the archive's Archivkennung (0506).
    carries_archivkennung: bool = False

    def exists_in(self, version: str) -> bool:
        """Whether ``version``'s schemas declare this receipt."""
        return builders.dialect(version).major >= self.since_major


RECEIPTS: Mapping[str, ReceiptType] = {
    r.code: r
    for r in (
        ReceiptType(
            "0402",
            "Abgabe.ImportBestaetigen.0402",
            answers="0401",
            requested_by="Importbestaetigung",
            result_element="AbgegebenesObjekt",
        ),
        ReceiptType(
            "0403",
            "Abgabe.EmpfangBestaetigen.0403",
            answers="0401",
            requested_by="Empfangsbestaetigung",
            since_major=3,
        ),
        ReceiptType(
            "0504",
            "Aussonderung.AnbietungEmpfangBestaetigen.0504",
            answers="0501",
            requested_by="Empfangsbestaetigung",
        ),
        ReceiptType(
            "0505",
            "Aussonderung.BewertungEmpfangBestaetigen.0505",
            answers="0502",
            requested_by="Empfangsbestaetigung",
        ),
        ReceiptType(
            "0506",
            "Aussonderung.AussonderungImportBestaetigen.0506",
            answers="0503",
            requested_by="Importbestaetigung",
            result_element="AusgesondertesSGO",
            carries_archivkennung=True,
        ),
        ReceiptType(
            "0507",
            "Aussonderung.AussonderungEmpfangBestaetigen.0507",
            answers="0503",
            requested_by="Empfangsbestaetigung",
            since_major=3,
        ),
        ReceiptType(
            "0102",
            "Information.EmpfangBestaetigen.0102",
            answers="0101",
            requested_by="Empfangsbestaetigung",
        ),
    )
}


def build_receipt(
    incoming: CheckedMessage,
    code: str,
    *,
    results: Mapping[str, ObjectResult] | None = None,
    erstellungszeitpunkt: datetime | None = None,
    sendendes_system: SendendesSystem = builders.DEFAULT_SYSTEM,
    hinweis: str | None = None,
) -> bytes:
    """The receipt ``code`` answering ``incoming``, valid for the incoming version.

    Args:
        incoming: the parsed message being answered.
        code: the receipt's Nachrichtentyp code, e.g. ``"0402"``.
        results: for 0402 and 0506, the outcome per Schriftgutobjekt UUID (matched
            case-insensitively). Every object of the incoming message, nested ones
            included, is reported; objects not named here count as successful.
        erstellungszeitpunkt: creation time; now (UTC, whole seconds) by default.
        sendendes_system: the sending system named in the Kopf.
        hinweis: free-text note in the Kopf.

    Returns:
        The receipt as UTF-8 XML with declaration.

    Raises:
        ReceiptNotApplicable: ``code`` is no receipt, does not answer the incoming
            message type, or does not exist in its version.
        ReceiptError: the incoming Kopf lacks what correlation needs, or ``results``
            do not fit (unknown UUIDs, results for a receipt without body, an
            Archivkennung in a 0402).
    """
    receipt = _applicable(incoming, code)
    if results and receipt.result_element is None:
        raise ReceiptError(f"a {code} has no body; it cannot carry per-object results")
    d = builders.dialect(incoming.detected.version)
    kopf = _incoming_kopf(incoming, d)
    root = builders.new_message(d, receipt.element)
    builders.write_kopf(
        root,
        d,
        code,
        builders.Kopfdaten(
            prozess_id=_prozess_id(incoming, kopf, d),
            erstellungszeitpunkt=erstellungszeitpunkt or builders.now(),
            # Swapped: we answer the sender, on behalf of the addressee.
            absender=_part(incoming, kopf, d, "Empfaenger"),
            empfaenger=_part(incoming, kopf, d, "Absender"),
            sendendes_system=sendendes_system,
            hinweis=hinweis,
        ),
    )
    if receipt.result_element is not None:
        outcomes = _outcomes(incoming, receipt, results or {})
        _write_results(root, d, receipt, receipt.result_element, outcomes)
    return builders.to_bytes(root)


def requested_receipts(incoming: CheckedMessage) -> tuple[str, ...]:
    """Codes of the receipts the incoming Kopf asks for, in the order they are due.

    Importbestaetigung is fixed to 1 in every 0401 and 0503, so 0402 and 0506 are
    always due; the EmpfangBestaetigen messages only when ``Empfangsbestaetigung`` is set.
    """
    d = builders.dialect(incoming.detected.version)
    kopf = incoming.detected.root.find(d.q("Kopf"))
    due = [
        receipt
        for receipt in RECEIPTS.values()
        if receipt.answers == incoming.detected.typ.code
        and receipt.exists_in(d.version)
        and _flag(kopf, d, receipt.requested_by)
    ]
    # Receipt of arrival (0403, 0507) is due before the import result (0402, 0506).
    due.sort(key=lambda receipt: receipt.requested_by != "Empfangsbestaetigung")
    return tuple(receipt.code for receipt in due)


def _applicable(incoming: CheckedMessage, code: str) -> ReceiptType:
    receipt = RECEIPTS.get(code)
    typ = incoming.detected.typ
    version = incoming.detected.version
    if receipt is None:
        known = ", ".join(RECEIPTS)
        raise ReceiptNotApplicable(f"{code} is not a receipt the gateway writes; receipts: {known}")
    if receipt.answers != typ.code:
        fitting = ", ".join(r.code for r in RECEIPTS.values() if r.answers == typ.code) or "none"
        raise ReceiptNotApplicable(
            f"{code} ({receipt.element}) answers a {receipt.answers}, but the incoming message "
            f"is a {typ.code} ({typ.element}); receipts for a {typ.code}: {fitting}"
        )
    if not receipt.exists_in(version):
        raise ReceiptNotApplicable(
            f"{code} exists from xdomea {receipt.since_major}.0.0 on; the incoming {typ.code} "
            f"is {version}"
        )
    return receipt


def _incoming_kopf(incoming: CheckedMessage, d: builders.Dialect) -> etree._Element:
    kopf = incoming.detected.root.find(d.q("Kopf"))
    if kopf is None:
        raise ReceiptError(
            f"the incoming {incoming.detected.typ.element} has no Kopf; a receipt cannot be "
            "correlated without ProzessID, Absender and Empfaenger"
        )
    return kopf


def _part(
    incoming: CheckedMessage, kopf: etree._Element, d: builders.Dialect, local: str
) -> etree._Element:
    element = kopf.find(d.q(local))
    if element is None:
        raise ReceiptError(
            f"the incoming {incoming.detected.typ.element} has no Kopf/{local}; a receipt "
            "cannot be correlated without it"
        )
    return element


def _prozess_id(incoming: CheckedMessage, kopf: etree._Element, d: builders.Dialect) -> str:
    prozess_id = (_part(incoming, kopf, d, "ProzessID").text or "").strip()
    if not prozess_id:
        raise ReceiptError(
            f"the incoming {incoming.detected.typ.element} has an empty Kopf/ProzessID; a "
            "receipt cannot be correlated without it"
        )
    return prozess_id


def _flag(kopf: etree._Element | None, d: builders.Dialect, local: str) -> bool:
    element = kopf.find(d.q(local)) if kopf is not None else None
    # xs:boolean has two spellings per value.
    return element is not None and (element.text or "").strip() in {"1", "true"}


def _outcomes(
    incoming: CheckedMessage, receipt: ReceiptType, results: Mapping[str, ObjectResult]
) -> list[tuple[str, ObjectResult]]:
    """Every object of the incoming message once, as spelled there, with its outcome."""
    by_key = {uuid_key(uuid): result for uuid, result in results.items()}
    seen: dict[str, str] = {}
    for sgo in incoming.read().walk():
        seen.setdefault(sgo.uuid_key, sgo.uuid)
    unknown = sorted(uuid for uuid in results if uuid_key(uuid) not in seen)
    if unknown:
        raise ReceiptError(
            f"results name objects the incoming {incoming.detected.typ.code} does not contain: "
            f"{', '.join(unknown)}"
        )
    if not seen:
        raise ReceiptError(
            f"the incoming {incoming.detected.typ.code} has no Schriftgutobjekt to report on"
        )
    if not receipt.carries_archivkennung and any(r.archivkennung for r in results.values()):
        raise ReceiptError(f"a {receipt.code} cannot carry an Archivkennung; only a 0506 can")
    return [(uuid, by_key.get(key, ObjectResult.ok())) for key, uuid in seen.items()]


def _write_results(
    root: etree._Element,
    d: builders.Dialect,
    receipt: ReceiptType,
    tag: str,
    outcomes: Sequence[tuple[str, ObjectResult]],
) -> None:
    if d.results_per_object:
        for uuid, result in outcomes:
            _write_object_result(root, d, receipt, tag, uuid, result)
    else:
        _write_summary(root, d, receipt, outcomes)


def _write_object_result(
    root: etree._Element,
    d: builders.Dialect,
    receipt: ReceiptType,
    tag: str,
    uuid: str,
    result: ObjectResult,
) -> None:
    """3.x: ``IDSGO``, ``Erfolgreich``, ``Fehlermeldung``* and (0506) ``Archivkennung``."""
    element = builders.add(root, d, tag)
    builders.add(element, d, "IDSGO", uuid)
    builders.add_boolean(element, d, "Erfolgreich", result.erfolgreich)
    for meldung in result.fehlermeldungen:
        builders.add(element, d, "Fehlermeldung", meldung)
    if receipt.carries_archivkennung and result.archivkennung is not None:
        builders.add(element, d, "Archivkennung", result.archivkennung)


def _write_summary(
    root: etree._Element,
    d: builders.Dialect,
    receipt: ReceiptType,
    outcomes: Sequence[tuple[str, ObjectResult]],
) -> None:
    """2.x: one ``ErfolgOderMisserfolg`` for the whole message.

    It is successful only if every object is; the one Fehlermeldung names each object
    that has messages, so no reason is lost; 0506 adds a ``Rueckgabeparameter`` per
    object with an Archivkennung.
    """
    element = builders.add(root, d, "ErfolgOderMisserfolg")
    builders.add_boolean(element, d, "Erfolgreich", all(r.erfolgreich for _, r in outcomes))
    meldungen = [
        f"{uuid}: {'; '.join(r.fehlermeldungen) or _DEFAULT_FAILURE}"
        for uuid, r in outcomes
        if r.fehlermeldungen or not r.erfolgreich
    ]
    if meldungen:
        builders.add(element, d, "Fehlermeldung", " | ".join(meldungen))
    if not receipt.carries_archivkennung:
        return
    for uuid, result in outcomes:
        if result.archivkennung is not None:
            parameter = builders.add(element, d, "Rueckgabeparameter")
            builders.add(parameter, d, "ID", uuid)
            builders.add(parameter, d, "Archivkennung", result.archivkennung)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ImportResults:
    """What a 0402 or 0506 reports back, as the sender of the 0401/0503 reads it."""

    code: str
    #: Whether the receiver reports every object (3.x) or the whole message (2.x) imported.
    erfolgreich: bool
    #: Per Schriftgutobjekt as the receiver spelled the UUID (3.x; 2.x: 0506 Archivkennungen).
    objekte: Mapping[str, ObjectResult]
    #: Error texts not tied to an object (2.x ErfolgOderMisserfolg).
    fehlermeldungen: tuple[str, ...] = ()

    def result_for(self, uuid: str) -> ObjectResult | None:
        """The result of one object, matching UUIDs regardless of case."""
        wanted = uuid_key(uuid)
        for key, result in self.objekte.items():
            if uuid_key(key) == wanted:
                return result
        return None


def read_import_results(receipt: CheckedMessage) -> ImportResults:
    """Read the per-object outcome of a 0402 or 0506 import confirmation.

    Raises:
        ReceiptNotApplicable: the message is neither a 0402 nor a 0506.
    """
    code = receipt.detected.typ.code
    receipt_type = RECEIPTS.get(code)
    if receipt_type is None or receipt_type.result_element is None:
        raise ReceiptNotApplicable(
            f"{receipt.detected.typ.element} carries no import results; only 0402 and 0506 do"
        )
    d = builders.dialect(receipt.detected.version)
    root = receipt.detected.root
    if d.results_per_object:
        objekte = {
            _text(element, d, "IDSGO") or "": ObjectResult(
                erfolgreich=_is_true(_text(element, d, "Erfolgreich")),
                fehlermeldungen=_texts(element, d, "Fehlermeldung"),
                archivkennung=_text(element, d, "Archivkennung"),
            )
            for element in root.iterfind(d.q(receipt_type.result_element))
        }
        return ImportResults(
            code=code, erfolgreich=all(r.erfolgreich for r in objekte.values()), objekte=objekte
        )
    outcome = root.find(d.q("ErfolgOderMisserfolg"))
    erfolgreich = outcome is not None and _is_true(_text(outcome, d, "Erfolgreich"))
    archived = {}
    if outcome is not None:
        for parameter in outcome.iterfind(d.q("Rueckgabeparameter")):
            archived[_text(parameter, d, "ID") or ""] = ObjectResult.ok(
                _text(parameter, d, "Archivkennung")
            )
    return ImportResults(
        code=code,
        erfolgreich=erfolgreich,
        objekte=archived,
        fehlermeldungen=_texts(outcome, d, "Fehlermeldung") if outcome is not None else (),
    )


def _text(element: etree._Element, d: builders.Dialect, local: str) -> str | None:
    value = element.findtext(d.q(local))
    return value.strip() if value and value.strip() else None


def _texts(element: etree._Element, d: builders.Dialect, local: str) -> tuple[str, ...]:
    return tuple(
        child.text.strip()
        for child in element.iterfind(d.q(local))
        if child.text and child.text.strip()
    )


def _is_true(value: str | None) -> bool:
    return value in ("1", "true")
