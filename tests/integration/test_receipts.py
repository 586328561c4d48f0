"""Receipts answer the right message, in its version, with its ProzessID and the parties swapped."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.xdomea import builders, receipts
from adapters.xdomea.validation import CheckedMessage, check_message
from contracts.builders import ObjectResult, SchriftgutobjektSpec
from gateway.errors import GatewayError, ReceiptError, ReceiptNotApplicable
from schemas.loader import default_loader
from tests import xdomea_specs as specs
from tests.conftest import SHARED_SAMPLES, VERSIONS

V2 = tuple(v for v in VERSIONS if v.startswith("2."))
V3 = tuple(v for v in VERSIONS if v.startswith("3."))
APPLICABLE = [
    (version, code)
    for version in VERSIONS
    for code, receipt in receipts.RECEIPTS.items()
    if receipt.exists_in(version)
]
IMPORT_RECEIPTS = ["0402", "0506"]
SAMPLE_ANSWERS = [
    pytest.param(path, code, id=f"{path.parent.name}-{receipt.answers}-{code}")
    for path in sorted(SHARED_SAMPLES.glob("xdomea-*/*.xml"))
    for code, receipt in receipts.RECEIPTS.items()
    if path.stem.endswith(receipt.answers)
    and receipt.exists_in(path.parent.name.removeprefix("xdomea-"))
]


def incoming(
    code: str, version: str, objekte: Sequence[SchriftgutobjektSpec] | None = None
) -> CheckedMessage:
    """The checked message ``code`` answers, built from ``objekte`` or the standard tree."""
    answered = receipts.RECEIPTS[code].answers
    return check_message(specs.build(answered, version, objekte=objekte))


def answer(
    code: str,
    version: str,
    *,
    objekte: Sequence[SchriftgutobjektSpec] | None = None,
    **options: Any,
) -> tuple[CheckedMessage, CheckedMessage]:
    """The incoming message and the checked receipt ``code`` for it."""
    message = incoming(code, version, objekte)
    return message, check_message(receipts.build_receipt(message, code, **options))


def _body(receipt: CheckedMessage) -> list[etree._Element]:
    return [e for e in receipt.tree.getroot() if etree.QName(e).localname != "Kopf"]


def _nodes(element: etree._Element | None) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """Every descendant's name, attributes and text, so a copy can be compared structurally."""
    assert element is not None
    return [
        (
            node.tag,
            tuple((str(k), str(v)) for k, v in node.attrib.items()),
            (node.text or "").strip(),
        )
        for node in element.iterdescendants()
        if isinstance(node.tag, str)
    ]


@pytest.mark.parametrize(("version", "code"), APPLICABLE)
def test_receipt_is_schema_valid(version: str, code: str) -> None:
    """Every receipt passes the XSD of the incoming message's version without a finding."""
    _, receipt = answer(code, version)

    assert receipt.valid
    assert receipt.findings == ()
    assert receipt.detected.version == version


@pytest.mark.parametrize(("version", "code"), APPLICABLE)
def test_receipt_keeps_the_prozess_id(version: str, code: str) -> None:
    """The receipt continues the incoming message's process."""
    message, receipt = answer(code, version)

    assert receipt.read().kopf.prozess_id == message.read().kopf.prozess_id


@pytest.mark.parametrize(("version", "code"), APPLICABLE)
def test_receipt_swaps_the_parties(version: str, code: str) -> None:
    """The receipt goes from the incoming Empfänger back to the incoming Absender."""
    message, receipt = answer(code, version)

    sent, answered = message.read().kopf, receipt.read().kopf
    assert (answered.absender, answered.empfaenger) == (sent.empfaenger, sent.absender)


@pytest.mark.parametrize(("version", "code"), APPLICABLE)
def test_receipt_carries_its_code_in_root_and_kopf(version: str, code: str) -> None:
    """Root element and Kopf Nachrichtentyp both name the receipt type."""
    _, receipt = answer(code, version)

    assert receipt.detected.typ.element == receipts.RECEIPTS[code].element
    assert receipt.read().kopf.nachrichtentyp == code


def test_receipt_uses_the_given_erstellungszeitpunkt() -> None:
    """A given creation time is written into the receipt's Kopf."""
    zeitpunkt = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)

    _, receipt = answer("0504", "3.1.0", erstellungszeitpunkt=zeitpunkt)

    assert receipt.read().kopf.erstellungszeitpunkt == zeitpunkt


@pytest.mark.parametrize(("path", "code"), SAMPLE_ANSWERS)
def test_receipt_copies_the_parties_of_a_sample_verbatim(path: Path, code: str) -> None:
    """Every sub-element of a sample's Absender and Empfänger (Anschrift, Name …) is kept."""
    message = check_message(path.read_bytes())

    receipt = check_message(receipts.build_receipt(message, code))

    sent = message.detected.root.find("{*}Kopf")
    answered = receipt.detected.root.find("{*}Kopf")
    assert sent is not None and answered is not None
    assert receipt.valid
    assert _nodes(answered.find("{*}Empfaenger")) == _nodes(sent.find("{*}Absender"))
    assert _nodes(answered.find("{*}Absender")) == _nodes(sent.find("{*}Empfaenger"))


def test_receipt_answers_a_message_with_another_prefix() -> None:
    """Parties copied from a message that binds the namespace to another prefix stay valid."""
    renamed = specs.build("0401", "3.1.0")
    for old, new in (
        (b"<xdomea:", b"<x:"),
        (b"</xdomea:", b"</x:"),
        (b"xmlns:xdomea=", b"xmlns:x="),
    ):
        renamed = renamed.replace(old, new)
    message = check_message(renamed)

    receipt = check_message(receipts.build_receipt(message, "0402"))

    assert receipt.findings == ()
    assert receipt.read().kopf.empfaenger == specs.ABSENDER


def test_receipt_leaves_the_incoming_message_untouched() -> None:
    """Building a receipt does not move or change anything in the incoming tree."""
    message = incoming("0506", "3.1.0")
    before = etree.tostring(message.tree)

    receipts.build_receipt(message, "0506")

    assert etree.tostring(message.tree) == before


@pytest.mark.parametrize("version", V3)
@pytest.mark.parametrize("code", IMPORT_RECEIPTS)
def test_3x_import_receipt_reports_every_object_successful_by_default(
    version: str, code: str
) -> None:
    """Without results a 3.x 0402/0506 lists each object, nested ones included, as imported."""
    objekte = specs.tree()

    _, receipt = answer(code, version, objekte=objekte)

    reported = [(e.findtext("{*}IDSGO"), e.findtext("{*}Erfolgreich")) for e in _body(receipt)]
    assert reported == [(u, "1") for u in specs.all_uuids(objekte)]


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("code", IMPORT_RECEIPTS)
def test_2x_import_receipt_reports_success_once_by_default(version: str, code: str) -> None:
    """Without results a 2.x 0402/0506 holds one successful ErfolgOderMisserfolg without message."""
    _, receipt = answer(code, version)

    (body,) = _body(receipt)
    assert etree.QName(body).localname == "ErfolgOderMisserfolg"
    assert body.findtext("{*}Erfolgreich") == "1"
    assert body.find("{*}Fehlermeldung") is None


@pytest.mark.parametrize("version", V3)
@pytest.mark.parametrize("code", IMPORT_RECEIPTS)
def test_3x_import_receipt_reports_a_failure_on_its_object(version: str, code: str) -> None:
    """A failed object is reported unsuccessful with each of its messages; the others succeed."""
    failure = ObjectResult.failed("Virus gefunden", "Format nicht lesbar")

    _, receipt = answer(code, version, results={specs.UPPER_DOKUMENT: failure})

    by_id = {e.findtext("{*}IDSGO"): e for e in _body(receipt)}
    failed = by_id.pop(specs.UPPER_DOKUMENT)
    assert failed.findtext("{*}Erfolgreich") == "0"
    assert [m.text for m in failed.iterfind("{*}Fehlermeldung")] == list(failure.fehlermeldungen)
    assert {e.findtext("{*}Erfolgreich") for e in by_id.values()} == {"1"}


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("code", IMPORT_RECEIPTS)
def test_2x_import_receipt_reports_a_failure_for_the_whole_message(version: str, code: str) -> None:
    """One failed object makes the 2.x result unsuccessful, naming its UUID and reason."""
    results = {specs.UPPER_DOKUMENT: ObjectResult.failed("Virus gefunden")}

    _, receipt = answer(code, version, results=results)

    (body,) = _body(receipt)
    assert body.findtext("{*}Erfolgreich") == "0"
    assert body.findtext("{*}Fehlermeldung") == f"{specs.UPPER_DOKUMENT}: Virus gefunden"


@pytest.mark.parametrize("version", V3)
def test_3x_aussonderung_receipt_carries_the_archivkennung(version: str) -> None:
    """A 3.x 0506 reports the archive's signature on the object it belongs to."""
    results = {specs.UPPER_AKTE: ObjectResult.ok("LATh 1-2024/17")}

    _, receipt = answer("0506", version, results=results)

    kennungen = {e.findtext("{*}IDSGO"): e.findtext("{*}Archivkennung") for e in _body(receipt)}
    assert kennungen.pop(specs.UPPER_AKTE) == "LATh 1-2024/17"
    assert set(kennungen.values()) == {None}


@pytest.mark.parametrize("version", V2)
def test_2x_aussonderung_receipt_carries_the_archivkennung_as_rueckgabeparameter(
    version: str,
) -> None:
    """A 2.x 0506 reports the archive's signature in a Rueckgabeparameter with the object's ID."""
    results = {specs.UPPER_AKTE: ObjectResult.ok("LATh 1-2024/17")}

    _, receipt = answer("0506", version, results=results)

    (body,) = _body(receipt)
    parameter = [
        (p.findtext("{*}ID"), p.findtext("{*}Archivkennung"))
        for p in body.iterfind("{*}Rueckgabeparameter")
    ]
    assert parameter == [(specs.UPPER_AKTE, "LATh 1-2024/17")]


def test_results_match_uuids_in_any_case_and_keep_the_incoming_spelling() -> None:
    """A result keyed in lower case finds the upper-case object and keeps the sender's spelling."""
    results = {specs.UPPER_DOKUMENT.lower(): ObjectResult.failed("kaputt")}

    _, receipt = answer("0402", "3.1.0", results=results)

    failed = [e.findtext("{*}IDSGO") for e in _body(receipt) if e.findtext("{*}Erfolgreich") == "0"]
    assert failed == [specs.UPPER_DOKUMENT]


@pytest.mark.parametrize("part", ["ProzessID", "Absender", "Empfaenger"])
def test_incoming_message_without_correlation_data_is_refused(part: str) -> None:
    """A message lacking ProzessID, Absender or Empfänger cannot be answered; the error names it."""
    root = etree.fromstring(specs.build("0401", "3.1.0"))
    kopf = root.find("{*}Kopf")
    assert kopf is not None
    kopf.remove(kopf.find(f"{{*}}{part}"))  # type: ignore[arg-type]
    message = check_message(etree.tostring(root))

    with pytest.raises(ReceiptError, match=f"no Kopf/{part}"):
        receipts.build_receipt(message, "0402")


def test_results_for_an_unknown_object_are_refused() -> None:
    """A result for a UUID the incoming message does not contain raises ReceiptError naming it."""
    stranger = str(uuid.uuid4())

    with pytest.raises(ReceiptError, match=stranger):
        answer("0402", "3.1.0", results={stranger: ObjectResult.ok()})


def test_archivkennung_in_an_abgabe_receipt_is_refused() -> None:
    """Only a 0506 can report an Archivkennung; asking a 0402 to carry one is refused."""
    with pytest.raises(ReceiptError, match="only a 0506"):
        answer("0402", "3.1.0", results={specs.UPPER_AKTE: ObjectResult.ok("AK-1")})


def test_results_on_a_receipt_without_body_are_refused() -> None:
    """An EmpfangBestaetigen message has no body, so results for it are refused."""
    with pytest.raises(ReceiptError, match="no body"):
        answer("0504", "3.1.0", results={specs.UPPER_AKTE: ObjectResult.ok()})


@pytest.mark.parametrize(
    ("code", "wrong"),
    [
        ("0402", "0501"),
        ("0403", "0503"),
        ("0504", "0503"),
        ("0505", "0501"),
        ("0506", "0401"),
        ("0507", "0401"),
        ("0102", "0401"),
    ],
)
def test_receipt_for_the_wrong_message_type_is_refused(code: str, wrong: str) -> None:
    """A receipt that does not answer the incoming type raises ReceiptNotApplicable naming both."""
    message = check_message(specs.build(wrong, "3.1.0"))

    with pytest.raises(ReceiptNotApplicable, match=f"{code} .* answers a .* is a {wrong}"):
        receipts.build_receipt(message, code)


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("code", ["0403", "0507"])
def test_receipt_missing_in_the_version_is_refused(version: str, code: str) -> None:
    """0403 and 0507 do not exist before 3.0.0; asking for one on a 2.x message says so."""
    message = incoming(code, version)
    answered = receipts.RECEIPTS[code].answers

    with pytest.raises(
        ReceiptNotApplicable,
        match=rf"{code} exists from xdomea 3\.0\.0 on; the incoming {answered} is {version}",
    ):
        receipts.build_receipt(message, code)


def test_unknown_receipt_code_is_refused() -> None:
    """A code that is no receipt raises ReceiptNotApplicable listing the receipts."""
    with pytest.raises(ReceiptNotApplicable, match="receipts: 0402"):
        receipts.build_receipt(incoming("0402", "3.1.0"), "0401")


def test_receipt_errors_are_gateway_errors() -> None:
    """Both receipt errors belong to the gateway's exception hierarchy."""
    assert issubclass(ReceiptNotApplicable, ReceiptError)
    assert issubclass(ReceiptError, GatewayError)


@pytest.mark.parametrize(
    ("version", "answered", "options", "due"),
    [
        ("3.1.0", "0401", {}, ("0403", "0402")),
        ("3.1.0", "0401", {"empfangsbestaetigung": False}, ("0402",)),
        ("2.4.0", "0401", {}, ("0402",)),
        ("3.0.0", "0503", {}, ("0507", "0506")),
        ("2.3.0", "0503", {}, ("0506",)),
        ("3.1.0", "0501", {"empfangsbestaetigung": False}, ()),
        ("2.4.0", "0502", {}, ("0505",)),
        ("3.1.0", "0101", {}, ("0102",)),
    ],
)
def test_requested_receipts_follow_the_kopf_flags(
    version: str, answered: str, options: dict[str, Any], due: tuple[str, ...]
) -> None:
    """The receipts due are those the incoming Kopf asks for and its version knows, arrival first."""
    message = check_message(specs.build(answered, version, **options))

    assert receipts.requested_receipts(message) == due


@pytest.mark.parametrize("version", VERSIONS)
def test_receipt_table_matches_the_schemas(version: str) -> None:
    """A receipt exists in a version exactly when that version's XSD declares its root element."""
    declared = default_loader().version(version).message_types

    assert {code: r.exists_in(version) for code, r in receipts.RECEIPTS.items()} == {
        code: r.element in declared for code, r in receipts.RECEIPTS.items()
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_import_results_read_back_what_the_receipt_reports(version: str) -> None:
    """A 0402 with one failed object reads back as not successful, naming the failure."""
    incoming = check_message(
        builders.build_abgabe_0401(
            version, specs.tree(), absender=specs.ABSENDER, empfaenger=specs.EMPFAENGER
        )
    )
    failed_uuid = specs.UPPER_AKTE
    receipt = check_message(
        receipts.build_receipt(
            incoming, "0402", results={failed_uuid: ObjectResult.failed("Speicher voll")}
        )
    )

    results = receipts.read_import_results(receipt)

    assert not results.erfolgreich
    if version.startswith("3."):
        failed = results.result_for(failed_uuid.lower())
        assert failed is not None and failed.fehlermeldungen == ("Speicher voll",)
        assert sum(1 for r in results.objekte.values() if r.erfolgreich) == len(results.objekte) - 1
    else:
        assert any("Speicher voll" in text for text in results.fehlermeldungen)


@pytest.mark.parametrize("version", VERSIONS)
def test_import_results_carry_the_archivkennung_of_a_0506(version: str) -> None:
    """The archive's signature per object survives the 0506 round trip in every version."""
    incoming = check_message(
        builders.build_aussonderung_0503(
            version, specs.tree(), absender=specs.ABSENDER, empfaenger=specs.EMPFAENGER
        )
    )
    receipt = check_message(
        receipts.build_receipt(
            incoming, "0506", results={specs.UPPER_AKTE: ObjectResult.ok("LATh 1-23")}
        )
    )

    results = receipts.read_import_results(receipt)

    assert results.erfolgreich
    archived = results.result_for(specs.UPPER_AKTE)
    assert archived is not None and archived.archivkennung == "LATh 1-23"


def test_import_results_refuse_a_receipt_without_results() -> None:
    """Asking a 0403 for import results is refused with a clear error."""
    incoming = check_message(
        builders.build_abgabe_0401(
            "3.1.0", specs.tree(), absender=specs.ABSENDER, empfaenger=specs.EMPFAENGER
        )
    )
    receipt = check_message(receipts.build_receipt(incoming, "0403"))

    with pytest.raises(ReceiptNotApplicable, match="only 0402 and 0506"):
        receipts.read_import_results(receipt)


def test_a_journaled_container_is_read_without_hashing_its_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a receipt or a process view reads the message XML only, not every document."""
    from adapters.xdomea.container import Container
    from gateway.receipts import read_message
    from tests.intake_support import container

    path = tmp_path / "abgabe.zip"
    path.write_bytes(container(tmp_path))

    def no_report(self: Container) -> None:
        raise AssertionError("the documents were hashed again")

    monkeypatch.setattr(Container, "report", no_report)
    with ExitStack() as stack:
        checked = read_message(path, "container", stack)

    assert checked.read().kopf.nachrichtentyp == "0401"
