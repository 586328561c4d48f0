"""Mutual TLS at the API: a real aiohttp server on 127.0.0.1 with ``[http.tls]``.

Kommune B's gateway serves HTTPS and verifies client certificates against a test
CA made for each test (``tests/certs.py``). Partners:

* kommune-a (060:0815): bound to its client certificate by fingerprint, no token;
* kommune-c (060:1234): bearer token only (TOKEN_C);
* kommune-d (060:4242): bound by subjectAltName ``kommune-d.localhost`` and a token.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from contracts.config import GatewayConfig, OperatorConfig
from contracts.xdomea import Behoerdenkennung, Kontakt
from gateway import tls
from gateway.api import create_api
from gateway.blobs import BlobStore
from gateway.config import token_digest
from gateway.destinations import build_destinations
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.journal.store import Journal
from tests.certs import CertAuthority, Credential, client_context
from tests.delivery_support import outbound
from tests.intake_support import KOMMUNE_C, TOKEN_C, bare_message, gateway_config

TOKEN_D = "d-token-only-kommune-d-knows-4242"
KOMMUNE_D = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="060", kennung="4242", kennung_name="Ddorf"),
    institution="Gemeinde Ddorf",
)


@dataclass(frozen=True)
class Pki:
    """The test CA and every certificate the tests present."""

    ca: CertAuthority
    server: Credential
    a: Credential
    d: Credential
    stranger: Credential
    foreign: Credential
    foreign_ca: CertAuthority


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA with B's server certificate and client certificates; a second, foreign CA."""
    ca = CertAuthority.create(tmp_path / "pki" / "ca")
    foreign_ca = CertAuthority.create(tmp_path / "pki" / "foreign", "Foreign CA")
    folder = tmp_path / "pki"
    return Pki(
        ca=ca,
        server=ca.issue(folder, "kommune-b-server", server=True),
        a=ca.issue(folder, "kommune-a", client=True, dns=("kommune-a.localhost",)),
        d=ca.issue(folder, "kommune-d", client=True, dns=("kommune-d.localhost",)),
        stranger=ca.issue(folder, "stranger", client=True, dns=("stranger.localhost",)),
        # Same name as kommune-a, but from a CA B does not trust.
        foreign=foreign_ca.issue(folder / "foreign", "kommune-a", client=True),
        foreign_ca=foreign_ca,
    )


def tls_config(tmp_path: Path, pki: Pki, *, require: bool = True) -> GatewayConfig:
    """Kommune B serving HTTPS with client certificates and the three partners above."""
    base = gateway_config(tmp_path).model_dump()
    base["http"]["tls"] = {
        "certificate": pki.server.certificate,
        "private_key": pki.server.key,
        "client_ca": pki.ca.certificate,
        "require_client_certificate": require,
    }
    base["partners"] = [
        {
            "id": "kommune-a",
            "behoerdenkennung": "060:0815",
            "certificate_sha256": pki.a.fingerprint,
        },
        {"id": "kommune-c", "behoerdenkennung": "060:1234", "token_sha256": token_digest(TOKEN_C)},
        {
            "id": "kommune-d",
            "behoerdenkennung": "060:4242",
            "certificate_san": "kommune-d.localhost",
            "token_sha256": token_digest(TOKEN_D),
        },
    ]
    return GatewayConfig.model_validate(base)


async def serve(config: GatewayConfig) -> AsyncIterator[TestServer]:
    """Kommune B's API over HTTPS on 127.0.0.1, with its own journal and blob store."""
    journal = Journal.from_url(config.storage.journal)
    await journal.upgrade()
    app = create_api(config, journal, BlobStore(config.storage.blobs))
    assert config.http.tls is not None
    server = TestServer(app)
    await server.start_server(ssl=tls.server_context(config.http.tls))
    assert server.scheme == "https"
    try:
        yield server
    finally:
        await server.close()
        await journal.close()


@pytest.fixture
async def gateway_b(tmp_path: Path, pki: Pki) -> AsyncIterator[TestServer]:
    """B requiring a client certificate at the handshake."""
    async for server in serve(tls_config(tmp_path, pki)):
        yield server


@pytest.fixture
async def lenient_b(tmp_path: Path, pki: Pki) -> AsyncIterator[TestServer]:
    """B asking for, but not requiring, a client certificate (token partners come without)."""
    async for server in serve(tls_config(tmp_path, pki, require=False)):
        yield server


async def post(
    server: TestServer,
    context: ssl.SSLContext,
    body: bytes,
    *,
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST a bare message to B over TLS; the status and the JSON answer."""
    headers = {"Content-Type": "application/xml"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.make_url("/v1/messages"), data=body, headers=headers, ssl=context
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


def kind(answer: dict[str, Any]) -> str:
    """The problem kind of a problem document."""
    return str(answer["type"]).removeprefix("urn:ikz-gateway:problem:")


# ---------------------------------------------------------------------- accepted


async def test_partner_with_its_bound_certificate_is_accepted(
    gateway_b: TestServer, pki: Pki
) -> None:
    """kommune-a's certificate alone (no token) authenticates it: 202."""
    status, answer = await post(gateway_b, pki.a.client_context(pki.ca), bare_message())

    assert status == 202, answer


async def test_partner_bound_by_subject_alt_name_is_accepted_with_its_token(
    gateway_b: TestServer, pki: Pki
) -> None:
    """A certificate whose SAN is kommune-d's binding, with kommune-d's token: 202."""
    body = bare_message(absender=KOMMUNE_D)

    status, answer = await post(gateway_b, pki.d.client_context(pki.ca), body, token=TOKEN_D)

    assert status == 202, answer


async def test_token_partner_is_accepted_without_a_certificate_when_not_required(
    lenient_b: TestServer, pki: Pki
) -> None:
    """Bearer tokens keep working over TLS for partners without a certificate binding."""
    body = bare_message(absender=KOMMUNE_C)

    status, answer = await post(lenient_b, client_context(pki.ca), body, token=TOKEN_C)

    assert status == 202, answer


# ---------------------------------------------------------------------- refused


async def test_no_client_certificate_is_refused_at_the_handshake(
    gateway_b: TestServer, pki: Pki
) -> None:
    """With require_client_certificate, a client without one never reaches the API."""
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(
            gateway_b, client_context(pki.ca), bare_message(absender=KOMMUNE_C), token=TOKEN_C
        )


async def test_certificate_from_another_ca_is_refused_at_the_handshake(
    gateway_b: TestServer, pki: Pki
) -> None:
    """A certificate that does not chain to client_ca fails the handshake, whatever its name."""
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(gateway_b, pki.foreign.client_context(pki.ca), bare_message())


async def test_certificate_from_another_ca_is_refused_when_certificates_are_optional(
    lenient_b: TestServer, pki: Pki
) -> None:
    """Optional client certificates are still verified when one is presented."""
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(lenient_b, pki.foreign.client_context(pki.ca), bare_message())


async def test_bound_partner_without_its_certificate_gets_401(
    lenient_b: TestServer, pki: Pki
) -> None:
    """kommune-d's token alone is not enough: its certificate binding demands the certificate."""
    body = bare_message(absender=KOMMUNE_D)

    status, answer = await post(lenient_b, client_context(pki.ca), body, token=TOKEN_D)

    assert status == 401 and kind(answer) == "unauthorized"
    assert "must present its client certificate" in answer["detail"]


async def test_bound_partner_with_token_and_certificate_configured_needs_the_token_too(
    gateway_b: TestServer, pki: Pki
) -> None:
    """kommune-d has both credentials configured: its certificate alone gets 401."""
    body = bare_message(absender=KOMMUNE_D)

    status, answer = await post(gateway_b, pki.d.client_context(pki.ca), body)

    assert status == 401 and "must also send its bearer token" in answer["detail"]


async def test_valid_certificate_bound_to_no_partner_is_refused_and_logged(
    gateway_b: TestServer, pki: Pki
) -> None:
    """A certificate the CA signed but no partner is bound to: 403, logged with fingerprint."""
    with capture_logs() as logs:
        status, answer = await post(
            gateway_b,
            pki.stranger.client_context(pki.ca),
            bare_message(absender=KOMMUNE_C),
            token=TOKEN_C,
        )

    assert status == 403 and kind(answer) == "certificate-not-bound"
    assert pki.stranger.fingerprint in answer["detail"]
    [event] = [e for e in logs if e["event"] == "client_certificate_refused"]
    assert event["fingerprint"] == pki.stranger.fingerprint
    assert event["subject"] == pki.stranger.subject
    assert TOKEN_C not in repr(logs)


async def test_certificate_of_one_partner_with_the_token_of_another_is_refused(
    gateway_b: TestServer, pki: Pki
) -> None:
    """kommune-a's certificate with kommune-c's token: 401, whichever Absender it names."""
    with capture_logs() as logs:
        status, answer = await post(
            gateway_b,
            pki.a.client_context(pki.ca),
            bare_message(absender=KOMMUNE_C),
            token=TOKEN_C,
        )

    assert status == 401 and kind(answer) == "unauthorized"
    [event] = [e for e in logs if e["event"] == "credentials_mismatch"]
    assert (event["certificate_partner"], event["token_partner"]) == ("kommune-a", "kommune-c")
    assert TOKEN_C not in repr(logs)


async def test_certificate_of_one_partner_sending_as_another_gets_403_wrong_sender(
    gateway_b: TestServer, pki: Pki
) -> None:
    """kommune-a's certificate with a Kopf naming kommune-c as Absender: 403, logged for a."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        status, answer = await post(
            gateway_b, pki.a.client_context(pki.ca), bare_message(absender=KOMMUNE_C)
        )

    assert status == 403 and kind(answer) == "wrong-sender"
    [event] = [e for e in logs if e["event"] == "message_rejected"]
    assert event["partner"] == "kommune-a"
    assert event["client_certificate"] == pki.a.fingerprint


# ---------------------------------------------------------------------- the peer destination


def kommune_a(tmp_path: Path, url: str, **tls_files: Path) -> GatewayConfig:
    """Kommune A with one peer destination ``kommune-b`` at ``url`` using ``tls_files``."""
    return GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-a", "behoerdenkennung": "060:0815"},
            "storage": {"journal": f"sqlite:///{tmp_path / 'a.db'}", "blobs": tmp_path / "a"},
            "destinations": {"kommune-b": {"type": "http", "url": url, **tls_files}},
        }
    )


async def deliver(config: GatewayConfig, tmp_path: Path) -> None:
    """Deliver one bare message from A through its ``kommune-b`` destination."""
    blobs = BlobStore(tmp_path / "a-blobs")
    item = await outbound(blobs, bare_message(), prozess_id="p-1", kind="message")
    destination = build_destinations(config)["kommune-b"]
    try:
        await destination.deliver(item)
    finally:
        await destination.close()


async def test_peer_destination_delivers_with_its_client_certificate(
    gateway_b: TestServer, pki: Pki, tmp_path: Path
) -> None:
    """A's destination with ca_file and client certificate (no token) delivers to B."""
    url = str(gateway_b.make_url("/v1/messages"))
    config = kommune_a(
        tmp_path,
        url,
        ca_file=pki.ca.certificate,
        client_certificate=pki.a.certificate,
        client_key=pki.a.key,
    )

    await deliver(config, tmp_path)

    journal = Journal.from_url(tls_config(tmp_path, pki).storage.journal)
    try:
        [received] = await journal.list_messages()
    finally:
        await journal.close()
    assert received.partner_id == "kommune-a"


async def test_peer_with_an_untrusted_server_certificate_is_a_permanent_failure(
    gateway_b: TestServer, pki: Pki, tmp_path: Path
) -> None:
    """A server certificate that does not chain to ca_file is not retried: it names ca_file."""
    url = str(gateway_b.make_url("/v1/messages"))
    config = kommune_a(
        tmp_path,
        url,
        ca_file=pki.foreign_ca.certificate,
        client_certificate=pki.a.certificate,
        client_key=pki.a.key,
    )

    with pytest.raises(PermanentDeliveryError, match=r"does not trust.*kommune-b\.ca_file"):
        await deliver(config, tmp_path)


async def test_peer_refusing_our_client_certificate_is_transient_with_a_hint(
    gateway_b: TestServer, pki: Pki, tmp_path: Path
) -> None:
    """B resets the connection of a certificate it does not trust; A retries and says why."""
    url = str(gateway_b.make_url("/v1/messages"))
    config = kommune_a(
        tmp_path,
        url,
        ca_file=pki.ca.certificate,
        client_certificate=pki.foreign.certificate,
        client_key=pki.foreign.key,
    )

    with pytest.raises(TransientDeliveryError, match="refuses our client certificate"):
        await deliver(config, tmp_path)


# ---------------------------------------------------------------------- the operator

OPERATOR_TOKEN = "operator-token-of-kommune-b"


@pytest.fixture
async def operated_b(tmp_path: Path, pki: Pki) -> AsyncIterator[TestServer]:
    """B requiring client certificates, with an ``[operator]`` token."""
    config = tls_config(tmp_path, pki)
    config = config.model_copy(
        update={"operator": OperatorConfig(token_sha256=token_digest(OPERATOR_TOKEN))}
    )
    async for server in serve(config):
        yield server


async def get(
    server: TestServer, context: ssl.SSLContext, path: str, *, token: str
) -> tuple[int, dict[str, Any]]:
    """GET ``path`` from B over TLS with a bearer token; the status and the JSON answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            server.make_url(path), headers={"Authorization": f"Bearer {token}"}, ssl=context
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_operator_reads_a_process_with_its_token_over_a_trusted_certificate(
    operated_b: TestServer, pki: Pki
) -> None:
    """The handshake needs a certificate of the CA; the token makes it the operator."""
    status, answer = await get(
        operated_b,
        pki.stranger.client_context(pki.ca),
        "/v1/processes/unknown-process",
        token=OPERATOR_TOKEN,
    )

    assert status == 404 and kind(answer) == "not-found"
    assert "unknown-process" in answer["detail"]


async def test_operator_token_does_not_make_a_stranger_certificate_a_sender(
    operated_b: TestServer, pki: Pki
) -> None:
    """Sending messages is for partners: the operator's token there is refused."""
    status, answer = await post(
        operated_b,
        pki.stranger.client_context(pki.ca),
        bare_message(absender=KOMMUNE_C),
        token=OPERATOR_TOKEN,
    )

    assert status == 403 and kind(answer) == "certificate-not-bound"
