"""Certificates for the TLS tests, made at test time with ``cryptography``.

A ``CertAuthority`` issues server and client certificates (EC P-256, fast to make) and
writes them as PEM files the gateway's configuration can name::

    ca = CertAuthority.create(tmp_path / "ca", "IKZ Test CA")
    b = ca.issue(tmp_path / "b", "kommune-b", server=True)
    a = ca.issue(tmp_path / "a", "kommune-a", client=True)
    a.fingerprint   # SHA-256 of the DER certificate, lower-case hex

Independent of ``gateway/cli_certs.py`` on purpose: the tests check the gateway
against certificates it did not make itself, and make the odd ones it never makes.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key as PEM files."""

    certificate: Path
    key: Path
    fingerprint: str
    subject: str

    def client_context(self, ca: CertAuthority | None) -> ssl.SSLContext:
        """A client context presenting this certificate and trusting ``ca`` (if given)."""
        context = client_context(ca)
        context.load_cert_chain(self.certificate, self.key)
        return context


@dataclass(frozen=True)
class CertAuthority:
    """A certificate authority whose key stays in memory for issuing."""

    certificate: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, folder: Path, name: str = "IKZ Test CA") -> CertAuthority:
        """A new self-signed CA; its certificate is written to ``folder/ca.crt``."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "ca.crt"
        path.write_bytes(cert.public_bytes(_PEM))
        return cls(path, cert, key)

    def issue(
        self,
        folder: Path,
        name: str,
        *,
        server: bool = False,
        client: bool = False,
        dns: tuple[str, ...] = ("localhost",),
        ip: tuple[str, ...] = ("127.0.0.1",),
        expired: bool = False,
    ) -> Credential:
        """A certificate for ``name`` (CN and file stem), written into ``folder``."""
        key = ec.generate_private_key(ec.SECP256R1())
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip]
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IKZ Test"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        builder = _builder(subject, self.cert.subject, key.public_key(), expired=expired)
        cert = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(_PEM))
        key_path.write_bytes(
            key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        key_path.chmod(0o600)
        return Credential(
            cert_path,
            key_path,
            cert.fingerprint(hashes.SHA256()).hex(),
            cert.subject.rfc4514_string(),
        )


def client_context(ca: CertAuthority | None) -> ssl.SSLContext:
    """A TLS client context trusting only ``ca`` (no client certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        context.load_verify_locations(ca.certificate)
    return context


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    expired: bool = False,
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    start, end = (
        (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1))
        if expired
        else (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=365))
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
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
