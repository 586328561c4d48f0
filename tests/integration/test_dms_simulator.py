"""The dmsin simulator as a SOAP server: its WSDL, faults for bad requests, durability, control."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import zeep
from lxml import etree

from adapters.dms import dmsin_names as names
from tests.dms_support import WSDL, Sim, running_sim

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


def envelope(body: str, ns: str = SOAP11) -> str:
    """A SOAP envelope around ``body``."""
    return f'<s:Envelope xmlns:s="{ns}"><s:Body>{body}</s:Body></s:Envelope>'


def dmsin(element: str) -> str:
    """``element`` in the dmsin namespace (its children inherit it)."""
    name, _, rest = element.partition(">")
    return f'{name} xmlns="{names.NAMESPACE}">{rest}'


def fault_text(text: str) -> str:
    """The faultstring (1.1) or Reason/Text (1.2) of a fault envelope."""
    root = etree.fromstring(text.encode())
    found = root.findtext(".//faultstring") or root.findtext(f".//{{{SOAP12}}}Text")
    assert found is not None, text
    return found


@pytest.fixture
async def sim(tmp_path: Path) -> Any:
    """A running simulator."""
    async with running_sim(tmp_path / "sim") as running:
        yield running


async def client(sim: Sim) -> Any:
    """A zeep client built from the simulator's ?wsdl (in a thread: zeep blocks)."""
    return await asyncio.to_thread(zeep.Client, sim.url + "?wsdl")


async def test_wsdl_is_served_unchanged_but_for_the_address(sim: Sim) -> None:
    """?wsdl gives the file's bytes with only the service addresses pointing at the simulator."""
    async with sim.session.get(sim.url + "?wsdl") as response:
        served = await response.read()
    original = WSDL.read_bytes()

    assert served.count(sim.url.encode()) == 2
    assert served.replace(sim.url.encode(), b"") == original.replace(
        b"http://cisl578.solutions.fabasoft.com:17080/fsc/fscdav/wsdl?WEBSVC=LHMBAI_15_1700_GIWSD",
        b"",
    )


async def test_zeep_client_from_served_wsdl_calls_the_simulator(sim: Sim) -> None:
    """A client made only from the served WSDL reaches the simulator and gets status 0."""
    service = (await client(sim)).service

    response = await asyncio.to_thread(
        service.CreateFileGI, userlogin="u", apentry=sim.aktenplaneintrag, filesubj="Bauakte"
    )

    assert response.status == 0
    assert response.objid.startswith("COO.")


async def test_soap12_request_gets_a_soap12_answer(sim: Sim) -> None:
    """The SOAP 1.2 binding works too, answered with a 1.2 envelope."""
    body = envelope(
        dmsin(
            "<ReadMetadataObjectGI><userlogin>u</userlogin>"
            f"<objaddress>{sim.aktenplaneintrag}</objaddress></ReadMetadataObjectGI>"
        ),
        SOAP12,
    )

    status, text = await sim.post(body, "application/soap+xml; charset=utf-8")

    assert status == 200
    assert etree.fromstring(text.encode()).tag == f"{{{SOAP12}}}Envelope"
    assert names.AKTENPLANEINTRAG in text


async def test_unknown_operation_is_a_client_fault(sim: Sim) -> None:
    """An element the WSDL does not define is refused with a fault naming it."""
    status, text = await sim.post(
        envelope(dmsin("<DeleteEverythingGI><userlogin>u</userlogin></DeleteEverythingGI>")),
        "text/xml",
    )

    assert status == 500
    assert "<faultcode>s:Client</faultcode>" in text.replace("soap:", "s:")
    assert "unknown operation" in fault_text(text)
    assert "DeleteEverythingGI" in fault_text(text)


async def test_unimplemented_operation_is_a_server_fault(sim: Sim) -> None:
    """A WSDL operation the simulator does not carry out says so, and lists what it does."""
    body = envelope(
        dmsin(
            "<DepositObjectGI><userlogin>u</userlogin><objaddress>COO.1</objaddress>"
            "</DepositObjectGI>"
        )
    )

    status, text = await sim.post(body, "text/xml")

    assert status == 500
    assert "soap:Server" in text
    assert "DepositObjectGI is in the WSDL but not implemented" in fault_text(text)


async def test_invalid_request_names_the_problem(sim: Sim) -> None:
    """A body that breaks the WSDL's schema is refused with the element and what was expected."""
    body = envelope(
        dmsin("<CreateFileGI><userlogin>u</userlogin><filesubj>x</filesubj></CreateFileGI>")
    )

    status, text = await sim.post(body, "text/xml")

    assert status == 500
    message = fault_text(text)
    assert message.startswith("invalid CreateFileGI request")
    assert "filesubj" in message and "apentry" in message


async def test_invalid_soap12_request_is_a_sender_fault_with_400(sim: Sim) -> None:
    """SOAP 1.2 refusals are Sender faults with HTTP 400."""
    body = envelope(dmsin("<ReadFileGI><objaddress>x</objaddress></ReadFileGI>"), SOAP12)

    status, text = await sim.post(body, "application/soap+xml")

    assert status == 400
    assert "soap:Sender" in text
    assert "userlogin" in fault_text(text)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<not xml", "text/xml", "not well-formed"),
        (envelope(""), "text/xml", "exactly one element"),
        (envelope("<a/>", SOAP12), "text/xml", "expected a SOAP 1.1 Envelope"),
        ('<!DOCTYPE x [<!ENTITY e "y">]><x>&e;</x>', "text/xml", "DTD"),
        (envelope("<a/>"), "application/json", "is not SOAP"),
    ],
)
async def test_unusable_requests_are_faults(
    sim: Sim, body: str, content_type: str, expected: str
) -> None:
    """Malformed XML, empty bodies, wrong envelopes, DTDs and non-SOAP types are refused."""
    status, text = await sim.post(body, content_type)

    assert status == 500
    assert expected in fault_text(text)


async def test_soapaction_must_match_the_body(sim: Sim) -> None:
    """A SOAPAction header naming another operation than the body is refused."""
    body = envelope(
        dmsin("<ReadFileGI><userlogin>u</userlogin><objaddress>x</objaddress></ReadFileGI>")
    )

    status, text = await sim.post(
        body,
        "text/xml",
        SOAPAction='"http://schemas.fabasoft.com/object/LHMBAI_15_1700_CreateFileGI"',
    )

    assert status == 500
    assert "does not match the body's operation ReadFileGI" in fault_text(text)


async def test_business_errors_answer_with_status(sim: Sim) -> None:
    """An unknown address is status 1 with an errormessage, not a fault (as dmsin does)."""
    service = (await client(sim)).service

    response = await asyncio.to_thread(
        service.ReadFileGI, userlogin="u", objaddress="COO.2150.9151.1.999"
    )

    assert response.status == 1
    assert "nicht gefunden" in response.errormessage


async def test_objects_survive_a_restart(tmp_path: Path) -> None:
    """What the simulator answered is in its data folder and there after a restart."""
    async with running_sim(tmp_path / "sim") as first:
        service = (await client(first)).service
        created = await asyncio.to_thread(
            service.CreateFileGI, userlogin="u", apentry=first.aktenplaneintrag, filesubj="Bau"
        )

    async with running_sim(tmp_path / "sim") as second:
        service = (await client(second)).service
        read = await asyncio.to_thread(service.ReadFileGI, userlogin="u", objaddress=created.objid)

    assert (read.status, read.filesubj) == (0, "Bau")


async def test_fault_rules_are_checked(sim: Sim) -> None:
    """A fault rule the simulator cannot apply is refused with the reason."""
    async with sim.session.post(
        sim.url + "_control/faults", json={"operation": "X", "kind": "business", "when": "after"}
    ) as response:
        assert response.status == 422
        assert "when=before" in await response.text()


async def test_skip_and_times_count_calls(sim: Sim) -> None:
    """A rule lets ``skip`` calls through, then strikes ``times`` times, then is gone."""
    service = (await client(sim)).service
    await sim.fault(operation="ReadMetadataObjectGI", kind="business", status=75, skip=1, times=2)

    statuses = [
        (
            await asyncio.to_thread(
                service.ReadMetadataObjectGI, userlogin="u", objaddress=sim.aktenplaneintrag
            )
        ).status
        for _ in range(4)
    ]

    assert statuses == [0, 75, 75, 0]
