"""Bad XTA 2 requests get the WSDL's faults with clear texts, and nothing is journaled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
import zeep
import zeep.exceptions
from lxml import etree

from adapters.soap.session import CaSession
from contracts.config import HttpConfig, PartnerConfig, ServerTlsConfig
from gateway import tls
from gateway.journal.store import Journal
from tests.certs import CertAuthority, Credential
from tests.intake_support import blob_files, container
from tests.xta_support import (
    NS,
    Client,
    Gateway,
    call,
    meta,
    new_message_id,
    running_gateway,
    xta_config,
)


def _fault(exc: zeep.exceptions.Fault) -> tuple[str, str]:
    """The exception element's local name and Fehlernummer of a fault."""
    assert exc.detail is not None
    exception = next(c for c in exc.detail if isinstance(c.tag, str))
    assert exception.tag.startswith(NS)
    return etree.QName(exception).localname, exception.findtext(f"{NS}errorCode/code") or ""


async def _journaled(gateway: Gateway) -> int:
    journal = Journal.from_url(gateway.config.storage.journal)
    try:
        return len(await journal.list_messages())
    finally:
        await journal.close()


async def _send(xta_client: Client, data: bytes, xta_id: str = "urn:test:1") -> None:
    await call(
        xta_client.send.sendMessage,
        ContentContainer={"Message": {"_value_1": data, "contentType": "application/zip"}},
        _soapheaders=[meta(xta_id)],
    )


async def _post(gateway: Gateway, envelope: bytes) -> tuple[int, str]:
    headers = {"Content-Type": "application/soap+xml"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(gateway.url, data=envelope, headers=headers) as answer,
    ):
        return answer.status, await answer.text()


def _envelope(header: bytes) -> bytes:
    return (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:wsa="http://www.w3.org/2005/08/addressing"><s:Header>'
        + header
        + b"</s:Header><s:Body/></s:Envelope>"
    )


async def test_unknown_operation_is_a_parameter_fault(tmp_path: Path) -> None:
    """An Action the WSDL does not know is refused as ParameterIsNotValidException 9021."""
    envelope = _envelope(b"<wsa:Action>http://www.xta.de/XTA/DeleteEverything</wsa:Action>")
    async with running_gateway(xta_config(tmp_path)) as gateway:
        status, text = await _post(gateway, envelope)
    assert status == 400
    assert "ParameterIsNotValidException" in text
    assert "<code>9021</code>" in text
    assert "unknown operation: the Action http://www.xta.de/XTA/DeleteEverything" in text


async def test_missing_addressing_action_is_a_parameter_fault(tmp_path: Path) -> None:
    """A request without wsa:Action is told that XTA 2 requires WS-Addressing (9020)."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        status, text = await _post(gateway, _envelope(b""))
    assert status == 400
    assert "ParameterIsNotValidException" in text
    assert "<code>9020</code>" in text
    assert "no WS-Addressing Action (wsa:Action)" in text


async def test_request_with_a_dtd_is_refused(tmp_path: Path) -> None:
    """An envelope declaring a DTD (entity expansion, XXE) is refused before anything else."""
    envelope = b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x "y">]>' + _envelope(b"")
    async with running_gateway(xta_config(tmp_path)) as gateway:
        status, text = await _post(gateway, envelope)
    assert status == 400
    assert "ParameterIsNotValidException" in text


async def test_wrong_username_token_is_permission_denied(tmp_path: Path) -> None:
    """A UsernameToken with a wrong password is PermissionDeniedException 9012; nothing kept."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        intruder = gateway.client(password="not-the-token")
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await _send(intruder, container(tmp_path))
        journaled = await _journaled(gateway)
    assert _fault(raised.value) == ("PermissionDeniedException", "9012")
    assert "UsernameToken for kommune-a is not valid" in raised.value.message
    assert journaled == 0


async def test_no_credentials_is_permission_denied(tmp_path: Path) -> None:
    """A request without certificate or UsernameToken is PermissionDeniedException."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        anonymous = gateway.client(username=None)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await call(anonymous.management.checkAccountActive)
    assert _fault(raised.value) == ("PermissionDeniedException", "9012")
    assert "no credentials" in raised.value.message


async def test_oversized_attachment_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    """An MTOM part above [xta] max_message_bytes is ParameterIsNotValidException 9023."""
    upload = tmp_path / "big.zip"
    upload.write_bytes(container(tmp_path))
    async with running_gateway(xta_config(tmp_path, max_message_bytes=1000)) as gateway:
        sender = gateway.client()
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await call(
                sender.send.sendMessage,
                ContentContainer={
                    "Message": {"_value_1": sender.attach(upload), "contentType": "application/zip"}
                },
                _soapheaders=[meta("urn:test:big")],
            )
        journaled = await _journaled(gateway)
    assert _fault(raised.value) == ("ParameterIsNotValidException", "9023")
    assert "exceeds this gateway's XTA limit of 1000 bytes" in raised.value.message
    assert journaled == 0
    assert not blob_files(tmp_path / "blobs")


async def test_non_xdomea_payload_is_a_schema_violation(tmp_path: Path) -> None:
    """A payload that is no xdomea message is MessageSchemaViolationException; nothing kept."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        sender = gateway.client(mtom=False)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await _send(sender, b"<Antrag xmlns='urn:example:fachverfahren'>Hund</Antrag>")
        journaled = await _journaled(gateway)
    assert _fault(raised.value) == ("MessageSchemaViolationException", "9050")
    assert "xdomea" in raised.value.message
    assert journaled == 0


async def test_send_without_message_metadata_is_a_parameter_fault(tmp_path: Path) -> None:
    """sendMessage without the MessageMetaData header the WSDL binds is refused (9020)."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        sender = gateway.client(mtom=False)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await call(
                sender.send.sendMessage,
                ContentContainer={
                    "Message": {"_value_1": container(tmp_path), "contentType": "application/zip"}
                },
            )
    assert _fault(raised.value) == ("ParameterIsNotValidException", "9020")
    assert "MessageMetaData" in raised.value.message


async def test_send_message_sync_is_not_offered(tmp_path: Path) -> None:
    """sendMessageSync answers SyncAsyncException 9080: the service is asynchronous only."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        sender = gateway.client(mtom=False)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await call(
                sender.send.sendMessageSync,
                ContentContainer={"Message": {"_value_1": b"x", "contentType": "text/plain"}},
                _soapheaders=[meta("urn:test:sync")],
            )
    assert _fault(raised.value) == ("SyncAsyncException", "9080")


async def test_unknown_message_id_has_no_transport_report(tmp_path: Path) -> None:
    """getTransportReport of a MessageID the partner never got is InvalidMessageIDException."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        sender = gateway.client()
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await call(sender.management.getTransportReport, "urn:de:xta:messageid:nobody:1")
    assert _fault(raised.value) == ("InvalidMessageIDException", "9070")


async def test_transport_report_of_a_sent_message_turns_green(tmp_path: Path) -> None:
    """A message sent under a created MessageID reports status 1 once it is delivered."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        sender = gateway.client(mtom=False)
        xta_id = await new_message_id(sender)
        await _send(sender, container(tmp_path), xta_id)
        statuses = []
        for _ in range(200):
            report = await call(sender.management.getTransportReport, xta_id)
            statuses.append(int(report.MessageStatus.Status))
            if statuses[-1] == 1:
                break
            await asyncio.sleep(0.05)
    assert statuses[-1] == 1
    assert str(report.MessageMetaData.MsgIdentification.MessageID._value_1) == xta_id


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CertAuthority, Credential, Credential, Credential]:
    """A CA, B's server certificate, A's client certificate and a stranger's."""
    ca = CertAuthority.create(tmp_path / "ca")
    server = ca.issue(tmp_path / "b", "kommune-b", server=True)
    partner = ca.issue(tmp_path / "a", "kommune-a", client=True)
    stranger = ca.issue(tmp_path / "x", "stranger", client=True)
    return ca, server, partner, stranger


async def test_certificate_of_no_partner_is_permission_denied(
    tmp_path: Path, pki: tuple[CertAuthority, Credential, Credential, Credential]
) -> None:
    """A client certificate that chains to client_ca but is bound to no partner is refused."""
    ca, server, partner, stranger = pki
    config = xta_config(
        tmp_path,
        http=HttpConfig(
            tls=ServerTlsConfig(
                certificate=server.certificate,
                private_key=server.key,
                client_ca=ca.certificate,
            )
        ),
        partners=(
            PartnerConfig(
                id="kommune-a",
                behoerdenkennung="060:0815",
                certificate_sha256=(partner.fingerprint,),
            ),
        ),
    )
    assert config.http.tls is not None
    async with running_gateway(config, ssl=tls.server_context(config.http.tls)) as gateway:
        xta = gateway.client(username=None, session=_session(ca, stranger))
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await _send(xta, container(tmp_path))
        journaled = await _journaled(gateway)
        accepted = gateway.client(username=None, session=_session(ca, partner))
        await call(accepted.management.checkAccountActive)
    assert _fault(raised.value) == ("PermissionDeniedException", "9012")
    assert "is not bound to exactly one partner" in raised.value.message
    assert journaled == 0


def _session(ca: CertAuthority, credential: Credential) -> CaSession:
    """A session presenting ``credential``; one request per connection (no idle TLS left)."""
    session = CaSession(str(ca.certificate))
    session.cert = (str(credential.certificate), str(credential.key))
    session.headers["Connection"] = "close"
    return session
