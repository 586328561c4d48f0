"""Gateway A's ``xta`` destination delivers through gateway B's XTA 2 service (both on loopback)."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from adapters.xta.client import XtaClient
from contracts.config import (
    GatewayConfig,
    HttpConfig,
    NodeConfig,
    PartnerConfig,
    RouteConfig,
    ServerTlsConfig,
    StorageConfig,
    WorkerConfig,
    XtaDestination,
)
from contracts.delivery import Outbound
from gateway import tls
from gateway.app import send_file
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.journal.store import Journal
from tests.certs import CertAuthority
from tests.delivery_support import eventually
from tests.intake_support import TOKEN_A, container
from tests.xta_support import WSDL, running_gateway, xta_config

PASSWORD_ENV = "IKZ_TEST_XTA_PASSWORD"


def _gateway_a(tmp_path: Path, url: str) -> GatewayConfig:
    return GatewayConfig(
        node=NodeConfig(id="kommune-a", behoerdenkennung="060:0815"),
        storage=StorageConfig(
            journal=f"sqlite:///{tmp_path / 'journal.db'}", blobs=tmp_path / "blobs"
        ),
        worker=WorkerConfig(poll_interval_seconds=0.05),
        destinations={
            "kommune-b": XtaDestination(
                type="xta",
                wsdl=str(WSDL),
                endpoint=url,
                reader="060:4711",
                username="kommune-a",
                password_env=PASSWORD_ENV,
                max_attempts=2,
                initial_backoff_seconds=0.1,
            )
        },
        routes=(RouteConfig(empfaenger="060:4711", destination="kommune-b"),),
    )


async def _messages(config: GatewayConfig) -> list[tuple[str, str, str]]:
    journal = Journal.from_url(config.storage.journal)
    try:
        return [(m.channel, m.state.value, m.blob_sha256) for m in await journal.list_messages()]
    finally:
        await journal.close()


async def test_gateway_a_delivers_through_gateway_b_xta_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's message goes createMessageId → sendMessage (MTOM) → getTransportReport and is journaled at B bit-identical."""
    monkeypatch.setenv(PASSWORD_ENV, TOKEN_A)
    (tmp_path / "a").mkdir()
    data = container(tmp_path)
    upload = tmp_path / "a" / "abgabe.zip"
    upload.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    config_b = xta_config(tmp_path / "b")
    async with running_gateway(config_b) as gateway_b:
        config_a = _gateway_a(tmp_path / "a", gateway_b.url)
        async with running_gateway(config_a):
            await send_file(config_a, upload)

            async def delivered_at_a() -> bool:
                return [s for _, s, _ in await _messages(config_a)] == ["delivered"]

            await eventually(delivered_at_a, what="A's delivery to B succeeded")
        at_b = await _messages(config_b)
    assert ("xta", digest) in [(channel, sha) for channel, _, sha in at_b]


async def test_refused_message_is_a_permanent_failure(tmp_path: Path) -> None:
    """A fault the service answers for the message itself (not xdomea) dead-letters it at once."""
    junk = tmp_path / "junk.xml"
    junk.write_bytes(b"<kein-xdomea/>")
    async with running_gateway(xta_config(tmp_path / "b")) as gateway_b:
        client = XtaClient(
            "kommune-b",
            XtaDestination(type="xta", wsdl=str(WSDL), endpoint=gateway_b.url, reader="060:4711"),
            author="060:0815",
        )
        # No credentials at all: the service refuses before reading the payload.
        item = Outbound(
            message_id="m-1",
            attempt=1,
            blob_path=junk,
            blob_sha256=hashlib.sha256(junk.read_bytes()).hexdigest(),
            size=junk.stat().st_size,
            content_kind="message",
            prozess_id="p",
            nachrichtentyp="0401",
            message_element="Abgabe.Abgabe.0401",
        )
        try:
            with pytest.raises(PermanentDeliveryError, match="PermissionDeniedException"):
                await client.deliver(item)
        finally:
            await client.close()


async def test_gateway_a_delivers_over_mutual_tls_with_its_client_certificate(
    tmp_path: Path,
) -> None:
    """Over https, A presents its client certificate, B maps it to partner kommune-a and journals."""
    ca = CertAuthority.create(tmp_path / "ca")
    server = ca.issue(tmp_path / "certs-b", "kommune-b", server=True)
    client_a = ca.issue(tmp_path / "certs-a", "kommune-a", client=True)
    config_b = xta_config(
        tmp_path / "b",
        http=HttpConfig(
            tls=ServerTlsConfig(
                certificate=server.certificate, private_key=server.key, client_ca=ca.certificate
            )
        ),
        partners=(
            PartnerConfig(
                id="kommune-a",
                behoerdenkennung="060:0815",
                certificate_sha256=(client_a.fingerprint,),
            ),
        ),
    )
    assert config_b.http.tls is not None
    (tmp_path / "a").mkdir()
    data = container(tmp_path)
    upload = tmp_path / "a" / "abgabe.zip"
    upload.write_bytes(data)
    async with running_gateway(config_b, ssl=tls.server_context(config_b.http.tls)) as gateway_b:
        destination = XtaDestination(
            type="xta",
            wsdl=str(WSDL),
            endpoint=gateway_b.url,
            reader="060:4711",
            ca_file=ca.certificate,
            client_certificate=client_a.certificate,
            client_key=client_a.key,
        )
        config_a = _gateway_a(tmp_path / "a", gateway_b.url).model_copy(
            update={"destinations": {"kommune-b": destination}}
        )
        async with running_gateway(config_a):
            await send_file(config_a, upload)

            async def delivered_at_a() -> bool:
                return [s for _, s, _ in await _messages(config_a)] == ["delivered"]

            await eventually(delivered_at_a, what="A's delivery to B over mTLS succeeded")
        at_b = await _messages(config_b)
    assert ("xta", hashlib.sha256(data).hexdigest()) in [(c, sha) for c, _, sha in at_b]


async def test_unreachable_server_is_a_transient_failure(tmp_path: Path) -> None:
    """Nobody listening at the endpoint: the delivery is retried later."""
    blob = tmp_path / "m.xml"
    blob.write_bytes(b"<x/>")
    client = XtaClient(
        "nowhere",
        XtaDestination(
            type="xta",
            wsdl=str(WSDL),
            endpoint=f"http://127.0.0.1:{_closed_port()}/xta",
            reader="060:4711",
            connect_timeout_seconds=2,
        ),
        author="060:0815",
    )
    item = Outbound(
        message_id="m-2",
        attempt=1,
        blob_path=blob,
        blob_sha256=hashlib.sha256(b"<x/>").hexdigest(),
        size=4,
        content_kind="message",
        prozess_id="p",
        nachrichtentyp="0401",
        message_element="Abgabe.Abgabe.0401",
    )
    try:
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            await client.deliver(item)
    finally:
        await client.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
