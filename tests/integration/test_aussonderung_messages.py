"""Reading an archive's Bewertungsverzeichnis (0502) in every xdomea version."""

from __future__ import annotations

import pytest

from adapters.xdomea import builders
from adapters.xdomea.bewertung import read_bewertungen
from adapters.xdomea.validation import check_message
from gateway.errors import ReceiptError
from tests.conftest import VERSIONS
from tests.xdomea_specs import ABSENDER, EMPFAENGER

A_UUID = "AAAAAAAA-1111-4111-8111-111111111111"
V_UUID = "bbbbbbbb-2222-4222-8222-222222222222"


def _0502(version: str) -> bytes:
    return builders.build_bewertungsverzeichnis_0502(
        version, {A_UUID: "A", V_UUID: "V"}, absender=EMPFAENGER, empfaenger=ABSENDER
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_the_aussonderungsart_of_each_object_is_read_in_every_version(version: str) -> None:
    """2.x writes the code directly, 3.x in a choice; both read the same, UUIDs case-insensitive."""
    checked = check_message(_0502(version))
    assert checked.valid
    assert read_bewertungen(checked) == {A_UUID.lower(): "A", V_UUID: "V"}


def test_a_code_outside_the_code_list_is_reported_with_the_object() -> None:
    """An Aussonderungsart the code list does not know is refused, naming the object."""
    xml = _0502("3.1.0").replace(b"<code>V</code>", b"<code>X</code>")
    with pytest.raises(ReceiptError, match=rf"{V_UUID}.*'X'.*not in the code list"):
        read_bewertungen(check_message(xml))
