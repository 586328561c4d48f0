"""Intake: the one way a message enters the gateway, shared by HTTP, drop folder and XTA.

::

    stage ──► check ──► partner rules ──► route ──► commit blob ──► journal ──► Accepted
    (fsync'd,  (thread:   (agreed version,  (routes;   (content-      (message +
     hashed)    XSD,       Absender is the   none:      addressed)     deliveries,
                container) partner)          refused)                  one commit)

That is the path of content larger than ``IN_MEMORY_BYTES``. Smaller content (most
messages) is held in memory: it is checked from there (on the event loop itself
up to ``INLINE_CHECK_BYTES``, else on the CPU pool), and only once partner rules
and routing have admitted it is it written: up to ``[storage] inline_max_bytes``
into the journal, in the very transaction that records the message (no file, no
fsync of its own); above that to its address in the blob store, in one hop to a
thread (``BlobStore.store``: temp file, fsync, rename, folder fsync).

The order carries the guarantee "accepted means durable": the blob reaches its
address before the journal row that refers to it is written (or is committed in
the same transaction as that row), and the caller hears
"accepted" only after the journal commit. Any refusal raises ``IntakeRejected``
before anything was written, or removes the staged upload, so a refused message
leaves nothing behind and is never queued. Only failures after the blob is at its
address leave it (an unreachable journal, an Idempotency-Key reused for other
bytes): it is content-addressed, so a retry of the same upload reuses it.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from adapters.xdomea.container import ContainerLimits
from adapters.xdomea.files import FileCheck, Verdict, check_bytes, check_file
from contracts.config import GatewayConfig, PartnerConfig
from contracts.journal import Accepted, NewMessage, ReceiptState
from contracts.xdomea import Finding, Kontakt, Nachricht, Severity
from gateway.blobs import BlobStore, BlobTooLarge, StagedBlob
from gateway.blocking import run_cpu_bound
from gateway.errors import (
    GatewayError,
    IdempotencyConflict,
    IntakeRejected,
    NotXdomea,
    SchemaError,
    UnknownMessageType,
    UnsupportedVersion,
)
from gateway.journal.store import Journal

log = structlog.get_logger(__name__)

#: A problem document lists at most this many findings; the detail gives the total.
MAX_FINDINGS = 100
#: Longest Idempotency-Key kept (the journal column holds 200 characters).
MAX_IDEMPOTENCY_KEY = 200
#: Longest original file name kept; longer names are no file system's names.
MAX_FILE_NAME = 255
#: Content up to this size is held in memory, checked there and written once;
#: larger content is staged to a file while it arrives.
IN_MEMORY_BYTES = 1024 * 1024
#: Content in memory up to this size is checked on the event loop itself (parsing
#: and validating a few kB takes about 0.1 ms, less than a hop to the CPU pool);
#: larger content is checked on the CPU pool, so the loop never stalls on it.
INLINE_CHECK_BYTES = 64 * 1024
#: How every ZIP file (a container) begins; a bare message begins with XML.
_ZIP_MAGIC = b"PK"
#: What refusals call the content.
_UPLOAD = "the upload"

#: Readable XML of the wrong kind: the request was understood but cannot be processed.
_UNPROCESSABLE: tuple[type[GatewayError], ...] = (
    NotXdomea,
    UnsupportedVersion,
    UnknownMessageType,
)

_TITLES = {
    "malformed-xml": "Malformed XML",
    "unsafe-xml": "Unsafe XML",
    "not-xdomea": "Not an xdomea message",
    "unsupported-version": "Unsupported xdomea version",
    "unknown-message-type": "Unknown xdomea message type",
    "container-error": "Unreadable container",
    "unsafe-container": "Unsafe container",
    "container-limit": "Container exceeds a limit",
    "unusable-input": "Unusable content",
}


@dataclass(frozen=True)
class Submission:
    """Who hands a message in, and how.

    Attributes:
        partner: the authenticated sender.
        channel: ``"http"``, ``"dropfolder"`` or ``"xta"``.
        idempotency_key: the sender's key for this message; a repeat returns the first id.
        file_name: the original file name, kept for the journal (directories are dropped).
    """

    partner: PartnerConfig
    channel: str
    idempotency_key: str | None = None
    file_name: str | None = None


class Intake:
    """Turns an uploaded byte stream into a journaled message, or refuses it."""

    def __init__(
        self,
        config: GatewayConfig,
        journal: Journal,
        blobs: BlobStore,
        *,
        limits: ContainerLimits | None = None,
        on_accepted: Callable[[NewMessage], None] | None = None,
        on_receipts_owed: Callable[[], None] | None = None,
    ) -> None:
        """Intake over an open journal and blob store.

        Args:
            config: partners (versions, Behördenkennung), routes and ``[http]`` limits.
            journal: where accepted messages are recorded.
            blobs: where their bytes are kept.
            limits: container limits for the checks; the defaults otherwise.
            on_accepted: called with each newly journaled message (not for duplicates),
                e.g. to wake the delivery worker instead of waiting for its next poll.
            on_receipts_owed: called after a newly journaled message that owes receipts,
                e.g. to wake the receipt producer (not for every message: each wake-up
                costs the producer a look into the journal).
        """
        self._config = config
        self._journal = journal
        self._blobs = blobs
        self._limits = limits or ContainerLimits()
        self._on_accepted = on_accepted
        self._on_receipts_owed = on_receipts_owed

    async def submit(
        self,
        chunks: AsyncIterator[bytes],
        submission: Submission,
        *,
        max_bytes: int | None = None,
    ) -> Accepted:
        """Check, route and journal one message.

        Args:
            chunks: the content (a ZIP container or a bare message XML).
            submission: the sender and channel.
            max_bytes: refuse content larger than this; default ``[http] max_body_bytes``.

        Returns:
            The journal's answer: the message id, and whether it was accepted before.

        Raises:
            IntakeRejected: the message is refused; nothing was kept.
            JournalUnavailable: the journal cannot be reached; the message is NOT accepted.
            SchemaError: the gateway's own schemas are unusable (an operator problem).
        """
        limit = self._config.http.max_body_bytes if max_bytes is None else max_bytes
        with structlog.contextvars.bound_contextvars(
            partner=submission.partner.id, channel=submission.channel
        ):
            submission = replace(
                submission,
                idempotency_key=_checked_key(submission.idempotency_key),
                file_name=_checked_file_name(submission.file_name),
            )
            stream = aiter(chunks)
            head, complete = await _in_memory(stream, limit)
            if complete:
                return await self._submit_bytes(bytes(head), submission)
            return await self._submit_streamed(_chain(bytes(head), stream), submission, limit)

    async def _submit_bytes(self, data: bytes, submission: Submission) -> Accepted:
        """Intake of content that arrived completely in memory: check, then write once.

        Nothing is written before the checks pass, so a refusal leaves nothing
        behind without a clean-up. Small content goes into the journal with the
        message, in one commit; larger content is written to its address in the
        blob store (fsync'd) in one hop before the journal row refers to it.
        """
        nachricht, kind = await self._read_bytes(data)
        with structlog.contextvars.bound_contextvars(prozess_id=nachricht.kopf.prozess_id):
            absender, empfaenger, destinations = self._admit(nachricht, submission.partner)
            sha256 = hashlib.sha256(data).hexdigest()
            inline = len(data) <= self._config.storage.inline_max_bytes
            if not inline:
                await self._blobs.store(data, sha256)
            message = _new_message(
                submission, sha256, len(data), kind, nachricht, absender, empfaenger
            )
            owed = self._receipts_owed(message, submission.partner)
            return await self._record(message, destinations, owed, data if inline else None)

    async def _submit_streamed(
        self, chunks: AsyncIterator[bytes], submission: Submission, limit: int
    ) -> Accepted:
        """Intake of large content: staged to a file while it arrives, checked from there."""
        staged = await self._stage(chunks, limit)
        committed = False
        try:
            nachricht, kind = await self._read(staged)
            with structlog.contextvars.bound_contextvars(prozess_id=nachricht.kopf.prozess_id):
                absender, empfaenger, destinations = self._admit(nachricht, submission.partner)
                await self._blobs.commit(staged)
                committed = True
                message = _new_message(
                    submission, staged.sha256, staged.size, kind, nachricht, absender, empfaenger
                )
                owed = self._receipts_owed(message, submission.partner)
                return await self._record(message, destinations, owed)
        finally:
            if not committed:
                # A refusal, a failed check, a cancelled request: remove the upload.
                self._blobs.discard(staged)

    async def _stage(self, chunks: AsyncIterator[bytes], limit: int) -> StagedBlob:
        try:
            return await self._blobs.stage(chunks, max_bytes=limit)
        except BlobTooLarge as exc:
            raise _too_large(limit) from exc

    async def _read(self, staged: StagedBlob) -> tuple[Nachricht, str]:
        """Classify the staged upload; the message view and content kind when it is valid."""
        check, nachricht = await run_cpu_bound(_classify, staged, self._limits)
        if check.verdict is Verdict.UNUSABLE or nachricht is None or check.kind is None:
            raise _refusal(check, str(staged.path))
        return nachricht, check.kind

    async def _read_bytes(self, data: bytes) -> tuple[Nachricht, str]:
        """Classify content in memory; the message view and content kind when it is valid.

        A small bare message is checked right here on the event loop: a hop to the
        CPU pool and back costs more than parsing and validating a few kB (about
        0.1 ms). A container never is, however small: its entries may unpack to
        megabytes (within ``ContainerLimits``) that would stall the loop.
        """
        if len(data) <= INLINE_CHECK_BYTES and not data.startswith(_ZIP_MAGIC):
            check, nachricht = _classify_bytes(data, self._limits)
        else:
            check, nachricht = await run_cpu_bound(_classify_bytes, data, self._limits)
        if check.verdict is Verdict.UNUSABLE or nachricht is None or check.kind is None:
            raise _refusal(check, _UPLOAD)
        return nachricht, check.kind

    def _admit(self, nachricht: Nachricht, partner: PartnerConfig) -> tuple[str, str, list[str]]:
        """Apply the partner agreement and routing; Absender, Empfänger and destinations."""
        if nachricht.version not in partner.xdomea_versions:
            raise _rejected(
                f"this is an xdomea {nachricht.version} message, but partner {partner.id} has "
                f"agreed on xdomea {', '.join(partner.xdomea_versions)}; send it in an agreed "
                "version or ask the operator to add this one to the partner's xdomea_versions",
                status=422,
                kind="version-not-agreed",
                title="xdomea version not agreed with this partner",
            )
        absender = _kennung(nachricht.kopf.absender)
        if absender != partner.behoerdenkennung:
            named = f"Absender {absender}" if absender else "no Absender Behördenkennung"
            raise _rejected(
                f"the Kopf names {named}, but this submission comes from partner {partner.id} "
                f"(Behördenkennung {partner.behoerdenkennung}); a partner can only send as "
                "its own Behördenkennung",
                status=403,
                kind="wrong-sender",
                title="Absender is not the authenticated partner",
            )
        empfaenger = _kennung(nachricht.kopf.empfaenger)
        code = nachricht.typ.code
        destinations = self._config.routes_for(code, empfaenger) if empfaenger else []
        if empfaenger is None or not destinations:
            named = f"Empfänger {empfaenger}" if empfaenger else "no Empfänger Behördenkennung"
            raise _rejected(
                f"this gateway has no route for a {code} message to {named}; check the "
                "Empfänger Behördenkennung in the Kopf, or ask the operator to add a route",
                status=422,
                kind="unroutable",
                title="No route for the Empfänger",
            )
        return absender, empfaenger, destinations

    def _receipts_owed(
        self, message: NewMessage, partner: PartnerConfig
    ) -> dict[str, ReceiptState]:
        """The receipts this node owes for ``message``, journaled with it.

        Only a 0401 a configured partner addressed to this node is answered: not one
        the node sends itself (``send``, its own receipts), and never a receipt, so
        two gateways cannot answer each other's receipts forever. Which of them the
        Kopf actually asks for is decided when they are produced (0403 only when
        ``Empfangsbestaetigung`` is set).
        """
        if (
            not self._config.processes.auto_receipts
            or message.nachrichtentyp != "0401"
            or message.empfaenger != self._config.node.behoerdenkennung
            or all(p.id != partner.id for p in self._config.partners)
        ):
            return {}
        return {"0403": ReceiptState.PENDING, "0402": ReceiptState.WAITING}

    async def _record(
        self,
        message: NewMessage,
        destinations: Sequence[str],
        receipts: dict[str, ReceiptState],
        content: bytes | None = None,
    ) -> Accepted:
        try:
            accepted = await self._journal.accept(
                message, destinations, receipts=receipts, content=content
            )
        except IdempotencyConflict as exc:
            raise _rejected(
                exc.message,
                status=422,
                kind="idempotency-conflict",
                title="Idempotency-Key reused for different content",
            ) from exc
        if accepted.duplicate:
            log.info("message_duplicate", message_id=accepted.message_id)
        else:
            log.info(
                "message_accepted",
                message_id=accepted.message_id,
                nachrichtentyp=message.nachrichtentyp,
                xdomea_version=message.xdomea_version,
                size=message.size,
                destinations=list(destinations),
            )
            if self._on_accepted is not None:
                self._on_accepted(message)
            if receipts and self._on_receipts_owed is not None:
                self._on_receipts_owed()
        return accepted


def _new_message(
    submission: Submission,
    sha256: str,
    size: int,
    kind: str,
    nachricht: Nachricht,
    absender: str,
    empfaenger: str,
) -> NewMessage:
    return NewMessage(
        partner_id=submission.partner.id,
        channel=submission.channel,
        idempotency_key=submission.idempotency_key,
        blob_sha256=sha256,
        size=size,
        content_kind=kind,
        file_name=submission.file_name,
        prozess_id=nachricht.kopf.prozess_id,
        nachrichtentyp=nachricht.typ.code,
        message_element=nachricht.typ.element,
        xdomea_version=nachricht.version,
        absender=absender,
        empfaenger=empfaenger,
    )


async def _in_memory(stream: AsyncIterator[bytes], limit: int) -> tuple[bytearray, bool]:
    """Read ``stream`` into memory as long as it stays within ``IN_MEMORY_BYTES``.

    Returns what was read and whether that is all of it: when the content turned
    out larger, the rest stays in ``stream`` and is staged to a file behind what
    was read (``_chain``).

    Raises:
        IntakeRejected: more than ``limit`` bytes arrived.
    """
    buffer = bytearray()
    async for chunk in stream:
        buffer += chunk
        if len(buffer) > limit:
            raise _too_large(limit)
        if len(buffer) > IN_MEMORY_BYTES:
            return buffer, False
    return buffer, True


async def _chain(prefix: bytes, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``prefix``, then the rest of ``stream``."""
    yield prefix
    async for chunk in stream:
        yield chunk


def _classify(staged: StagedBlob, limits: ContainerLimits) -> tuple[FileCheck, Nachricht | None]:
    """Blocking part of intake (parse, XSD, container hashes), run in a worker thread."""
    check = check_file(staged.path, limits=limits)
    return check, check.nachricht if check.verdict is Verdict.VALID else None


def _classify_bytes(data: bytes, limits: ContainerLimits) -> tuple[FileCheck, Nachricht | None]:
    """``_classify`` for content in memory."""
    check = check_bytes(data, limits=limits, where=_UPLOAD)
    return check, check.nachricht if check.verdict is Verdict.VALID else None


def _refusal(check: FileCheck, where: str) -> GatewayError:
    """The refusal for content that is unusable or invalid (or the gateway's own fault)."""
    error = check.error
    if isinstance(error, SchemaError):
        return error  # the installed schemas are broken: not the sender's fault
    if check.verdict is Verdict.INVALID or error is None:
        return _invalid(check.findings)
    # Messages from the core name the file they read; here that is a staging path.
    detail = error.message.replace(where, _UPLOAD)
    return _rejected(
        detail,
        status=422 if isinstance(error, _UNPROCESSABLE) else 400,
        kind=error.kind,
        title=_TITLES.get(error.kind, "Unusable content"),
    )


def _too_large(limit: int) -> IntakeRejected:
    return _rejected(
        f"the content exceeds this gateway's limit of {limit} bytes; send a smaller "
        "container or ask the operator to raise the limit",
        status=413,
        kind="too-large",
        title="Content too large",
    )


def _invalid(findings: Sequence[Finding]) -> IntakeRejected:
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        where = f" at line {first.line}" if first.line else ""
        where += f" ({first.path})" if first.path else ""
        summary = f"{len(errors)} error(s), the first{where}: {first.message.rstrip('.')}"
    else:
        summary = "it could not be read"
    shown = "" if len(findings) <= MAX_FINDINGS else f"; the first {MAX_FINDINGS} are listed"
    return _rejected(
        f"the message is not valid xdomea: {summary}{shown}. Correct it and send it again",
        status=422,
        kind="invalid-message",
        title="Invalid xdomea message",
        findings=findings[:MAX_FINDINGS],
    )


def _rejected(
    detail: str, *, status: int, kind: str, title: str, findings: Sequence[Finding] = ()
) -> IntakeRejected:
    """A refusal, logged where it is raised so the bound ids (ProzessID) are in the event."""
    log.warning("message_rejected", status=status, reason=kind, findings=len(findings))
    return IntakeRejected(detail, status=status, kind=kind, title=title, findings=findings)


def _kennung(kontakt: Kontakt) -> str | None:
    """A party's Behördenkennung as ``praefix:kennung``, or ``None`` when incomplete."""
    kennung = kontakt.behoerdenkennung
    if kennung is None or not kennung.praefix or not kennung.kennung:
        return None
    return str(kennung)


def _checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise _rejected(
            f"an Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII "
            "characters, e.g. a UUID",
            status=400,
            kind="bad-idempotency-key",
            title="Invalid Idempotency-Key",
        )
    return key


def _checked_file_name(name: str | None) -> str | None:
    """The base name of ``name``: a sender's folders are none of the gateway's business."""
    if name is None:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        return None
    if len(base) > MAX_FILE_NAME or any(unicodedata.category(c) == "Cc" for c in base):
        raise _rejected(
            f"the file name must be at most {MAX_FILE_NAME} characters without control characters",
            status=400,
            kind="bad-file-name",
            title="Invalid file name",
        )
    return base


class IntakeOutbox:
    """``contracts.delivery.NodeOutbox`` over this gateway's intake, as the node itself."""

    def __init__(self, intake: Intake, node: PartnerConfig) -> None:
        """An outbox submitting through ``intake`` as ``node`` (``gateway.app.local_sender``)."""
        self._intake = intake
        self._node = node

    async def submit(self, body: bytes, *, idempotency_key: str, file_name: str) -> str:
        """Journal ``body`` as sent by the node; the message id (the first one's on a repeat)."""

        async def once() -> AsyncIterator[bytes]:
            yield body

        accepted = await self._intake.submit(
            once(),
            Submission(
                partner=self._node,
                channel="node",
                idempotency_key=idempotency_key,
                file_name=file_name,
            ),
        )
        return accepted.message_id
