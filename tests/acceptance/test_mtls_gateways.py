"""Two gateways over mutual TLS, set up the way the README tells an operator to.

``ikz-gateway dev make-certs`` makes the CA and the certificates; each gateway's
``gateway.toml`` takes the printed lines: ``[http.tls]`` for its listener, the
peer's client certificate fingerprint in the partner entry, and its own client
certificate in the peer destination. No bearer tokens: the certificates alone
authenticate. Both gateways run as ``python -m gateway serve`` subprocesses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from adapters.xdomea import naming, receipts
from adapters.xdomea.container import read_container
from adapters.xdomea.validation import check_message
from tests.acceptance.mtls_support import make_certs, mtls_config, probe_context, run
from tests.acceptance.processes import GatewayProcess, environment, free_port, wait_until
from tests.acceptance.test_two_gateways import abgabe_container, check_documents, send

pytestmark = pytest.mark.slow


def config(
    home: Path, certs: Path, node: str, peer: str, ports: dict[str, int], peer_fp: str
) -> str:
    """A gateway serving HTTPS that accepts ``peer`` by certificate and delivers to it."""
    return mtls_config(
        home,
        certs,
        node,
        peer,
        ports,
        peer_fp,
        # This test hands its receipts in itself (it tests the transport, not who makes them).
        processes="auto_receipts = false",
        delivery="initial_backoff_seconds = 0.2\nmax_backoff_seconds = 0.5",
        local=f'''
[destinations.local]
type = "filesystem"
directory = "{home / "local"}"
''',
    )


@dataclass
class Pair:
    """Kommune A and Kommune B, configured for mutual TLS, not started."""

    a: GatewayProcess
    b: GatewayProcess

    @staticmethod
    def files(gateway: GatewayProcess) -> list[Path]:
        """Finished files in a gateway's local destination folder."""
        return sorted(p for p in (gateway.home / "local").iterdir() if not p.name.startswith("."))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Certificates from ``dev make-certs`` and both gateways' configurations."""
    certs = tmp_path / "certs"
    printed = make_certs(certs, "kommune-a", "kommune-b")
    ports = {"kommune-a": free_port(), "kommune-b": free_port()}
    env = environment()
    gateways = {}
    for node, peer in (("kommune-a", "kommune-b"), ("kommune-b", "kommune-a")):
        home = tmp_path / node
        gateway = GatewayProcess(
            home=home, port=ports[node], env=env, tls=probe_context(certs, node)
        )
        gateway.write_config(config(home, certs, node, peer, ports, printed[(peer, "client")]))
        (home / "local").mkdir()
        gateways[node] = gateway
    both = Pair(gateways["kommune-a"], gateways["kommune-b"])
    yield both
    both.a.kill()
    both.b.kill()


def test_abgabe_and_its_receipts_travel_between_two_gateways_over_mutual_tls(
    pair: Pair, tmp_path: Path
) -> None:
    """A delivers an Abgabe to B over mTLS; B's receipts come back to A the same way."""
    pair.b.start()
    pair.a.start()
    path, originals = abgabe_container(tmp_path / "outbox")

    send(pair.a, path)

    wait_until(lambda: bool(Pair.files(pair.b)), timeout=30, what="the Abgabe at B")
    [delivered] = Pair.files(pair.b)
    check_documents(delivered, originals)
    report = read_container(delivered)
    incoming = report.checked
    due = receipts.requested_receipts(incoming)
    assert due
    outbox = tmp_path / "b-outbox"
    outbox.mkdir()
    sent = {}
    for code in due:
        xml = receipts.build_receipt(incoming, code)
        receipt = outbox / naming.message_name(
            report.nachricht.kopf.prozess_id, check_message(xml).detected.typ
        )
        receipt.write_bytes(xml)
        send(pair.b, receipt)
        sent[receipt.name] = xml

    wait_until(lambda: len(Pair.files(pair.a)) >= len(due), timeout=30, what="receipts at A")
    assert {p.name: p.read_bytes() for p in Pair.files(pair.a)} == sent


def test_make_certs_prints_the_fingerprints_of_the_certificates_it_writes(tmp_path: Path) -> None:
    """Each printed fingerprint is the SHA-256 of that DER certificate; keys are private."""
    printed = make_certs(tmp_path / "certs", "kommune-a", "kommune-b")

    assert len(printed) == 4
    for (node, role), fingerprint in printed.items():
        pem = (tmp_path / "certs" / node / f"{role}.crt").read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        assert cert.fingerprint(hashes.SHA256()).hex() == fingerprint
        assert (tmp_path / "certs" / node / f"{role}.key").stat().st_mode & 0o077 == 0


def test_make_certs_never_overwrites_a_node(tmp_path: Path) -> None:
    """A second run for an existing node stops with exit 2 and leaves its files alone."""
    make_certs(tmp_path / "certs", "kommune-a")
    before = (tmp_path / "certs" / "kommune-a" / "client.crt").read_bytes()

    result = run("dev", "make-certs", str(tmp_path / "certs"), "--node", "kommune-a")

    assert result.returncode == 2
    assert "already exists; certificates are never overwritten" in result.stderr
    assert (tmp_path / "certs" / "kommune-a" / "client.crt").read_bytes() == before


def test_serve_with_a_key_of_another_certificate_stops_with_one_line(tmp_path: Path) -> None:
    """A key that does not match the certificate stops ``serve`` with the key named."""
    certs = tmp_path / "certs"
    printed = make_certs(certs, "kommune-a", "kommune-b")
    home = tmp_path / "kommune-a"
    home.mkdir()
    text = config(
        home,
        certs,
        "kommune-a",
        "kommune-b",
        {"kommune-a": 1, "kommune-b": 2},
        printed[("kommune-b", "client")],
    )
    path = home / "gateway.toml"
    path.write_text(text.replace("kommune-a/server.key", "kommune-b/server.key"))

    result = run("serve", "--config", str(path))

    assert result.returncode == 2
    assert "http.tls.private_key:" in result.stderr
    assert "is not the private key of http.tls.certificate" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_config_check_names_a_missing_certificate_file_and_exits_1(tmp_path: Path) -> None:
    """``config check`` reads the TLS files too: a missing one is INVALID with its key."""
    certs = tmp_path / "certs"
    printed = make_certs(certs, "kommune-a", "kommune-b")
    home = tmp_path / "kommune-a"
    home.mkdir()
    ports = {"kommune-a": 1, "kommune-b": 2}
    path = home / "gateway.toml"
    path.write_text(
        config(home, certs, "kommune-a", "kommune-b", ports, printed[("kommune-b", "client")])
    )
    (certs / "kommune-a" / "client.crt").unlink()

    result = run("config", "check", str(path))

    assert result.returncode == 1
    assert result.stdout.startswith(f"INVALID {path}: destinations.kommune-b.client_certificate: ")
    assert "client.crt does not exist" in result.stdout
