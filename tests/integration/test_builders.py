"""The builders write schema-valid xdomea of every version; the reader reads the spec back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from adapters.xdomea import builders
from adapters.xdomea.validation import check_message
from contracts.builders import AkteSpec, SendendesSystem, VorgangSpec
from gateway.errors import BuildError, GatewayError, UnsupportedVersion
from schemas.loader import default_loader
from tests import xdomea_specs as specs
from tests.conftest import VERSIONS

V2 = tuple(v for v in VERSIONS if v.startswith("2."))
V3 = tuple(v for v in VERSIONS if v.startswith("3."))
OBJECT_CODES = sorted(specs.OBJECT_BUILDERS)
ALL_CODES = sorted(builders.MESSAGE_ELEMENTS)


def _kopf_text(message: bytes, version: str, local: str) -> str | None:
    root = etree.fromstring(message)
    return root.findtext(f"{{{builders.dialect(version).namespace}}}Kopf/{{*}}{local}")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code", ALL_CODES)
def test_every_builder_writes_a_schema_valid_message(code: str, version: str) -> None:
    """Each builder's output passes its version's XSD and the semantic checks without a finding."""
    checked = check_message(specs.build(code, version))

    assert checked.valid
    assert checked.findings == ()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code", ALL_CODES)
def test_root_element_and_kopf_carry_the_same_code(code: str, version: str) -> None:
    """The Kopf's Nachrichtentyp is the root element's code, not a template value."""
    checked = check_message(specs.build(code, version))

    assert checked.detected.typ.element == builders.MESSAGE_ELEMENTS[code]
    assert checked.read().kopf.nachrichtentyp == code


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code", OBJECT_CODES)
def test_reader_gives_back_the_spec_tree(code: str, version: str) -> None:
    """Kinds, UUIDs, Betreff, Kennzeichen, versions and Dateinamen round-trip, nesting included."""
    objekte = specs.tree()

    nachricht = check_message(specs.build(code, version, objekte=objekte)).read()

    assert tuple(specs.shape(s) for s in nachricht.schriftgutobjekte) == specs.expected(objekte)


@pytest.mark.parametrize("version", VERSIONS)
def test_upper_case_uuids_are_kept_as_spelled(version: str) -> None:
    """UUIDs are written and read back in the sender's spelling, not normalised."""
    nachricht = check_message(specs.build("0503", version)).read()

    uuids = [sgo.uuid for sgo in nachricht.walk()]
    assert specs.UPPER_AKTE in uuids
    assert specs.UPPER_DOKUMENT in uuids


@pytest.mark.parametrize("version", VERSIONS)
def test_top_level_documents_stay_at_the_top_level(version: str) -> None:
    """Documents outside any Akte or Vorgang are read back as top-level objects."""
    objekte = specs.tree()

    nachricht = check_message(specs.build("0503", version, objekte=objekte)).read()

    top_level_documents = [s.uuid for s in nachricht.schriftgutobjekte if s.art == "Dokument"]
    assert top_level_documents == [o.uuid for o in objekte[3:]]


@pytest.mark.parametrize("version", VERSIONS)
def test_dateinamen_are_read_back_in_written_order(version: str) -> None:
    """Every Primaerdokument file name is referenced once, in the order the spec lists it."""
    objekte = specs.tree()
    written = [
        fmt.dateiname
        for sgo in _walk_specs(objekte)
        for v in getattr(sgo, "versionen", ())
        for fmt in v.formate
    ]

    nachricht = check_message(specs.build("0401", version, objekte=objekte)).read()

    assert list(nachricht.dateinamen()) == written


def _walk_specs(objekte: tuple[object, ...]) -> list[object]:
    found: list[object] = []
    for objekt in objekte:
        found.append(objekt)
        found.extend(_walk_specs(objekt.kinder))  # type: ignore[attr-defined]
    return found


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code", ALL_CODES)
def test_kopf_carries_the_given_ids_time_and_parties(code: str, version: str) -> None:
    """ProzessID, Erstellungszeitpunkt, Absender and Empfänger are read back as given."""
    prozess_id = "5C0FFEE5-0000-4000-8000-000000000001"
    zeitpunkt = datetime(2024, 5, 17, 8, 30, 0, tzinfo=UTC)

    kopf = (
        check_message(
            specs.build(code, version, prozess_id=prozess_id, erstellungszeitpunkt=zeitpunkt)
        )
        .read()
        .kopf
    )

    sender, receiver = (
        (specs.EMPFAENGER, specs.ABSENDER) if code == "0502" else (specs.ABSENDER, specs.EMPFAENGER)
    )
    assert (kopf.prozess_id, kopf.erstellungszeitpunkt) == (prozess_id, zeitpunkt)
    assert (kopf.absender, kopf.empfaenger) == (sender, receiver)


def test_default_prozess_id_is_a_fresh_uuid() -> None:
    """Without a ProzessID each message gets a new random UUID."""
    first = check_message(specs.build("0401", "3.1.0")).read().kopf.prozess_id
    second = check_message(specs.build("0401", "3.1.0")).read().kopf.prozess_id

    assert first != second
    assert uuid.UUID(first).version == 4


def test_default_erstellungszeitpunkt_is_now_in_utc_without_microseconds() -> None:
    """Without a time the Kopf is stamped with the current UTC time in whole seconds."""
    before = datetime.now(UTC).replace(microsecond=0)

    stamped = check_message(specs.build("0501", "3.1.0")).read().kopf.erstellungszeitpunkt

    assert stamped is not None
    assert stamped.utcoffset() == timedelta(0)
    assert stamped.microsecond == 0
    assert before <= stamped <= datetime.now(UTC)


@pytest.mark.parametrize("version", VERSIONS)
def test_sending_system_is_named_in_the_kopf(version: str) -> None:
    """SendendesSystem (required in 2.x) names the product, version and instance given."""
    system = SendendesSystem(produktname="DMS-Export", version="4.2", instanz_id="prod-1")

    message = specs.build("0401", version, sendendes_system=system)

    assert _kopf_text(message, version, "SendendesSystem/{*}Produktname") == "DMS-Export"
    assert _kopf_text(message, version, "SendendesSystem/{*}Version") == "4.2"
    assert _kopf_text(message, version, "SendendesSystem/{*}InstanzID") == "prod-1"


@pytest.mark.parametrize("version", VERSIONS)
def test_bewertungsverzeichnis_lists_each_bewertung(version: str) -> None:
    """Each object UUID is written as a BewertetesObjekt with its Aussonderungsart code."""
    bewertungen = {specs.UPPER_AKTE: "A", specs.UPPER_DOKUMENT: "V", str(uuid.uuid4()): "B"}

    root = check_message(specs.build("0502", version, bewertungen=bewertungen)).tree.getroot()

    written = {
        objekt.findtext("{*}ID"): objekt.findtext(".//{*}Aussonderungsart/code")
        for objekt in root.iterfind("{*}BewertetesObjekt")
    }
    assert written == bewertungen


@pytest.mark.parametrize("version", V3)
def test_3x_akte_holds_dokumente_and_vorgaenge_together(version: str) -> None:
    """In 3.x an Akte may hold Dokumente and Vorgänge directly side by side."""
    akte = AkteSpec(dokumente=(specs.dokument("Brief"),), vorgaenge=(VorgangSpec(),))

    checked = check_message(specs.build("0401", version, objekte=(akte,)))

    assert checked.valid
    assert [k.art for k in checked.read().schriftgutobjekte[0].kinder] == ["Dokument", "Vorgang"]


@pytest.mark.parametrize("version", V2)
def test_2x_refuses_an_akte_with_dokumente_and_vorgaenge(version: str) -> None:
    """A 2.x Akteninhalt holds one kind only, so the builder refuses a mixed Akte and says why."""
    akte = AkteSpec(dokumente=(specs.dokument("Brief"),), vorgaenge=(VorgangSpec(),))

    with pytest.raises(BuildError, match="only one kind per Akteninhalt"):
        specs.build("0401", version, objekte=(akte,))


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("code", ["0401", "0503"])
def test_2x_refuses_to_ask_for_an_empfangsbestaetigung_on_import(code: str, version: str) -> None:
    """A 2.x Abgabe or Aussonderung Kopf cannot ask for a receipt of arrival; asking is refused."""
    with pytest.raises(BuildError, match=r"exists from 3\.0\.0 on"):
        specs.build(code, version, empfangsbestaetigung=True)


@pytest.mark.parametrize("version", V3)
@pytest.mark.parametrize("code", ["0401", "0503"])
def test_3x_import_kopf_writes_the_empfangsbestaetigung_asked_for(code: str, version: str) -> None:
    """A 3.x Abgabe or Aussonderung Kopf asks for a receipt of arrival unless told not to."""
    asked = specs.build(code, version)
    declined = specs.build(code, version, empfangsbestaetigung=False)

    assert _kopf_text(asked, version, "Empfangsbestaetigung") == "1"
    assert _kopf_text(declined, version, "Empfangsbestaetigung") == "0"


@pytest.mark.parametrize("version", VERSIONS)
def test_aussonderung_writes_the_rueckmeldung_archivkennung_asked_for(version: str) -> None:
    """The 0503 Kopf asks for Archivkennungen by default and not when told not to."""
    asked = specs.build("0503", version)
    declined = specs.build("0503", version, rueckmeldung_archivkennung=False)

    assert _kopf_text(asked, version, "RueckmeldungArchivkennung") == "1"
    assert _kopf_text(declined, version, "RueckmeldungArchivkennung") == "0"


def test_unknown_version_is_refused() -> None:
    """A version the gateway does not know raises UnsupportedVersion naming the known ones."""
    with pytest.raises(UnsupportedVersion, match=r"supported versions: 2\.3\.0"):
        specs.build("0401", "9.9.9")


@pytest.mark.parametrize("code", OBJECT_CODES)
def test_message_without_objects_is_refused(code: str) -> None:
    """A message that needs Schriftgutobjekte is not written without one."""
    with pytest.raises(BuildError, match="at least one Schriftgutobjekt"):
        specs.build(code, "3.1.0", objekte=())


def test_empty_bewertungsverzeichnis_is_refused() -> None:
    """A Bewertungsverzeichnis without Bewertungen is not written."""
    with pytest.raises(BuildError, match="at least one BewertetesObjekt"):
        specs.build("0502", "3.1.0", bewertungen={})


def test_unknown_aussonderungsart_is_refused() -> None:
    """A Bewertung code outside A, B, V is refused before any XML is written."""
    with pytest.raises(BuildError, match="not in the code list"):
        specs.build("0502", "3.1.0", bewertungen={specs.UPPER_AKTE: "X"})


def test_build_errors_are_gateway_errors() -> None:
    """BuildError belongs to the gateway's exception hierarchy."""
    assert issubclass(BuildError, GatewayError)


def test_output_is_utf8_with_declaration_and_the_xdomea_prefix() -> None:
    """Messages start with an XML declaration, are UTF-8 and bind the namespace to ``xdomea``."""
    message = specs.build("0401", "3.1.0")

    root = etree.fromstring(message)
    assert message.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "Musterstraße".encode() in message
    assert root.prefix == "xdomea"
    assert root.nsmap == {"xdomea": "urn:xoev-de:xdomea:schema:3.1.0"}


@pytest.mark.parametrize("version", VERSIONS)
def test_builder_root_elements_exist_in_the_schemas(version: str) -> None:
    """Every root element the builders write is a message type the version's XSD declares."""
    declared = default_loader().version(version).message_types

    assert {element: declared.get(element) for element in builders.MESSAGE_ELEMENTS.values()} == {
        element: code for code, element in builders.MESSAGE_ELEMENTS.items()
    }
