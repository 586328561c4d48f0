"""FVDaten requests and 0630 answers are schema-valid in every version and read back as built."""

from __future__ import annotations

import re

import pytest

from adapters.xdomea import fvdaten
from adapters.xdomea.validation import check_message
from gateway.errors import BuildError
from tests import fvdaten_support as fv
from tests.conftest import SHARED_XDOMEA, VERSIONS

CODES = sorted(fv.REQUESTS)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code", CODES)
def test_every_request_builder_writes_a_schema_valid_message(code: str, version: str) -> None:
    """Each FVDaten request passes its version's XSD without a finding."""
    checked = check_message(fv.REQUESTS[code](version))

    assert checked.findings == ()
    assert checked.detected.typ.element == fvdaten.REQUESTS[code]


@pytest.mark.parametrize("version", VERSIONS)
def test_sgo_erstellen_carries_its_objects_for_the_reader(version: str) -> None:
    """The reader finds the 0604's Akte with its Dokument and primary document name."""
    nachricht = check_message(fv.REQUESTS["0604"](version)).read()

    (akte,) = nachricht.schriftgutobjekte
    assert akte.betreff == "Bauantrag Lindenweg 3"
    assert len(nachricht.dateinamen()) == 1


def _answer(version: str) -> fvdaten.Antwort:
    return fvdaten.Antwort(
        meldungen=(fvdaten.Meldung(code="0604003"),),
        rueckgaben=(
            fvdaten.Rueckgabe(
                erfolgreich=True, idsgo=fv.UUID, nummer_im_stapel=1, ablageort="COO.1.2.3"
            ),
            fvdaten.Rueckgabe(
                erfolgreich=False,
                nummer_im_stapel=2,
                feld=fvdaten.Feld(name="Fehler", wert="kein Aktenplaneintrag"),
                meldungen=(fvdaten.Meldung(code="0604003"), fvdaten.Meldung(text="why")),
            ),
        ),
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code", CODES)
def test_answer_to_every_request_is_schema_valid(code: str, version: str) -> None:
    """A 0630 with results, codes and texts passes the request version's XSD."""
    request = check_message(fv.REQUESTS[code](version))

    answer = check_message(
        fvdaten.build_antwort_0630(request, _answer(version), erstellungszeitpunkt=fv.ZEITPUNKT)
    )

    assert answer.findings == ()
    assert answer.detected.typ.element == fvdaten.ANTWORT_ELEMENT


@pytest.mark.parametrize("version", VERSIONS)
def test_answer_is_correlated_to_the_request(version: str) -> None:
    """The 0630 keeps the ProzessID and swaps Absender and Empfänger."""
    request = check_message(fv.REQUESTS["0625"](version))

    answer = check_message(
        fvdaten.build_antwort_0630(
            request,
            fvdaten.Antwort(meldungen=(fvdaten.Meldung(code=fvdaten.ERFOLG),)),
            erstellungszeitpunkt=fv.ZEITPUNKT,
        )
    ).read()

    assert answer.kopf.prozess_id == request.read().kopf.prozess_id
    assert answer.kopf.absender == fv.DMS
    assert answer.kopf.empfaenger == fv.FACHVERFAHREN


@pytest.mark.parametrize("version", VERSIONS)
def test_answer_reads_back_as_built(version: str) -> None:
    """Codes, results, Ablageort and fields survive writing and reading in every version."""
    request = check_message(fv.REQUESTS["0604"](version))
    built = _answer(version)

    read = fvdaten.read_antwort(
        check_message(fvdaten.build_antwort_0630(request, built, erstellungszeitpunkt=fv.ZEITPUNKT))
    )

    assert read.meldungen == built.meldungen
    assert read.rueckgaben == built.rueckgaben
    assert not read.erfolgreich


def test_answer_is_the_same_bytes_when_built_again() -> None:
    """Building the answer twice from the same request gives identical bytes."""
    request = check_message(fv.REQUESTS["0604"]("3.1.0"))
    answer = fvdaten.Antwort(meldungen=(fvdaten.Meldung(code=fvdaten.ERFOLG),))

    first = fvdaten.build_antwort_0630(request, answer, erstellungszeitpunkt=fv.ZEITPUNKT)
    second = fvdaten.build_antwort_0630(request, answer, erstellungszeitpunkt=fv.ZEITPUNKT)

    assert first == second


@pytest.mark.parametrize("version", ["2.3.0", "2.4.0"])
def test_two_x_answer_refuses_several_message_level_rueckmeldungen(version: str) -> None:
    """A 2.x 0630 has one Rueckmeldung; building one with two is refused with the reason."""
    request = check_message(fv.REQUESTS["0625"](version))
    answer = fvdaten.Antwort(
        meldungen=(fvdaten.Meldung(code="0625001"), fvdaten.Meldung(text="unbekannt"))
    )

    with pytest.raises(BuildError, match="exactly one Rueckmeldung"):
        fvdaten.build_antwort_0630(request, answer, erstellungszeitpunkt=fv.ZEITPUNKT)


def test_answer_refuses_a_message_that_is_no_fvdaten_request() -> None:
    """Only FVDaten requests are answered with a 0630."""
    request = check_message(fv.REQUESTS["0625"]("3.1.0"))
    answer = check_message(
        fvdaten.build_antwort_0630(
            request,
            fvdaten.Antwort(meldungen=(fvdaten.Meldung(code=fvdaten.ERFOLG),)),
            erstellungszeitpunkt=fv.ZEITPUNKT,
        )
    )

    with pytest.raises(BuildError, match="no FVDaten request"):
        fvdaten.build_antwort_0630(
            answer,
            fvdaten.Antwort(meldungen=(fvdaten.Meldung(code=fvdaten.ERFOLG),)),
            erstellungszeitpunkt=fv.ZEITPUNKT,
        )


def _code_list(path: str) -> dict[str, str]:
    text = (SHARED_XDOMEA / "3.0.0" / "code_lists" / path).read_text("utf-8")
    return dict(
        re.findall(
            r"<Value ColumnRef=\"[^\"]*\">\s*<SimpleValue>(\d{7})</SimpleValue>\s*</Value>\s*"
            r"<Value ColumnRef=\"[^\"]*\">\s*<SimpleValue>([^<]*)</SimpleValue>",
            text,
        )
    )


def test_every_code_the_gateway_writes_is_in_its_code_list() -> None:
    """Each code in ``fvdaten.CODES`` exists in the xdomea 3.0.0 code list it belongs to."""
    listed: dict[str, str] = {}
    for path in (SHARED_XDOMEA / "3.0.0" / "code_lists").iterdir():
        if "Fehlermeldung" in path.name or path.name.startswith("AllgemeineRueckmeldung"):
            listed.update(_code_list(path.name))

    missing = sorted(code for code in fvdaten.CODES if code not in listed)

    assert listed
    assert missing == []


@pytest.mark.parametrize("version", VERSIONS)
def test_empfangsbestaetigung_is_schema_valid_and_correlated(version: str) -> None:
    """The 0629 for a request asking for it passes the XSD and keeps the ProzessID."""
    request = check_message(fv.REQUESTS["0604"](version))

    empfang = check_message(fvdaten.build_empfang_0629(request, erstellungszeitpunkt=fv.ZEITPUNKT))

    assert empfang.findings == ()
    assert empfang.read().kopf.prozess_id == request.read().kopf.prozess_id
    assert not fvdaten.asks_for_empfang(request)
