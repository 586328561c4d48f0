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
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.transfer import FolderConfig, LocalFolderConfig, WebDavFolderConfig

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


def _check_token_digest(value: str | None) -> str | None:
    """A stored bearer token: its SHA-256 as lower-case hex (or no value)."""
    if value is not None and not _SHA256.match(value):
        raise ValueError(
            "token_sha256 must be the 64-character lower-case hex SHA-256 of the token, "
            "e.g. from: printf %s TOKEN | sha256sum"
        )
    return value


def _check_http_url(value: str | None) -> str | None:
    """An http(s) URL (or no value, for an optional one)."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _check_key_pair(certificate: Path | None, key: Path | None) -> None:
    """A client certificate and its key: both or neither."""
    if (certificate is None) != (key is None):
        raise ValueError("client_certificate and client_key go together; give both or neither")


def _absolute(path: Path | None, base: Path) -> Path | None:
    """``path`` made absolute against ``base`` (the configuration file's folder)."""
    return path if path is None or path.is_absolute() else base / path


def _absolute_wsdl(wsdl: str, base: Path) -> str:
    """A WSDL location: a URL as it is, a relative file path made absolute against ``base``."""
    if wsdl.startswith(("http://", "https://", "file://")) or Path(wsdl).is_absolute():
        return wsdl
    return str(base / wsdl)


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
    #: Content up to this many bytes is kept in the journal, committed in the same
    #: transaction as its message, instead of as a file in the blob store: no file,
    #: no fsync of its own, no folder fsync. 0 keeps every message as a file. At
    #: most 1 MiB (intake holds only that much in memory).
    inline_max_bytes: int = Field(default=64 * 1024, ge=0, le=1024 * 1024)

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

    _digest = field_validator("token_sha256")(_check_token_digest)

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

    _url = field_validator("url")(_check_http_url)

    @model_validator(mode="after")
    def _credentials(self) -> HttpDestination:
        _check_key_pair(self.client_certificate, self.client_key)
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

    _endpoint = field_validator("endpoint")(_check_http_url)


class DmsBackendConfig(RetryConfig):
    """A DMS a destination works on: the embedded filesystem DMS or Fabasoft dmsin.

    Shared by the ``dms`` (import xdomea messages) and ``fvdaten`` (answer a
    Fachverfahren's requests) destinations.

    ``aktenplan`` maps Aktenzeichen prefixes (the Akte's Kennzeichen, e.g. ``63.01``
    for ``63.01.02/2024``) to the DMS address of the Aktenplaneintrag a new Akte is
    filed under; the longest matching prefix wins, ``aktenplan_default`` catches the
    rest. ``ablage`` is where Vorgänge and Dokumente outside any Akte go.
    """

    backend: Literal["filesystem", "dmsin"]
    #: The filesystem DMS's root folder (backend "filesystem").
    directory: Path | None = None
    dmsin: DmsinConfig | None = None
    aktenplan: dict[str, str] = Field(default_factory=dict)
    aktenplan_default: str | None = None
    ablage: str | None = None

    @model_validator(mode="after")
    def _backend_settings(self) -> Self:
        if self.backend == "filesystem" and self.directory is None:
            raise ValueError('backend "filesystem" needs directory = "PATH"')
        if self.backend == "dmsin" and self.dmsin is None:
            raise ValueError(
                'backend "dmsin" needs a [destinations.NAME.dmsin] table with wsdl and userlogin'
            )
        return self

    def resolved(self, base: Path) -> Self:
        """A copy with every relative path (folder, WSDL file, TLS files) made absolute."""
        return self.model_copy(update=_resolved_dms_paths(self.directory, self.dmsin, base))


def _resolved_dms_paths(
    directory: Path | None, dmsin: DmsinConfig | None, base: Path
) -> dict[str, object]:
    """The absolute ``directory`` and ``dmsin`` of a DMS backend's settings."""
    update: dict[str, object] = {"directory": _absolute(directory, base)}
    if dmsin is not None:
        update["dmsin"] = dmsin.model_copy(
            update={
                "wsdl": _absolute_wsdl(dmsin.wsdl, base),
                "ca_file": _absolute(dmsin.ca_file, base),
                "client_cert": _absolute(dmsin.client_cert, base),
                "client_key": _absolute(dmsin.client_key, base),
            }
        )
    return update


class NodeDmsConfig(_Strict):
    """``[dms]``: this node's own DMS, the one ``abgabe``/``aussonderung start`` export from.

    The backend settings are those of a ``type = "dms"`` destination (``backend``,
    ``directory`` or a ``[dms.dmsin]`` table). The same DMS may also be a destination.
    """

    backend: Literal["filesystem", "dmsin"]
    #: The filesystem DMS's root folder (backend "filesystem").
    directory: Path | None = None
    dmsin: DmsinConfig | None = None
    #: The Fachdatum the Abgabevermerk (JSON) is written to when an Akte this node gave
    #: away was imported completely (``[processes] on_completed = "mark-abgegeben"``).
    abgabe_field: str = Field(default="xdomea_abgabe", min_length=1)

    @model_validator(mode="after")
    def _backend_settings(self) -> NodeDmsConfig:
        if self.backend == "filesystem" and self.directory is None:
            raise ValueError('backend "filesystem" needs directory = "PATH"')
        if self.backend == "dmsin" and self.dmsin is None:
            raise ValueError('backend "dmsin" needs a [dms.dmsin] table with wsdl and userlogin')
        return self

    def resolved(self, base: Path) -> NodeDmsConfig:
        """A copy with every relative path (folder, WSDL file, TLS files) made absolute."""
        return self.model_copy(update=_resolved_dms_paths(self.directory, self.dmsin, base))


class DmsDestination(DmsBackendConfig):
    """Import into a DMS: every routed message's Schriftgutobjekte and documents."""

    type: Literal["dms"]


class FvdatenDestination(DmsBackendConfig):
    """Answer FVDaten requests of a Fachverfahren from a DMS (``adapters.fvdaten``).

    Each routed request is carried out on the DMS and answered with a 0630, which
    enters intake as this node, addressed to the request's Absender; route it back
    with a route for ``nachrichtentyp = ["0630"]`` to the Fachverfahren's Behördenkennung.
    """

    type: Literal["fvdaten"]
    #: Behördenkennungen of the Fachverfahren whose requests are carried out; a request
    #: from any other Absender is answered with 0000005 and touches nothing. Required:
    #: routes match the Empfänger only, and the DMS is not every partner's business.
    fachverfahren: tuple[str, ...] = Field(min_length=1)
    #: Most objects one 0608 SGOSuchen answer lists.
    max_search_results: int = Field(default=100, ge=1, le=10_000)

    @field_validator("fachverfahren")
    @classmethod
    def _kennungen(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for kennung in value:
            _check_kennung(kennung)
        return value


class SoapFaultRules(_Strict):
    """How a SOAP destination classifies a SOAP fault: permanent (dead letter) or transient."""

    #: Fault codes (local part, e.g. ``Client``; SOAP 1.2 ``Sender``) that are permanent.
    permanent_codes: tuple[str, ...] = ("Client", "Sender")
    #: Regular expressions on the fault string that make a fault permanent anyway.
    permanent_messages: tuple[str, ...] = ()
    #: Regular expressions on the fault string that make a fault transient anyway
    #: (checked first: e.g. a Client fault saying an object is locked).
    transient_messages: tuple[str, ...] = ()

    @field_validator("permanent_messages", "transient_messages")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value


class SoapResponseConfig(_Strict):
    """What a SOAP destination takes from the operation's answer."""

    #: Name → dotted path in the response (e.g. ``objid``), logged and kept per delivery.
    fields: dict[str, str] = Field(default_factory=dict)
    #: Dotted path of a field that says whether the call succeeded (e.g. ``status``).
    success_field: str | None = None
    #: Values of ``success_field`` that mean success; any other is a permanent failure.
    success_values: tuple[str, ...] = ("0",)
    #: Dotted path of the field with the partner's error text, quoted in the failure.
    error_field: str | None = None


class SoapDestination(RetryConfig):
    """Call one operation of a partner's SOAP API with values taken from the message.

    ``parameters`` maps a dotted parameter path of the operation (``a.b`` builds
    nested structures) to an XPath 1.0 expression evaluated on the xdomea message
    (the prefix ``xdomea`` is bound to the message's namespace; more in
    ``namespaces``). A string literal (``"'fixed'"``) gives a constant.
    """

    type: Literal["soap"]
    #: The WSDL: an http(s) URL (usually the service's ``?wsdl``) or a file path.
    wsdl: str
    operation: str
    #: Service address; default: the address the WSDL names.
    endpoint: str | None = None
    #: Which WSDL service and port to use when it has several (default: the first).
    service: str | None = None
    port: str | None = None
    parameters: dict[str, str] = Field(default_factory=dict)
    namespaces: dict[str, str] = Field(default_factory=dict)
    response: SoapResponseConfig = SoapResponseConfig()
    faults: SoapFaultRules = SoapFaultRules()
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=120.0, gt=0)
    #: CA bundle for an https endpoint; default: the system's.
    ca_file: Path | None = None

    _endpoint = field_validator("endpoint")(_check_http_url)

    @field_validator("parameters")
    @classmethod
    def _xpaths(cls, value: dict[str, str]) -> dict[str, str]:
        from lxml import etree

        for path, expression in value.items():
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"parameter path {path!r} must be names joined by '.'")
            try:
                etree.XPath(expression)
            except etree.XPathSyntaxError as exc:
                raise ValueError(
                    f"parameters.{path}: {expression!r} is not an XPath 1.0 expression ({exc})"
                ) from None
        return value

    def resolved(self, base: Path) -> SoapDestination:
        """A copy with a relative WSDL path and CA file made absolute."""
        return self.model_copy(
            update={
                "wsdl": _absolute_wsdl(self.wsdl, base),
                "ca_file": _absolute(self.ca_file, base),
            }
        )


class ArchiveTransferDestination(RetryConfig):
    """Upload into an archive's transfer directory (``[archives.NAME]``, agency→archive folder).

    Every message goes as a ZIP named in the archive's convention (x-man:
    ``<ProzessID>_Aussonderung.<Name>.<Code>.zip``); a bare message is wrapped.
    """

    type: Literal["archive"]
    #: The ``[archives.NAME]`` section whose folder receives the uploads.
    archive: str


class AussonderungDestination(RetryConfig):
    """This node's Aussonderung engine: takes the archive's answers (0502, 0504, 0506, 0507).

    It confirms a Bewertung with a 0505, hands the objects valued A over with a 0503
    (exported from ``[dms]``) and runs each archive's DMS actions after the 0506.
    """

    type: Literal["aussonderung"]


class XtaMsgBoxDestination(RetryConfig):
    """An XTA 2 message box: messages wait there until the partner fetches them.

    The partner (a Fachverfahren connected over XTA 2) fetches with ``getStatusList``,
    ``getMessage``/``getNextMessage`` and ``close`` from this gateway's ``[xta]`` service.
    """

    type: Literal["xta-msgbox"]
    #: The configured partner whose box this is.
    partner: str


class XtaDestination(RetryConfig):
    """An upstream XTA 2 server (e.g. an OSCI intermediary or another gateway's ``[xta]``).

    Each message goes ``createMessageId`` → ``sendMessage`` (MTOM, streamed from the
    blob) → ``getTransportReport``.
    """

    type: Literal["xta"]
    #: The XTA WSDL: a file path or an http(s) URL.
    wsdl: str
    #: The service address of all three ports (SendXtaPort, MsgBoxPort, ManagementPort).
    endpoint: str
    #: Our identifier as Author in MessageMetaData; default: the node's Behördenkennung.
    author: str | None = None
    #: The recipient's identifier as Reader (e.g. its Behördenkennung).
    reader: str
    #: Identifier type written for Author and Reader.
    identifier_type: str = "xoev"
    #: WS-Security UsernameToken: user name, and the environment variable holding the password.
    username: str | None = None
    password_env: str | None = None
    #: PEM bundle of the CA(s) the server's certificate must chain to; default: the system's.
    ca_file: Path | None = None
    #: PEM client certificate and key for mutual TLS.
    client_certificate: Path | None = None
    client_key: Path | None = None
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=120.0, gt=0)

    _endpoint = field_validator("endpoint")(_check_http_url)

    @model_validator(mode="after")
    def _credentials(self) -> XtaDestination:
        _check_key_pair(self.client_certificate, self.client_key)
        if (self.username is None) != (self.password_env is None):
            raise ValueError(
                "username and password_env go together (WS-Security UsernameToken); "
                "give both or neither"
            )
        return self

    def resolved(self, base: Path) -> XtaDestination:
        """A copy with the WSDL file and TLS files made absolute against ``base``."""
        return self.model_copy(
            update={
                "wsdl": _absolute_wsdl(self.wsdl, base),
                "ca_file": _absolute(self.ca_file, base),
                "client_certificate": _absolute(self.client_certificate, base),
                "client_key": _absolute(self.client_key, base),
            }
        )


DestinationConfig = Annotated[
    FilesystemDestination
    | HttpDestination
    | DmsDestination
    | FvdatenDestination
    | SoapDestination
    | ArchiveTransferDestination
    | AussonderungDestination
    | XtaMsgBoxDestination
    | XtaDestination,
    Field(discriminator="type"),
]


class DmsActionConfig(_Strict):
    """What the DMS does with an object after the Aussonderung (never a deletion).

    * ``record``: nothing in the DMS; the gateway only records the outcome.
    * ``disposal-date``: set the disposal date (dmsin ``SetDisposalScheduleDateGI``;
      filesystem DMS: the Fachdatum ``offltscheduled``) to the date of the archive's
      answer plus ``delay_days``.
    * ``fachdatum``: set the Fachdatum ``field`` to ``value`` (dmsin:
      ``UpdateUserFormsDataGI``, as for FVDaten and the Abgabevermerk; filesystem
      DMS: ``fachdaten.json`` of the object).
      ``{archivkennung}`` in ``value`` becomes the archive's signature.
    """

    action: Literal["record", "disposal-date", "fachdatum"] = "record"
    field: str | None = None
    value: str | None = None
    delay_days: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _fachdatum(self) -> DmsActionConfig:
        if self.action == "fachdatum" and (not self.field or self.value is None):
            raise ValueError('action "fachdatum" needs field = "NAME" and value = "TEXT"')
        if self.action != "fachdatum" and (self.field or self.value is not None):
            raise ValueError('field and value only apply to action = "fachdatum"')
        return self


class ArchiveConfig(_Strict):
    """``[archives.NAME]``: an archive this node hands its closed Akten to (Aussonderung).

    The archive exchanges xdomea ZIPs with the gateway through a transfer directory
    (a local folder or a WebDAV share), one sub-folder per direction. It is not a
    ``[[partners]]`` entry: it never calls the HTTP API, so it has no token or
    certificate; its answers enter intake as partner ``archive.NAME``.
    """

    behoerdenkennung: str
    #: Name of the archive as written into the Kopf (Institution).
    name: str | None = None
    xdomea_version: Literal["2.3.0", "2.4.0", "3.0.0", "3.1.0"] = "3.0.0"
    #: 4: Anbieteverzeichnis 0501 → Bewertung 0502 → Aussonderung 0503; 2: 0503 at once.
    stages: Literal[2, 4] = 4
    folder: FolderConfig
    #: Sub-folder the gateway writes into (agency → archive).
    outgoing: str = "to_archive"
    #: Sub-folder the archive writes its answers into (archive → agency).
    incoming: str = "from_archive"
    naming: Literal["long", "numbered", "short"] = "long"
    poll_interval_seconds: float = Field(default=30.0, gt=0)
    #: An answer file must keep its size and time this long before it is read.
    settle_seconds: float = Field(default=5.0, ge=0)
    #: ``after-journal``: remove an answer file once it is journaled; ``never``: leave it.
    remove_answers: Literal["after-journal", "never"] = "after-journal"
    #: Deepest nesting of Schriftgutobjekte (Akte = 1) the archive accepts.
    max_depth: int = Field(default=5, ge=1)
    #: Waiting longer than this for the archive's next answer flags the process overdue.
    answer_timeout_seconds: float = Field(default=30 * 24 * 3600.0, gt=0)
    #: DMS action for each object the 0506 confirms as archived.
    archived: DmsActionConfig = DmsActionConfig()
    #: DMS action for each object the 0502 values V (vernichten), once the process ends.
    vernichten: DmsActionConfig = DmsActionConfig()

    _kennung = field_validator("behoerdenkennung")(_check_kennung)

    @field_validator("outgoing", "incoming")
    @classmethod
    def _sub_folder(cls, value: str) -> str:
        parts = value.split("/")
        if any(p in (".", "..") or "\\" in p for p in parts):
            raise ValueError(f"sub-folder {value!r} must not contain '.', '..' or '\\'")
        return value.strip("/")

    def resolved(self, base: Path) -> ArchiveConfig:
        """A copy with the folder's relative paths made absolute against ``base``."""
        folder: LocalFolderConfig | WebDavFolderConfig = self.folder
        if isinstance(folder, LocalFolderConfig):
            folder = folder.model_copy(update={"path": _absolute(folder.path, base)})
        else:
            folder = folder.model_copy(
                update={
                    k: _absolute(getattr(folder, k), base)
                    for k in ("ca_file", "client_certificate", "client_key")
                }
            )
        return self.model_copy(update={"folder": folder})


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
    #: What happens once an Abgabe started here (``abgabe start``) is completed, i.e.
    #: its 0402 reports every object imported: ``record`` only notes it in the
    #: process; ``mark-abgegeben`` also writes an Abgabevermerk onto the Akte in this
    #: node's ``[dms]`` (once; never after a partial import).
    on_completed: Literal["record", "mark-abgegeben"] = "record"


class RetentionConfig(_Strict):
    """``[retention]``: forget finished processes automatically (``db purge`` inside ``serve``)."""

    #: Forget processes finished, with nothing happening in them, this many days ago.
    #: Unset (the default): keep everything until an operator runs ``db purge``.
    purge_after_days: float | None = Field(default=None, gt=0)
    #: How often ``serve`` looks for such processes (first a minute after start).
    interval_hours: float = Field(default=24.0, gt=0)


class OperatorConfig(_Strict):
    """``[operator]``: the credential of this node's own operator on the HTTP API.

    Only the operator may start an Abgabe (``POST /v1/abgaben``): it exports an Akte
    from the node's DMS, which no partner may trigger. Partners' credentials never
    authenticate as the operator.
    """

    token_sha256: str | None = None
    token_env: str | None = None

    _digest = field_validator("token_sha256")(_check_token_digest)

    @model_validator(mode="after")
    def _one_token_source(self) -> OperatorConfig:
        if (self.token_sha256 is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_sha256 or token_env")
        return self


class XtaServerConfig(_Strict):
    """``[xta]``: serve the XTA 2 webservice (SendXtaPort, MsgBoxPort, ManagementPort).

    Fachverfahren authenticate as a configured partner: with the client certificate
    bound to it (``[http.tls]``), or with a WS-Security UsernameToken whose Username
    is the partner id and whose Password is the partner's token.
    """

    enabled: bool = True
    #: The URL path all three ports are served at.
    path: str = "/xta"
    #: XTA.wsdl; its schemas validate every request (the project does not ship it).
    wsdl: Path
    #: Largest Message payload (MTOM part or decoded base64); XTA allows 40 MB.
    max_message_bytes: int = Field(default=40 * 1000 * 1000, gt=0)
    #: Largest SOAP envelope of an MTOM request (the payload travels beside it).
    max_envelope_bytes: int = Field(default=1024 * 1024, gt=0)
    #: XTAServerIdentity in transport reports; default: the service URL.
    server_identity: str | None = None
    #: Send fetched messages as MTOM parts (streamed) rather than inline base64. XTA.wsdl's
    #: policy asks every party for MTOM; turn off only for a client that cannot read it.
    mtom_responses: bool = True

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("/v1/") or value == "/v1":
            raise ValueError(
                f"{value!r} is not a usable path; give an absolute path outside /v1, e.g. '/xta'"
            )
        return value


class GatewayConfig(_Strict):
    """The whole configuration file."""

    node: NodeConfig
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    worker: WorkerConfig = WorkerConfig()
    processes: ProcessesConfig = ProcessesConfig()
    retention: RetentionConfig = RetentionConfig()
    #: This node's own DMS: ``abgabe start``, ``aussonderung start`` and their DMS actions.
    dms: NodeDmsConfig | None = None
    #: The operator's API credential (``POST /v1/abgaben``); none = only the CLI starts.
    operator: OperatorConfig | None = None
    partners: tuple[PartnerConfig, ...] = ()
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    routes: tuple[RouteConfig, ...] = ()
    dropfolders: tuple[DropFolderConfig, ...] = ()
    archives: dict[str, ArchiveConfig] = Field(default_factory=dict)
    xta: XtaServerConfig | None = None

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        ids = [p.id for p in self.partners]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"partner ids must be unique; repeated: {', '.join(duplicates)}")
        for name, destination in self.destinations.items():
            if isinstance(destination, XtaMsgBoxDestination) and destination.partner not in ids:
                raise ValueError(
                    f"destinations.{name} is the message box of partner "
                    f"{destination.partner!r}, which is not configured "
                    f"(partners: {', '.join(ids) or 'none'})"
                )
        self._check_certificate_bindings()
        if self.processes.on_completed == "mark-abgegeben" and self.dms is None:
            raise ValueError(
                'processes.on_completed = "mark-abgegeben" needs this node\'s DMS: add a [dms] '
                'table (backend and its settings), or set on_completed = "record"'
            )
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
        self._check_archives()
        return self

    def _check_archives(self) -> None:
        """Archive destinations name a configured archive; the engine needs ``[dms]``."""
        for name in self.archives:
            _check_name(name)
        for name, destination in self.destinations.items():
            if isinstance(destination, ArchiveTransferDestination) and (
                destination.archive not in self.archives
            ):
                known = ", ".join(sorted(self.archives)) or "none configured"
                raise ValueError(
                    f"destinations.{name} uploads to archive {destination.archive!r}, which is "
                    f"not configured (archives: {known}); add an [archives.{destination.archive}] "
                    "section"
                )
            if isinstance(destination, AussonderungDestination) and self.dms is None:
                raise ValueError(
                    f"destinations.{name} (type aussonderung) exports the Akten valued A from "
                    "this node's DMS; add a [dms] section with its backend"
                )
        kennungen = {p.behoerdenkennung: p.id for p in self.partners}
        for name, archive in self.archives.items():
            if archive.behoerdenkennung in kennungen:
                raise ValueError(
                    f"archives.{name} has Behördenkennung {archive.behoerdenkennung}, which "
                    f"partner {kennungen[archive.behoerdenkennung]} has too; an archive is not "
                    "also a partner"
                )

    def archive_for(self, kennung: str) -> tuple[str, ArchiveConfig] | None:
        """The archive (name and settings) with that Behördenkennung, if any."""
        for name, archive in self.archives.items():
            if archive.behoerdenkennung == kennung:
                return name, archive
        return None

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
