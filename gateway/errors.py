"""The gateway's exceptions.

Every error a user can cause or meet is one of these; library and driver errors
(lxml, zipfile, OS errors) are translated at the boundary where they occur.
Each error carries a message that says what is wrong, where, and how to fix it.

Hierarchy::

    GatewayError
    ├── SchemaError                     schema catalog and installation
    │   ├── SchemaNotInstalled          a known version has no usable files
    │   ├── SchemaIntegrityError        a file's SHA-256 differs from the pin
    │   └── SchemaSourceError           an import/fetch source is unusable
    ├── UnusableInput                   input that cannot be evaluated at all (exit 2)
    │   ├── MalformedXml                not well-formed XML
    │   ├── UnsafeXml                   DTDs, entities, external references
    │   ├── NotXdomea                   well-formed XML but no xdomea message
    │   ├── UnsupportedVersion          xdomea namespace of a version not installed
    │   ├── UnknownMessageType          root element not a message of that version
    │   └── ContainerError              ZIP container problems
    │       ├── UnsafeContainer         traversal, symlinks, bombs, encryption, duplicates
    │       └── ContainerLimitExceeded  configured limits (entries, size, ratio)
    ├── IncompleteContainer             referenced documents missing or ambiguous
    ├── BuildError                      a spec no message of that version can express
    ├── ReceiptError                    results that do not fit the incoming message
    │   └── ReceiptNotApplicable        receipt does not answer that message or version
    ├── ConfigError                     gateway.toml unreadable or invalid
    ├── JournalError                    the journal refused an operation
    │   ├── JournalUnavailable          database unreachable (answer 503, retry)
    │   └── LeaseLost                   a worker's claim expired under it
    ├── NotFound                        no such message, delivery or process
    ├── IdempotencyConflict             an Idempotency-Key reused for other content
    ├── IntakeRejected                  intake refused a submission (status, title, findings)
    ├── AussonderungRefused             an Aussonderung fails a check before anything is sent
    └── DeliveryError                   a delivery attempt failed
        ├── TransientDeliveryError      retry with backoff
        └── PermanentDeliveryError      dead-letter at once
            ├── DmsRefused              the DMS answered a refusal (status, Client/Sender fault)
            └── ObjectRefused           a DMS refused one document; the import goes on
    AbgabeError                         ``abgabe start`` cannot start (exit code, HTTP status)

``IncompleteContainer`` is not ``UnusableInput``: the message could be read and the
container is simply invalid, which ``validate`` reports with exit code 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.xdomea import Finding


class GatewayError(Exception):
    """Root of all errors the gateway raises on purpose."""

    #: Short machine-readable kind, used in ``--json`` output and problem documents.
    kind: str = "gateway-error"

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        if self.where:
            return f"{self.where}: {self.message}"
        return self.message


class SchemaError(GatewayError):
    """The schema catalog cannot provide a usable schema."""

    kind = "schema-error"


class SchemaNotInstalled(SchemaError):
    """A known xdomea version has no installed schema files."""

    kind = "schema-not-installed"


class SchemaIntegrityError(SchemaError):
    """An installed or offered schema file does not match its pinned SHA-256."""

    kind = "schema-integrity"


class SchemaSourceError(SchemaError):
    """A directory, ZIP or download offered as schema source is unusable."""

    kind = "schema-source"


class UnusableInput(GatewayError):
    """Input that cannot be evaluated at all."""

    kind = "unusable-input"


class MalformedXml(UnusableInput):
    """The XML is not well-formed."""

    kind = "malformed-xml"


class UnsafeXml(UnusableInput):
    """The XML uses DTDs, entities or external references, which the gateway refuses."""

    kind = "unsafe-xml"


class NotXdomea(UnusableInput):
    """Well-formed XML whose root element is not an xdomea message."""

    kind = "not-xdomea"


class UnsupportedVersion(UnusableInput):
    """An xdomea namespace whose version is not installed or not known."""

    kind = "unsupported-version"


class UnknownMessageType(UnusableInput):
    """The root element is not a message type of the detected xdomea version."""

    kind = "unknown-message-type"


class ContainerError(UnusableInput):
    """A ZIP container that cannot be read."""

    kind = "container-error"


class UnsafeContainer(ContainerError):
    """A container with hostile or ambiguous structure (traversal, symlinks, encryption…)."""

    kind = "unsafe-container"


class ContainerLimitExceeded(ContainerError):
    """A container exceeds a configured limit (entry count, size, compression ratio)."""

    kind = "container-limit"


class IncompleteContainer(GatewayError):
    """The container's documents do not match the message's references."""

    kind = "incomplete-container"


class BuildError(GatewayError):
    """A spec that no message of the requested xdomea version can express."""

    kind = "build-error"


class ReceiptError(GatewayError):
    """A receipt cannot be written from the given incoming message and results."""

    kind = "receipt-error"


class ReceiptNotApplicable(ReceiptError):
    """The receipt does not answer the incoming message type, or not in its version."""

    kind = "receipt-not-applicable"


class ConfigError(GatewayError):
    """The configuration file is unreadable or invalid."""

    kind = "config-error"


class JournalError(GatewayError):
    """The journal cannot be reached or refused an operation."""

    kind = "journal-error"


class JournalUnavailable(JournalError):
    """The journal's database cannot be reached right now (retry later)."""

    kind = "journal-unavailable"


class LeaseLost(JournalError):
    """A worker's claim on a delivery expired and another worker may own it now."""

    kind = "lease-lost"


class NotFound(GatewayError):
    """A message, delivery or process that does not exist."""

    kind = "not-found"


class DeliveryError(GatewayError):
    """A delivery attempt failed."""

    kind = "delivery-error"


class TransientDeliveryError(DeliveryError):
    """The destination may accept the message later: retry with backoff."""

    kind = "transient-delivery-error"


class PermanentDeliveryError(DeliveryError):
    """The destination will never accept the message: dead-letter at once."""

    kind = "permanent-delivery-error"


class DmsRefused(PermanentDeliveryError):
    """The DMS understood a request and refused it (a business status, a Client fault).

    Unlike a broken connection or configuration this is the DMS's verdict on what
    was sent; for a document's content the dmsin port turns it into ``ObjectRefused``.
    """

    kind = "dms-refused"


class ObjectRefused(PermanentDeliveryError):
    """The DMS refused one document of an import (its content, not the connection).

    The import files the rest and reports this object as failed in the 0402; only
    outside an import (nothing to report it in) does it dead-letter like its parent.
    """

    kind = "object-refused"


class IdempotencyConflict(GatewayError):
    """An Idempotency-Key the partner used before, now with different content."""

    kind = "idempotency-conflict"


class AussonderungRefused(GatewayError):
    """An Aussonderung step fails a check the archive would make (nothing is sent)."""

    kind = "aussonderung-refused"


class IntakeRejected(GatewayError):
    """A submission intake refuses: nothing is queued and the upload is removed.

    It carries what an HTTP problem document needs, so every channel (HTTP, drop
    folder, XTA) reports a refusal the same way: ``status`` (the HTTP status code),
    ``kind`` (a short slug naming the reason, e.g. ``unroutable``), ``title`` (the
    same for every refusal of that kind), the message as the specific detail, and
    the validation ``findings`` with line and element path.
    """

    kind = "intake-rejected"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        kind: str,
        title: str,
        findings: Sequence[Finding] = (),
        where: str | None = None,
    ) -> None:
        super().__init__(message, where=where)
        self.status = status
        self.kind = kind
        self.title = title
        self.findings = tuple(findings)


class AbgabeError(GatewayError):
    """An Abgabe cannot be started; nothing was journaled.

    ``kind`` names the reason (``unknown-partner``, ``no-route``, ``no-dms``,
    ``unknown-akte``, ``dms-unavailable``, ``export-refused``); ``exit_code`` is what
    ``abgabe start`` exits with, ``status`` what ``POST /v1/abgaben`` answers.
    """

    def __init__(self, message: str, *, kind: str, exit_code: int, status: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code
        self.status = status
