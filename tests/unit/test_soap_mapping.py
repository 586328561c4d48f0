"""The SOAP destination's declarative mapping: XPath → parameters, answer → fields, fault rules."""

from __future__ import annotations

import pytest
from lxml import etree

from adapters.soap import mapping
from contracts.config import SoapFaultRules
from gateway.errors import PermanentDeliveryError

NS = "urn:xoev-de:xdomea:schema:3.1.0"
MESSAGE = etree.fromstring(
    f"""<x:Abgabe.Abgabe.0401 xmlns:x="{NS}">
      <x:Kopf><x:ProzessID>p-1</x:ProzessID></x:Kopf>
      <x:Schriftgutobjekt><x:Akte>
        <x:AllgemeineMetadaten><x:Betreff>Bauantrag <x:b>Lindenweg</x:b> 3</x:Betreff></x:AllgemeineMetadaten>
      </x:Akte></x:Schriftgutobjekt>
      <x:Schriftgutobjekt><x:Akte><x:AllgemeineMetadaten><x:Betreff>zweite</x:Betreff></x:AllgemeineMetadaten></x:Akte></x:Schriftgutobjekt>
    </x:Abgabe.Abgabe.0401>"""
)
XDOMEA = {"xdomea": NS}


def evaluate(**paths: str) -> dict[str, object]:
    """The parameters of ``paths`` (dots written as ``__``) on the test message."""
    return mapping.parameters(
        MESSAGE, {k.replace("__", "."): v for k, v in paths.items()}, XDOMEA, where="test"
    )


def test_dotted_paths_build_nested_parameters() -> None:
    """``a.b`` and ``a.c`` end up in one nested dict, as zeep takes complex types."""
    assert evaluate(a__b="'1'", a__c="'2'", d="'3'") == {"a": {"b": "1", "c": "2"}, "d": "3"}


def test_an_element_gives_its_whole_text_and_only_the_first_match_counts() -> None:
    """A node-set yields the text of its first node, nested markup included."""
    assert evaluate(betreff="//xdomea:Betreff") == {"betreff": "Bauantrag Lindenweg 3"}


def test_string_literals_numbers_and_booleans_are_written_as_text() -> None:
    """Constants, whole numbers and booleans become the text zeep sends."""
    assert evaluate(c="'fest'", n="count(//xdomea:Akte)", b="1 = 1") == {
        "c": "fest",
        "n": "2",
        "b": "true",
    }


def test_an_empty_match_leaves_the_parameter_out() -> None:
    """No node matched: the parameter is not sent at all."""
    assert evaluate(missing="//xdomea:Vorgang/xdomea:ID") == {}


def test_an_unbound_prefix_is_a_permanent_error_naming_the_parameter() -> None:
    """An expression that fails on the message names its parameter and the fix."""
    with pytest.raises(PermanentDeliveryError, match=r"parameter shortname.*namespaces"):
        evaluate(shortname="//other:Betreff")


def test_colliding_paths_are_refused() -> None:
    """``a`` and ``a.b`` cannot both be set."""
    with pytest.raises(PermanentDeliveryError, match="collides"):
        evaluate(a="'1'", a__b="'2'")


def test_response_fields_follow_dotted_paths_through_dicts_and_lists() -> None:
    """Fields are read from the serialized answer; absent ones are ``None``."""
    answer = {"status": 0, "objid": "COO.1", "items": [{"name": "x"}]}

    assert mapping.response_fields(
        answer, {"id": "objid", "first": "items.0.name", "none": "nope.deeper"}
    ) == {"id": "COO.1", "first": "x", "none": None}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("soap:Client", "permanent"),
        ("{http://www.w3.org/2003/05/soap-envelope}Sender", "permanent"),
        ("soap:Server", "transient"),
        ("Receiver", "transient"),
        (None, "transient"),
    ],
)
def test_default_rules_make_client_faults_permanent_and_server_faults_transient(
    code: str | None, expected: str
) -> None:
    """Client/Sender faults are the caller's fault; Server/Receiver and unknown ones are retried."""
    assert mapping.classify_fault(code, "boom", SoapFaultRules()) == expected


def test_message_rules_override_the_fault_code() -> None:
    """A transient pattern wins over a Client code, a permanent pattern over a Server code."""
    rules = SoapFaultRules(transient_messages=("gesperrt",), permanent_messages=("unbekannt",))

    assert mapping.classify_fault("soap:Client", "Objekt gesperrt", rules) == "transient"
    assert mapping.classify_fault("soap:Server", "Aktenzeichen unbekannt", rules) == "permanent"
