"""What the XTA service writes conforms to the WSDL's schemas: faults, metadata, box answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from adapters.xta import metadata
from adapters.xta.box_port import _attributes, _box_response
from adapters.xta.msgbox import BoxEntry
from adapters.xta.schema import XtaSchema
from adapters.xta.soap import FEHLERNUMMERN, S12, Exception_, XtaFault
from tests.xta_support import WSDL

SCHEMA = XtaSchema(WSDL)


@pytest.mark.parametrize("exception", list(Exception_))
def test_fault_detail_is_the_wsdl_exception_element(exception: Exception_) -> None:
    """Every fault's Detail holds a schema-valid exception element with its Fehlernummer."""
    envelope = etree.fromstring(XtaFault(exception, "9000", "why").envelope("urn:a", "urn:m"))
    (detail,) = envelope.iterfind(f".//{{{S12}}}Detail/*")
    SCHEMA.check(detail, "the fault detail")
    assert etree.QName(detail).localname == exception.value
    assert envelope.findtext(f".//{{{S12}}}Reason/{{{S12}}}Text") == "why"


def test_every_fehlernummer_used_is_in_the_code_list() -> None:
    """The Fehlernummern the service uses are values of the XTA code list (schema-valid)."""
    for code in FEHLERNUMMERN:
        fault = XtaFault(Exception_.PARAMETER_IS_NOT_VALID, code, "x")
        (detail,) = etree.fromstring(fault.envelope()).iterfind(f".//{{{S12}}}Detail/*")
        SCHEMA.check(detail, f"Fehlernummer {code}")


def test_message_metadata_is_schema_valid() -> None:
    """The MessageMetaData the client sends and the box returns passes the OSCI schema."""
    built = metadata.build(
        metadata.MetaData(
            message_id="urn:x:1",
            author="060:0815",
            reader="060:4711",
            nachrichtentyp="0604",
            size=10,
            delivery=datetime(2026, 11, 23, tzinfo=UTC),
        )
    )
    SCHEMA.check(built, "MessageMetaData")
    assert metadata.message_id(built) == "urn:x:1"


def test_status_list_entries_and_box_response_are_schema_valid() -> None:
    """MsgAttributes and MsgBoxResponse (with items pending and with none) pass the schema."""
    entry = BoxEntry(
        seq=3,
        partner_id="kommune-a",
        message_id="m",
        xta_message_id="urn:ikz-gateway:message:m",
        blob_sha256="0" * 64,
        size=5,
        content_kind="message",
        file_name=None,
        nachrichtentyp="0403",
        prozess_id="p",
        delivered_at=datetime(2026, 11, 23, tzinfo=UTC),
        fetched_at=None,
    )
    listing = etree.Element("{http://www.osci.eu/ws/2008/05/transport}MsgStatusList")
    listing.append(_attributes(entry))
    SCHEMA.check(listing, "MsgStatusList")
    SCHEMA.check(_box_response("kommune-a", 3, 2, True), "MsgBoxResponse")
    SCHEMA.check(_box_response("kommune-a", 0, 0, False), "MsgBoxResponse")
