"""The DMS mapping rules, configuration and error classification, without I/O."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import zeep.exceptions
from lxml import etree
from pydantic import ValidationError

from adapters.dms import dmsin, dmsin_client, mapping
from contracts.config import DmsDestination
from contracts.dms import Dokumenttyp, FormatEintrag, Objektdaten
from contracts.xdomea import Schriftgutobjekt, SchriftgutobjektArt
from gateway.errors import BuildError, PermanentDeliveryError, TransientDeliveryError

PLAN = mapping.Aktenplan({"63": "COO.63", "63.01": "COO.6301", "63.01.02": "COO.630102"})


@pytest.mark.parametrize(
    ("kennzeichen", "adresse"),
    [
        ("63.01.02/2024", "COO.630102"),
        ("63.01.03/2024", "COO.6301"),
        ("63.011/2024", "COO.63"),
        ("63 - 17", "COO.63"),
        ("630/1", None),
        (None, None),
    ],
)
def test_aktenplan_takes_the_longest_prefix_at_a_separator(
    kennzeichen: str | None, adresse: str | None
) -> None:
    """A prefix matches only up to a separator, and the longest match wins."""
    assert PLAN.eintrag(kennzeichen) == adresse


def test_aktenplan_default_catches_the_rest() -> None:
    """Without a matching prefix the default Aktenplaneintrag is used."""
    assert mapping.Aktenplan({"63": "COO.63"}, default="COO.0").eintrag("10.1") == "COO.0"


def _dokument(**fields: object) -> Schriftgutobjekt:
    return Schriftgutobjekt(art=SchriftgutobjektArt.DOKUMENT, uuid="u", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "typ"),
    [
        ({}, Dokumenttyp.INTERN),
        ({"posteingangsdatum": date(2024, 1, 2)}, Dokumenttyp.EINGANG),
        ({"fremdes_geschaeftszeichen": "AZ 1"}, Dokumenttyp.EINGANG),
    ],
)
def test_incoming_letters_are_recognised(fields: dict[str, object], typ: Dokumenttyp) -> None:
    """Posteingangsdatum or a fremdes Geschäftszeichen make a Dokument an Eingang."""
    assert mapping.dokumenttyp(_dokument(**fields)) is typ


def test_object_sources_keep_each_object_without_its_children() -> None:
    """Each object's own element is kept; a comment marks where each child object stood."""
    ns = "urn:xoev-de:xdomea:schema:3.1.0"
    root = etree.fromstring(
        f'<x:Abgabe.Abgabe.0401 xmlns:x="{ns}"><x:Schriftgutobjekt><x:Akte>'
        "<x:Identifikation><x:ID>A</x:ID></x:Identifikation><x:Bemerkung>keep</x:Bemerkung>"
        "<x:Akteninhalt><x:Dokument><x:Identifikation><x:ID>D</x:ID></x:Identifikation>"
        "</x:Dokument></x:Akteninhalt></x:Akte></x:Schriftgutobjekt></x:Abgabe.Abgabe.0401>"
    )

    sources = mapping.object_sources(root)

    assert set(sources) == {"a", "d"}
    assert "keep" in sources["a"]
    assert "<x:Akteninhalt><!--ikz-sgo:D--></x:Akteninhalt>" in sources["a"]
    assert "<x:ID>D</x:ID>" in sources["d"]


def test_export_spec_groups_children_and_versions() -> None:
    """Read-back objects become specs: kinds grouped as xdomea orders them, versions by number."""
    dok = mapping.Knoten(
        daten=Objektdaten(
            art=SchriftgutobjektArt.DOKUMENT,
            uuid="d",
            formate=(
                FormatEintrag(nummer="1", code="018", version="1.7", dateiname="d_a.pdf"),
                FormatEintrag(nummer="2", code="018", version="1.7", dateiname="d_b.pdf"),
            ),
        ),
        kinder=(),
        inhalte=("d_a.pdf", "d_b.pdf", "d_scan.tif"),
    )
    vorgang = mapping.Knoten(
        daten=Objektdaten(art=SchriftgutobjektArt.VORGANG, uuid="v"), kinder=(dok,)
    )
    akte = mapping.Knoten(
        daten=Objektdaten(art=SchriftgutobjektArt.AKTE, uuid="a"), kinder=(vorgang, dok)
    )

    spec = mapping.spec(akte)

    assert [d.uuid for d in spec.dokumente] == ["d"]  # type: ignore[union-attr]
    assert [v.uuid for v in spec.vorgaenge] == ["v"]  # type: ignore[union-attr]
    versionen = spec.dokumente[0].versionen  # type: ignore[union-attr]
    assert [(v.nummer, [f.dateiname for f in v.formate]) for v in versionen] == [
        ("1", ["d_a.pdf", "d_scan.tif"]),
        ("2", ["d_b.pdf"]),
    ]
    assert versionen[0].formate[1].code == "023"  # tif, added in the DMS by hand


def test_an_akte_inside_a_vorgang_cannot_be_exported() -> None:
    """xdomea has no Akte in a Vorgang; the export says so instead of writing nonsense."""
    akte = mapping.Knoten(daten=Objektdaten(art=SchriftgutobjektArt.AKTE, uuid="a"), kinder=())
    vorgang = mapping.Knoten(
        daten=Objektdaten(art=SchriftgutobjektArt.VORGANG, uuid="v"), kinder=(akte,)
    )

    with pytest.raises(BuildError, match="Akte inside a Vorgang"):
        mapping.spec(vorgang)


@pytest.mark.parametrize(
    ("name", "parts"),
    [("u_a.pdf", ("u_a", "pdf")), ("u_a.b.pdf", ("u_a.b", "pdf")), ("u_ohne", ("u_ohne", None))],
)
def test_file_names_split_into_name_and_extension(name: str, parts: tuple[str, str | None]) -> None:
    """dmsin keeps name and extension apart; joined again they give the xdomea Dateiname."""
    assert dmsin._split(name) == parts


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("soap:Client", PermanentDeliveryError),
        ("{http://www.w3.org/2003/05/soap-envelope}Sender", PermanentDeliveryError),
        ("soap:Server", TransientDeliveryError),
        ("soap:Receiver", TransientDeliveryError),
        (None, TransientDeliveryError),
    ],
)
def test_soap_faults_blame_the_request_or_the_service(
    code: str | None, error: type[Exception]
) -> None:
    """Client/Sender faults dead-letter (the request is wrong); others retry."""
    result = dmsin_client._fault(zeep.exceptions.Fault("boom", code=code), "CreateFileGI at X")

    assert isinstance(result, error)
    assert "CreateFileGI at X" in str(result) and "boom" in str(result)


def test_dms_destination_needs_its_backend_settings() -> None:
    """A dmsin destination without a dmsin table is refused with the table to add."""
    with pytest.raises(ValidationError, match=r"\[destinations\.NAME\.dmsin\]"):
        DmsDestination.model_validate({"type": "dms", "backend": "dmsin"})
    with pytest.raises(ValidationError, match="directory"):
        DmsDestination.model_validate({"type": "dms", "backend": "filesystem"})


def test_relative_paths_resolve_against_the_config_file() -> None:
    """Folder, WSDL file and TLS files are relative to gateway.toml; URLs stay as they are."""
    config = DmsDestination.model_validate(
        {
            "type": "dms",
            "backend": "dmsin",
            "directory": "dms",
            "dmsin": {"wsdl": "wsdl/dmsin.wsdl", "userlogin": "u", "ca_file": "ca.pem"},
        }
    ).resolved(Path("/etc/ikz"))

    assert config.directory == Path("/etc/ikz/dms")
    assert config.dmsin is not None
    assert (config.dmsin.wsdl, config.dmsin.ca_file) == (
        "/etc/ikz/wsdl/dmsin.wsdl",
        Path("/etc/ikz/ca.pem"),
    )
    url = config.dmsin.model_copy(update={"wsdl": "https://dms/x?wsdl"})
    resolved = config.model_copy(update={"dmsin": url}).resolved(Path("/etc/ikz"))
    assert resolved.dmsin is not None and resolved.dmsin.wsdl == "https://dms/x?wsdl"
