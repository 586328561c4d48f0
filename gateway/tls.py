"""TLS between gateways: checking the configured files, building contexts, naming peers.

Three jobs, all about the certificates ``gateway.toml`` names:

* ``check_files(config)`` reads every certificate, key and CA bundle with
  ``cryptography`` and explains each mistake with its key (``http.tls.private_key:
  … is not the private key of http.tls.certificate …``): missing or unreadable
  files, no PEM inside, encrypted keys, a key that belongs to another certificate,
  a certificate not meant for its role (extendedKeyUsage). Expired or soon
  expiring certificates are warnings. ``config check`` and ``serve`` run it first,
  so a mistake is one line, never a stack trace.
* ``server_context`` and ``client_context`` build the ``ssl.SSLContext`` of the
  API listener (``[http.tls]``) and of a peer destination: TLS 1.2 at least,
  client certificates verified against ``client_ca`` (``CERT_REQUIRED`` when
  ``require_client_certificate``, else ``CERT_OPTIONAL``).
* ``peer_certificate(transport)`` reads the client certificate of a request's
  connection (already verified by the handshake against ``client_ca``) and
  ``partners_for_certificate`` finds the partners bound to it, by SHA-256
  fingerprint of the DER certificate or by a subjectAltName (DNS name or URI).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from contracts.config import GatewayConfig, HttpDestination, PartnerConfig, ServerTlsConfig
from gateway.errors import ConfigError

log = structlog.get_logger(__name__)

#: Oldest protocol either side speaks: TLS 1.0/1.1 are deprecated (RFC 8996).
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
#: A certificate expiring sooner than this is reported as a warning.
RENEWAL_WARNING = datetime.timedelta(days=30)

_T = TypeVar("_T")
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# ---------------------------------------------------------------------- peers


@dataclass(frozen=True)
class PeerCertificate:
    """A client certificate as the gateway identifies and logs it."""

    #: SHA-256 of the DER certificate, lower-case hex (what ``certificate_sha256`` holds).
    fingerprint: str
    #: Subject distinguished name, RFC 4514 (``CN=kommune-a,O=Gemeinde Adorf``).
    subject: str
    #: subjectAltName DNS names.
    dns_names: tuple[str, ...]
    #: subjectAltName URIs.
    uris: tuple[str, ...]

    @classmethod
    def from_der(cls, der: bytes) -> PeerCertificate:
        """Read a DER certificate (as ``SSLObject.getpeercert(binary_form=True)`` gives it)."""
        cert = x509.load_der_x509_certificate(der)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            dns_names: list[str] = []
            uris: list[str] = []
        else:
            dns_names = san.get_values_for_type(x509.DNSName)
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        return cls(
            fingerprint=fingerprint(der),
            subject=cert.subject.rfc4514_string(),
            dns_names=tuple(dns_names),
            uris=tuple(uris),
        )

    def has_san(self, name: str) -> bool:
        """Whether ``name`` is one of the subjectAltNames (DNS names compare case-insensitively)."""
        return name.lower() in (d.lower() for d in self.dns_names) or name in self.uris


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, lower-case hex without colons."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex()


def peer_certificate(transport: asyncio.BaseTransport | None) -> PeerCertificate | None:
    """The client certificate of a TLS connection, or ``None`` (plain HTTP, or none sent).

    The listener only asks for certificates when ``client_ca`` is set, and the
    handshake refuses any certificate that does not chain to it, so a certificate
    found here has been verified.
    """
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return PeerCertificate.from_der(der) if der else None


def partners_for_certificate(
    config: GatewayConfig, certificate: PeerCertificate
) -> list[PartnerConfig]:
    """Every partner bound to ``certificate`` (more than one only with overlapping bindings)."""
    return [
        partner
        for partner in config.partners
        if certificate.fingerprint in partner.certificate_sha256
        or (partner.certificate_san is not None and certificate.has_san(partner.certificate_san))
    ]


# ---------------------------------------------------------------------- checking files


@dataclass
class TlsCheck:
    """What ``check_files`` found: errors stop the gateway, warnings are printed or logged."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: TlsCheck) -> None:
        """Add another check's findings."""
        self.errors += other.errors
        self.warnings += other.warnings

    def raise_for_errors(self, source: Path | None = None) -> None:
        """Raise one ``ConfigError`` naming every error (and the configuration file, if given).

        Raises:
            ConfigError: at least one error was found.
        """
        if self.errors:
            prefix = f"{source}: " if source is not None else ""
            raise ConfigError(prefix + "; ".join(self.errors))


def check_files(config: GatewayConfig) -> TlsCheck:
    """Check every TLS file the configuration names: the listener and each peer destination."""
    found = TlsCheck()
    if config.http.tls is not None:
        found.extend(_check_server(config.http.tls))
    for name, destination in config.destinations.items():
        if isinstance(destination, HttpDestination):
            found.extend(_check_client(name, destination))
    return found


def _check_server(tls: ServerTlsConfig) -> TlsCheck:
    found = TlsCheck()
    _check_pair(
        found,
        ("http.tls.certificate", tls.certificate),
        ("http.tls.private_key", tls.private_key),
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    if tls.client_ca is not None:
        _check_bundle(found, "http.tls.client_ca", tls.client_ca)
    return found


def _check_client(name: str, destination: HttpDestination) -> TlsCheck:
    found = TlsCheck()
    prefix = f"destinations.{name}"
    if destination.ca_file is not None:
        _check_bundle(found, f"{prefix}.ca_file", destination.ca_file)
    if destination.client_certificate is not None and destination.client_key is not None:
        _check_pair(
            found,
            (f"{prefix}.client_certificate", destination.client_certificate),
            (f"{prefix}.client_key", destination.client_key),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )
    return found


def _check_pair(
    found: TlsCheck,
    certificate: tuple[str, Path],
    private_key: tuple[str, Path],
    purpose: x509.ObjectIdentifier,
) -> None:
    """A certificate chain file and its key: readable, matching, meant for ``purpose``."""
    cert_key, cert_path = certificate
    key_key, key_path = private_key
    chain = _load(found, cert_key, cert_path, _certificates)
    key = _load(found, key_key, key_path, _private_key)
    if not chain:
        return
    leaf = chain[0]
    _check_validity(found, cert_key, cert_path, leaf)
    role = "server" if purpose == ExtendedKeyUsageOID.SERVER_AUTH else "client"
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass  # no extendedKeyUsage: good for every purpose
    else:
        if purpose not in usages:
            found.errors.append(
                f"{cert_key}: {cert_path} is not a TLS {role} certificate (its "
                f"extendedKeyUsage lacks {role}Auth), so the other side refuses it; "
                f"use a certificate issued for {role} authentication"
            )
    if key is None:
        return
    public = key.public_key().public_bytes(*_SPKI)
    if leaf.public_key().public_bytes(*_SPKI) == public:
        return
    if any(c.public_key().public_bytes(*_SPKI) == public for c in chain[1:]):
        found.errors.append(
            f"{cert_key}: {cert_path} is out of order: {key_key} belongs to a later "
            "certificate in the file; put the gateway's own certificate first, then the "
            "intermediate CA certificates"
        )
        return
    found.errors.append(
        f"{key_key}: {key_path} is not the private key of {cert_key} {cert_path} (their "
        "public keys differ); give the key file made together with that certificate"
    )


def _check_bundle(found: TlsCheck, key: str, path: Path) -> None:
    for cert in _load(found, key, path, _certificates) or ():
        _check_validity(found, key, path, cert)


def _check_validity(found: TlsCheck, key: str, path: Path, cert: x509.Certificate) -> None:
    now = datetime.datetime.now(datetime.UTC)
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    if cert.not_valid_after_utc < now:
        found.warnings.append(
            f"{key}: certificate {subject} in {path} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}; TLS peers refuse it, renew it"
        )
    elif cert.not_valid_before_utc > now:
        found.warnings.append(
            f"{key}: certificate {subject} in {path} is valid only from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this machine's clock"
        )
    elif cert.not_valid_after_utc - now < RENEWAL_WARNING:
        found.warnings.append(
            f"{key}: certificate {subject} in {path} expires on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}; renew it soon"
        )


def _load(found: TlsCheck, key: str, path: Path, parse: Callable[[bytes], _T]) -> _T | None:
    """Read and parse ``path``; on failure record the problem under ``key``, return None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        found.errors.append(f"{key}: {path} does not exist")
        return None
    except IsADirectoryError:
        found.errors.append(f"{key}: {path} is a folder; name the PEM file inside it")
        return None
    except OSError as exc:
        found.errors.append(
            f"{key}: cannot read {path}: {exc.strerror}; the gateway's user must be able to read it"
        )
        return None
    try:
        return parse(data)
    except _Unusable as exc:
        found.errors.append(f"{key}: {path} {exc}")
        return None


class _Unusable(Exception):
    """A file's content is not what its key needs (message completes ``KEY: PATH …``)."""


def _certificates(data: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if certificates:
        return certificates
    if b"PRIVATE KEY-----" in data:
        raise _Unusable(
            "holds a private key, not a certificate; are the certificate and key swapped?"
        )
    raise _Unusable(
        "holds no PEM certificate ('-----BEGIN CERTIFICATE-----'); a DER file converts "
        "with: openssl x509 -inform der -in FILE -out FILE.pem"
    )


def _private_key(data: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography's signal for "encrypted, no password given"
        raise _Unusable(
            "is encrypted with a passphrase; the gateway starts unattended and needs it "
            "unencrypted (openssl pkey -in KEY -out KEY.plain), readable only by its user"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        if b"BEGIN CERTIFICATE" in data:
            raise _Unusable(
                "holds a certificate, not a private key; are the certificate and key swapped?"
            ) from exc
        raise _Unusable(
            "holds no readable PEM private key ('-----BEGIN PRIVATE KEY-----')"
        ) from exc


# ---------------------------------------------------------------------- contexts


def server_context(tls: ServerTlsConfig) -> ssl.SSLContext:
    """The TLS context of the API listener.

    Client certificates are asked for only with ``client_ca``: then a certificate
    that does not chain to it fails the handshake, and none at all fails it too
    when ``require_client_certificate`` is set.

    Raises:
        ConfigError: a file is missing, unreadable, or does not fit (see ``check_files``).
    """
    found = _check_server(tls)
    found.raise_for_errors()
    _log_warnings(found)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    with _as_config_error("http.tls"):
        context.load_cert_chain(tls.certificate, tls.private_key)
        if tls.client_ca is not None:
            context.load_verify_locations(cafile=tls.client_ca)
            context.verify_mode = (
                ssl.CERT_REQUIRED if tls.require_client_certificate else ssl.CERT_OPTIONAL
            )
    return context


def client_context(name: str, destination: HttpDestination) -> ssl.SSLContext | None:
    """The TLS context for a peer destination; ``None`` for plain ``http://`` URLs.

    The peer's certificate must chain to ``ca_file`` (the system's CAs without it)
    and name the URL's host; ``client_certificate`` is presented when asked for.

    Raises:
        ConfigError: a file is missing, unreadable, or does not fit (see ``check_files``).
    """
    if not destination.url.startswith("https://"):
        return None
    found = _check_client(name, destination)
    found.raise_for_errors()
    _log_warnings(found)
    with _as_config_error(f"destinations.{name}"):
        context = ssl.create_default_context(
            cafile=destination.ca_file if destination.ca_file is not None else None
        )
        context.minimum_version = MINIMUM_VERSION
        if destination.client_certificate is not None:
            context.load_cert_chain(destination.client_certificate, destination.client_key)
    return context


def _log_warnings(found: TlsCheck) -> None:
    for warning in found.warnings:
        log.warning("tls_certificate_warning", problem=warning)


@contextmanager
def _as_config_error(where: str) -> Iterator[None]:
    """Translate what OpenSSL still refuses after ``check_files`` into a ``ConfigError``."""
    try:
        yield
    except OSError as exc:  # ssl.SSLError is an OSError
        raise ConfigError(
            f"{where}: OpenSSL refuses the TLS files: {exc}; check them with "
            "'ikz-gateway config check'"
        ) from exc
