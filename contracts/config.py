"""The gateway's configuration (``gateway.toml``), validated at start.

Relative paths are relative to the configuration file's folder. Secrets never
sit in the file in clear text: inbound tokens are given as SHA-256 hex digests
(``token_sha256``) or as the name of an environment variable (``token_env``);
outbound tokens only as ``token_env``; TLS private keys as paths to key files.

Gateway to gateway, partners authenticate with client certificates (mutual TLS):
``[http.tls]`` makes the API serve HTTPS and names the CA that signs partners'
client certificates; a partner is bound to its certificate by fingerprint
(``certificate_sha256``) or by a subjectAltName (``certificate_san``); a peer
destination presents ``client_certificate``. ``gateway/tls.py`` checks the files
and builds the TLS contexts.

Example::

    [node]
    id = "kommune-a"
    behoerdenkennung = "060:0815"

    [storage]
    journal = "sqlite:///data/journal.db"
    blobs = "data/blobs"

    [http]
    port = 8080

    [[partners]]
    id = "kommune-b"
    behoerdenkennung = "060:4711"
    xdomea_versions = ["3.0.0", "3.1.0"]
    token_env = "IKZ_TOKEN_FROM_KOMMUNE_B"

    [destinations.kommune-b]
    type = "http"
    url = "http://127.0.0.1:8081/v1/messages"
    token_env = "IKZ_TOKEN_TO_KOMMUNE_B"

    [[routes]]
    empfaenger = "060:4711"
    destination = "kommune-b"
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_KENNUNG = re.compile(r"^[^:\s]+:[^:\s]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: A certificate fingerprint as tools print it: hex, optionally in colon-separated pairs.
_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{2}(:?[0-9a-fA-F]{2}){31}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_kennung(value: str) -> str:
    if not _KENNUNG.match(value):
        raise ValueError(
            f"{value!r} is not a Behördenkennung; write it as 'praefix:kennung', e.g. '060:0815'"
        )
    return value


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name; use letters, digits, '-', '_' and '.'")
    return value


class NodeConfig(_Strict):
    """This gateway: its id and the Behördenkennung it acts for."""

    id: str
    behoerdenkennung: str

    _id = field_validator("id")(_check_name)
    _kennung = field_validator("behoerdenkennung")(_check_kennung)


class StorageConfig(_Strict):
    """Where the journal and the blob store live."""

    journal: str = "sqlite:///data/journal.db"
    blobs: Path = Path("data/blobs")

    @field_validator("journal")
    @classmethod
    def _journal_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError(
                f"{value!r} is not a supported journal URL; use sqlite:///PATH or "
                "postgresql://user@host/db"
            )
        return value


class ServerTlsConfig(_Strict):
    """``[http.tls]``: serve the API over HTTPS, optionally asking for client certificates.

    ``client_ca`` should hold only the CA(s) that issue certificates to this
    gateway's partners, never a public web CA bundle: every certificate it
    vouches for reaches the partner bindings.
    """

    #: PEM: this gateway's certificate first, then any intermediate CA certificates.
    certificate: Path
    #: PEM: the certificate's private key, unencrypted (readable only by the gateway's user).
    private_key: Path
    #: PEM bundle of the CA(s) whose client certificates are verified; none = no client certs.
    client_ca: Path | None = None
    #: Refuse a TLS connection without a valid client certificate (at the handshake).
    require_client_certificate: bool = True

    @model_validator(mode="after")
    def _ca_when_required(self) -> ServerTlsConfig:
        if self.require_client_certificate and self.client_ca is None:
            raise ValueError(
                "require_client_certificate = true needs client_ca, the CA bundle that signs "
                "the partners' client certificates; set client_ca, or set "
                "require_client_certificate = false to serve HTTPS without client certificates"
            )
        return self


class HttpConfig(_Strict):
    """The HTTP API listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: Base URL partners use to reach this gateway (for status links); default from host/port.
    public_url: str | None = None
    max_body_bytes: int = Field(default=4 * 1024**3, gt=0)
    #: Gateway processes ``serve`` runs on this listener, each with its own delivery
    #: workers (``serve --processes`` overrides it); 1 runs the gateway in one process.
    processes: int = Field(default=1, ge=1, le=64)
    #: HTTPS (and client certificates); plain HTTP when absent.
    tls: ServerTlsConfig | None = None


class PartnerConfig(_Strict):
    """A partner that may send to this gateway.

    Credentials: a bearer token (``token_sha256`` or ``token_env``), a client
    certificate binding (``certificate_sha256`` and/or ``certificate_san``), or
    both. Every credential configured for a partner must be presented: with a
    certificate binding a token alone is not enough, and with both, both are needed.
    """

    id: str
    behoerdenkennung: str
    xdomea_versions: tuple[str, ...] = ("2.3.0", "2.4.0", "3.0.0", "3.1.0")
    token_sha256: str | None = None
    token_env: str | None = None
    #: SHA-256 fingerprints of the DER client certificates this partner may present
    #: (several while a renewed certificate replaces the old one).
    certificate_sha256: tuple[str, ...] = ()
    #: A DNS name or URI that must be among the subjectAltNames of the partner's client
    #: certificate (which must chain to ``[http.tls] client_ca``).
    certificate_san: str | None = None

    _id = field_validator("id")(_check_name)
    _kennung = field_validator("behoerdenkennung")(_check_kennung)

    @field_validator("certificate_sha256", mode="before")
    @classmethod
    def _fingerprints(cls, value: object) -> object:
        # One fingerprint is the common case; accept it without list brackets, and in
        # the "AB:CD:…" form openssl prints, stored as plain lower-case hex.
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        normalized = []
        for item in items:
            if not isinstance(item, str) or not _FINGERPRINT.match(item.strip()):
                raise ValueError(
                    f"{item!r} is not a SHA-256 certificate fingerprint; give 64 hex digits "
                    "(colons allowed), e.g. from: openssl x509 -in CERT -noout -fingerprint "
                    "-sha256"
                )
            normalized.append(item.strip().replace(":", "").lower())
        return tuple(normalized)

    @field_validator("certificate_san")
    @classmethod
    def _san(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value != value.strip()):
            raise ValueError(
                "certificate_san must be a DNS name or URI from the certificate's "
                "subjectAltName, without spaces"
            )
        return value

    @property
    def certificate_bound(self) -> bool:
        """Whether this partner must present a client certificate."""
        return bool(self.certificate_sha256) or self.certificate_san is not None

    @property
    def has_token(self) -> bool:
        """Whether this partner must present a bearer token."""
        return self.token_sha256 is not None or self.token_env is not None

    @field_validator("token_sha256")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError(
                "token_sha256 must be the 64-character lower-case hex SHA-256 of the token, "
                "e.g. from: printf %s TOKEN | sha256sum"
            )
        return value

    @model_validator(mode="after")
    def _one_token_source(self) -> PartnerConfig:
        if self.token_sha256 is not None and self.token_env is not None:
            raise ValueError("give exactly one of token_sha256 or token_env, not both")
        if not self.has_token and not self.certificate_bound:
            raise ValueError(
                "give exactly one of token_sha256 or token_env, or bind a client certificate "
                "with certificate_sha256 or certificate_san (or both a token and a certificate)"
            )
        return self


class RetryConfig(_Strict):
    """How a destination retries: capped exponential backoff with full jitter."""

    max_attempts: int = Field(default=12, ge=1)
    max_age_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    initial_backoff_seconds: float = Field(default=1.0, gt=0)
    max_backoff_seconds: float = Field(default=600.0, gt=0)
    timeout_seconds: float = Field(default=300.0, gt=0)
    concurrency: int = Field(default=4, ge=1)


class FilesystemDestination(RetryConfig):
    """A transfer directory (DMS or archive drop folder): temp file, fsync, atomic rename."""

    type: Literal["filesystem"]
    directory: Path
    naming: Literal["long", "numbered", "short"] = "long"


class HttpDestination(RetryConfig):
    """A peer gateway's ``POST /v1/messages``, reached with a token, a certificate or both."""

    type: Literal["http"]
    url: str
    #: Environment variable with the bearer token the peer knows us by.
    token_env: str | None = None
    #: PEM bundle of the CA(s) the peer's server certificate must chain to; default: the system's.
    ca_file: Path | None = None
    #: PEM: the client certificate this gateway presents to the peer (then intermediates).
    client_certificate: Path | None = None
    #: PEM: its private key, unencrypted.
    client_key: Path | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> HttpDestination:
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("client_certificate and client_key go together; give both or neither")
        if self.token_env is None and self.client_certificate is None:
            raise ValueError(
                "give token_env (the bearer token the peer knows us by), or "
                "client_certificate and client_key, or both"
            )
        tls_keys = [k for k in ("ca_file", "client_certificate", "client_key") if getattr(self, k)]
        if tls_keys and not self.url.startswith("https://"):
            raise ValueError(
                f"{', '.join(tls_keys)} only apply to TLS; change url to https:// "
                f"(it is {self.url!r})"
            )
        return self


class DmsinConfig(_Strict):
    """How to reach a Fabasoft eGov-Suite through its dmsin SOAP interface."""

    #: The WSDL: an http(s) URL (usually the service's ``?wsdl``) or a file path.
    wsdl: str
    #: Service address; default: the address the WSDL names.
    endpoint: str | None = None
    soap_version: Literal["1.1", "1.2"] = "1.1"
    #: The technical user the gateway acts as (``userlogin`` of every call).
    userlogin: str
    jobposition: str | None = None
    joboe: str | None = None
    businessapp: str | None = None
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=120.0, gt=0)
    #: CA bundle to verify the DMS's certificate; default: the system's.
    ca_file: Path | None = None
    #: Client certificate (PEM) for mutual TLS, and its key if not in the same file.
    client_cert: Path | None = None
    client_key: Path | None = None
    #: Fachdaten (user form) field holding the xdomea UUID; must be searchable.
    uuid_field: str = "xdomea_uuid"
    #: Fachdaten field holding the rest of the xdomea metadata (JSON).
    metadata_field: str = "xdomea_metadaten"
    #: Business status codes that mean "try again later" (locks, maintenance).
    transient_status: tuple[int, ...] = ()
    #: Read every stored document back and compare its SHA-256 (doubles the traffic).
    verify_readback: bool = True

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class DmsDestination(RetryConfig):
    """Import into a DMS: the embedded filesystem DMS or Fabasoft dmsin.

    ``aktenplan`` maps Aktenzeichen prefixes (the Akte's Kennzeichen, e.g. ``63.01``
    for ``63.01.02/2024``) to the DMS address of the Aktenplaneintrag a new Akte is
    filed under; the longest matching prefix wins, ``aktenplan_default`` catches the
    rest. ``ablage`` is where Vorgänge and Dokumente outside any Akte go.
    """

    type: Literal["dms"]
    backend: Literal["filesystem", "dmsin"]
    #: The filesystem DMS's root folder (backend "filesystem").
    directory: Path | None = None
    dmsin: DmsinConfig | None = None
    aktenplan: dict[str, str] = Field(default_factory=dict)
    aktenplan_default: str | None = None
    ablage: str | None = None

    @model_validator(mode="after")
    def _backend_settings(self) -> DmsDestination:
        if self.backend == "filesystem" and self.directory is None:
            raise ValueError('backend "filesystem" needs directory = "PATH"')
        if self.backend == "dmsin" and self.dmsin is None:
            raise ValueError(
                'backend "dmsin" needs a [destinations.NAME.dmsin] table with wsdl and userlogin'
            )
        return self

    def resolved(self, base: Path) -> DmsDestination:
        """A copy with every relative path (folder, WSDL file, TLS files) made absolute."""

        def absolute(path: Path | None) -> Path | None:
            return path if path is None or path.is_absolute() else base / path

        update: dict[str, object] = {"directory": absolute(self.directory)}
        if self.dmsin is not None:
            wsdl = self.dmsin.wsdl
            if not wsdl.startswith(("http://", "https://", "file://")):
                wsdl = str(absolute(Path(wsdl)))
            update["dmsin"] = self.dmsin.model_copy(
                update={
                    "wsdl": wsdl,
                    "ca_file": absolute(self.dmsin.ca_file),
                    "client_cert": absolute(self.dmsin.client_cert),
                    "client_key": absolute(self.dmsin.client_key),
                }
            )
        return self.model_copy(update=update)


DestinationConfig = Annotated[
    FilesystemDestination | HttpDestination | DmsDestination, Field(discriminator="type")
]


class RouteConfig(_Strict):
    """Send messages for an Empfänger (and optionally of some Nachrichtentypen) somewhere."""

    empfaenger: str
    destination: str
    nachrichtentyp: tuple[str, ...] = ()

    _kennung = field_validator("empfaenger")(_check_kennung)

    @field_validator("nachrichtentyp")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not re.fullmatch(r"\d{4}", code):
                raise ValueError(f"{code!r} is not a Nachrichtentyp code like '0401'")
        return value

    def matches(self, code: str, empfaenger: str) -> bool:
        """Whether a message of ``code`` to ``empfaenger`` takes this route."""
        return self.empfaenger == empfaenger and (
            not self.nachrichtentyp or code in self.nachrichtentyp
        )


class DropFolderConfig(_Strict):
    """A watched inbound directory; files are attributed to one partner."""

    directory: Path
    partner: str
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    #: A file must keep its size this long before it is read (still being written otherwise).
    settle_seconds: float = Field(default=1.0, ge=0)


class WorkerConfig(_Strict):
    """Delivery workers of this process."""

    concurrency: int = Field(default=8, ge=1)
    lease_seconds: float = Field(default=60.0, gt=1)
    poll_interval_seconds: float = Field(default=0.5, gt=0)


class ProcessesConfig(_Strict):
    """Process tracking and the receipts this gateway produces (``[processes]``)."""

    #: Answer every 0401 addressed to this node by a partner with the receipts its
    #: Kopf asks for (0403 on acceptance, 0402 once a local destination imported it).
    auto_receipts: bool = True
    #: A process still waiting for its 0403 or 0402 this long after the 0401 was
    #: delivered to the peer is shown as overdue.
    receipt_timeout_seconds: float = Field(default=24 * 3600.0, gt=0)


class GatewayConfig(_Strict):
    """The whole configuration file."""

    node: NodeConfig
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    worker: WorkerConfig = WorkerConfig()
    processes: ProcessesConfig = ProcessesConfig()
    partners: tuple[PartnerConfig, ...] = ()
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    routes: tuple[RouteConfig, ...] = ()
    dropfolders: tuple[DropFolderConfig, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        ids = [p.id for p in self.partners]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"partner ids must be unique; repeated: {', '.join(duplicates)}")
        self._check_certificate_bindings()
        for name in self.destinations:
            _check_name(name)
        for index, route in enumerate(self.routes):
            if route.destination not in self.destinations:
                known = ", ".join(sorted(self.destinations)) or "none configured"
                raise ValueError(
                    f"routes[{index}] names destination {route.destination!r}, which is not "
                    f"configured (destinations: {known})"
                )
        for index, folder in enumerate(self.dropfolders):
            if folder.partner not in ids:
                raise ValueError(
                    f"dropfolders[{index}] attributes files to partner {folder.partner!r}, "
                    f"which is not configured (partners: {', '.join(ids) or 'none'})"
                )
        return self

    def _check_certificate_bindings(self) -> None:
        """Bound partners need a listener that asks for certificates; no binding is shared."""
        tls = self.http.tls
        for index, partner in enumerate(self.partners):
            if partner.certificate_bound and (tls is None or tls.client_ca is None):
                raise ValueError(
                    f"partners[{index}] ({partner.id}) is bound to a client certificate, but "
                    "[http.tls] has no client_ca, so no client certificate is ever asked for; "
                    "set http.tls.client_ca to the CA bundle that signs the partner's certificate"
                )
        seen: dict[str, str] = {}
        for partner in self.partners:
            bindings = [*partner.certificate_sha256]
            if partner.certificate_san is not None:
                bindings.append("san:" + partner.certificate_san.lower())
            for binding in bindings:
                other = seen.setdefault(binding, partner.id)
                if other != partner.id:
                    shown = binding.removeprefix("san:")
                    raise ValueError(
                        f"partners {other} and {partner.id} are both bound to certificate "
                        f"{shown}; a certificate must identify exactly one partner"
                    )

    def partner(self, partner_id: str) -> PartnerConfig:
        """The partner of that id.

        Raises:
            KeyError: no such partner.
        """
        for partner in self.partners:
            if partner.id == partner_id:
                return partner
        raise KeyError(partner_id)

    def routes_for(self, code: str, empfaenger: str) -> list[str]:
        """Destination names for a message, in configuration order, without repeats."""
        names: list[str] = []
        for route in self.routes:
            if route.matches(code, empfaenger) and route.destination not in names:
                names.append(route.destination)
        return names
