"""``ikz-gateway dev make-certs``: a test CA and mutual-TLS certificates for gateways.

For trying mutual TLS between gateways on one machine or in a test network,
never for production (a Kommune's certificates come from its PKI)::

    ikz-gateway dev make-certs certs --node kommune-a --node kommune-b

writes into ``certs/``::

    ca.crt, ca.key                      the test CA (its key stays here to add nodes later)
    kommune-a/server.crt, server.key    A's listener ([http.tls])
    kommune-a/client.crt, client.key    what A presents to its peers (destinations)
    kommune-b/…

and prints each certificate's SHA-256 fingerprint and the lines to paste into
each gateway's ``gateway.toml``. Server certificates name ``localhost``,
``<node>.localhost`` and ``127.0.0.1`` (plus ``--host`` names); client
certificates name ``<node>.localhost``, so a partner can also be bound by
``certificate_san``. Keys are EC P-256, written readable only by their owner.
Running again with an existing CA adds nodes signed by it; an existing node's
files are never overwritten.

``cryptography`` is imported only when the command runs, so it does not slow
every other command's start.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

#: Default server names: the loopback address, as the demo and the tests use it.
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
_NODE_FILES = ("server.crt", "server.key", "client.crt", "client.key")
#: The rule of ``[node] id`` in gateway.toml; the name also becomes a folder name.
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Issued:
    """One certificate written to disk."""

    certificate: Path
    key: Path
    fingerprint: str


@dataclass(frozen=True)
class NodeCertificates:
    """A node's server and client certificate."""

    name: str
    server: Issued
    client: Issued


@click.command("make-certs")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--node",
    "nodes",
    multiple=True,
    required=True,
    help="A gateway to make a server and a client certificate for (repeat for each).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Another DNS name or IP address for every server certificate (repeatable); "
    "localhost and 127.0.0.1 are always in.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=365,
    show_default=True,
    help="How long the node certificates are valid (the CA: ten years).",
)
def make_certs(directory: Path, nodes: Sequence[str], hosts: Sequence[str], days: int) -> None:
    """Make a test CA plus a server and client certificate per node, for mutual TLS.

    Prints the fingerprints and the gateway.toml lines for every node. For
    development and tests only; production certificates come from your PKI.
    """
    for node in nodes:
        if not _NODE_NAME.match(node):
            raise click.BadParameter(
                f"{node!r} is not a gateway id; use letters, digits, '-', '_' and '.'",
                param_hint="--node",
            )
    if len(set(nodes)) != len(nodes):
        raise click.BadParameter("each node once", param_hint="--node")
    taken = [directory / n / f for n in nodes for f in _NODE_FILES if (directory / n / f).exists()]
    if taken:
        raise click.ClickException(
            f"{taken[0]} already exists; certificates are never overwritten. Remove that "
            "node's folder, or choose another directory"
        )
    # Absolute, so the printed lines work in a gateway.toml in any folder.
    directory = directory.absolute()
    reused, made = issue_certificates(directory, nodes, hosts=hosts, days=days)
    _print_result(directory, directory / "ca.crt", reused, made)


def issue_certificates(
    directory: Path, nodes: Sequence[str], *, hosts: Sequence[str] = (), days: int = 365
) -> tuple[bool, list[NodeCertificates]]:
    """Open or make the test CA in ``directory`` and issue each node's certificates.

    Returns:
        Whether the CA existed before, and each node's certificates (``ca.crt`` is
        in ``directory``).

    Raises:
        click.ClickException: the CA in ``directory`` is not usable.
    """
    ca, reused = _CertificateAuthority.open_or_create(directory)
    hosts = tuple(dict.fromkeys((*DEFAULT_HOSTS, *hosts)))
    return reused, [ca.issue_node(directory / n, n, hosts=hosts, days=days) for n in nodes]


def _print_result(
    directory: Path, ca_certificate: Path, reused: bool, made: Sequence[NodeCertificates]
) -> None:
    state = "existing" if reused else "new"
    click.echo(f"CA ({state})  {ca_certificate}")
    click.echo(f"  key {directory / 'ca.key'}: keep it private; it signs every certificate")
    for node in made:
        click.echo(f"{node.name}")
        click.echo(f"  server  {node.server.certificate}  sha256 {node.server.fingerprint}")
        click.echo(f"  client  {node.client.certificate}  sha256 {node.client.fingerprint}")
    for node in made:
        click.echo("")
        click.echo(f"# ---- {node.name}: add to its gateway.toml ----")
        click.echo("[http.tls]")
        click.echo(f'certificate = "{node.server.certificate}"')
        click.echo(f'private_key = "{node.server.key}"')
        click.echo(f'client_ca = "{ca_certificate}"')
        for peer in made:
            if peer is node:
                continue
            click.echo("")
            click.echo(f"# in the [[partners]] entry of {peer.name}:")
            click.echo(f'certificate_sha256 = "{peer.client.fingerprint}"')
            click.echo(f"# in [destinations.{peer.name}] (its url starts with https://):")
            click.echo(f'ca_file = "{ca_certificate}"')
            click.echo(f'client_certificate = "{node.client.certificate}"')
            click.echo(f'client_key = "{node.client.key}"')


class _CertificateAuthority:
    """The test CA: loaded from ``ca.crt``/``ca.key`` or made and written there."""

    def __init__(
        self, certificate: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> None:
        self.certificate = certificate
        self.cert = cert
        self.key = key

    @classmethod
    def open_or_create(cls, directory: Path) -> tuple[_CertificateAuthority, bool]:
        """The CA in ``directory`` (and whether it existed before)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            try:
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            except (ValueError, TypeError) as exc:
                raise click.ClickException(
                    f"{cert_path} and {key_path} are not a usable test CA ({exc}); remove "
                    "them or choose another directory"
                ) from exc
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise click.ClickException(f"{key_path} is not an EC key made by make-certs")
            return cls(cert_path, cert, key), True
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ikz-gateway test CA")])
        identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            _builder(name, name, key.public_key(), days=3650)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(identifier, critical=False)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert_path, cert, key), False

    def issue_node(
        self, folder: Path, node: str, *, hosts: Sequence[str], days: int
    ) -> NodeCertificates:
        """A server and a client certificate for ``node`` in ``folder``."""
        from cryptography.x509.oid import ExtendedKeyUsageOID

        folder.mkdir(parents=True, exist_ok=True)
        own = f"{node}.localhost"
        server = self._issue(
            folder / "server", node, (own, *hosts), ExtendedKeyUsageOID.SERVER_AUTH, days
        )
        client = self._issue(folder / "client", node, (own,), ExtendedKeyUsageOID.CLIENT_AUTH, days)
        return NodeCertificates(node, server, client)

    def _issue(
        self,
        stem: Path,
        node: str,
        names: Sequence[str],
        usage: x509.ObjectIdentifier,
        days: int,
    ) -> Issued:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikz-gateway test"),
                x509.NameAttribute(NameOID.COMMON_NAME, node),
            ]
        )
        cert = (
            _builder(subject, self.cert.subject, key.public_key(), days=days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        _write_key(key_path, key)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Issued(cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex())


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, *, days: int
) -> x509.CertificateBuilder:
    from cryptography import x509

    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A few minutes back, so a peer whose clock is slightly behind accepts it.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key readable only by its owner (created so, never widened)."""
    from cryptography.hazmat.primitives import serialization

    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
