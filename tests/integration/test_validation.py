"""Version detection, schema findings and semantic rules on real schemas."""

from __future__ import annotations

import pytest

from adapters.xdomea.validation import check_message
from contracts.xdomea import Severity
from tests.conftest import SHARED_SAMPLES, VERSIONS
from tests.zipcraft import SAMPLE_0503

SAMPLE = (SHARED_SAMPLES / SAMPLE_0503).read_bytes()


@pytest.mark.parametrize("version", [v for v in VERSIONS if v != "3.1.0"])
def test_version_is_taken_from_the_namespace(version: str) -> None:
    """The namespace URN decides which schema validates the message."""
    sample = (
        SHARED_SAMPLES / f"xdomea-{version}" / "xx_Aussonderung.Aussonderung.0503.xml"
    ).read_bytes()

    checked = check_message(sample)

    assert checked.detected.version == version
    assert checked.detected.typ.code == "0503"
    assert checked.detected.typ.family == "Aussonderung"


def test_schema_errors_carry_line_and_element_path() -> None:
    """A schema error names its line and the element path, for people and machines."""
    broken = SAMPLE.replace(
        b"<xdomea:Erstellungszeitpunkt>2018-07-24T17:25:39", b"<xdomea:Erstellungszeitpunkt>gestern"
    )

    checked = check_message(broken)

    (finding,) = [f for f in checked.findings if f.severity is Severity.ERROR]
    assert finding.line == 13
    assert (
        finding.path
        == "/xdomea:Aussonderung.Aussonderung.0503/xdomea:Kopf/xdomea:Erstellungszeitpunkt"
    )
    assert "gestern" in finding.message


def test_a_uuid_used_twice_is_an_error_regardless_of_case() -> None:
    """Two Schriftgutobjekte with the same UUID (differing only in case) make the message invalid."""
    head, tail = SAMPLE.split(b"<xdomea:Schriftgutobjekt>")
    dokument = tail.split(b"</xdomea:Schriftgutobjekt>")[0]
    twice = (
        head
        + b"<xdomea:Schriftgutobjekt>"
        + dokument
        + b"</xdomea:Schriftgutobjekt><xdomea:Schriftgutobjekt>"
        + dokument.replace(
            b"d9fc876a-3838-4e15-9203-15c703afe730", b"D9FC876A-3838-4E15-9203-15C703AFE730"
        )
        + b"</xdomea:Schriftgutobjekt>"
        + tail.split(b"</xdomea:Schriftgutobjekt>")[1]
    )

    checked = check_message(twice)

    assert not checked.valid
    assert any("used by more than one Schriftgutobjekt" in f.message for f in checked.findings)


def test_kopf_code_differing_from_root_element_is_only_a_warning() -> None:
    """The official samples carry template Kopf codes; that warns but stays valid."""
    sample = (
        SHARED_SAMPLES / "xdomea-3.0.0" / "xx_Aussonderung.Bewertungsverzeichnis.0502.xml"
    ).read_bytes()

    checked = check_message(sample)

    assert checked.valid
    assert [f.severity for f in checked.findings] == [Severity.WARNING]


def test_the_message_view_is_built_once_per_check() -> None:
    """Every ``read`` of one checked message returns the same view, built the first time."""
    checked = check_message((SHARED_SAMPLES / SAMPLE_0503).read_bytes())

    assert checked.read() is checked.read()
