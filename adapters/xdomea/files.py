"""Check one file that claims to be xdomea: a bare message XML or a ZIP container.

This is what ``ikz-gateway validate`` and ``inspect`` run per path, and what
intake runs per upload: it never raises for bad input, it classifies it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from adapters.xdomea.container import ContainerLimits, ContainerReport, read_container
from adapters.xdomea.validation import CheckedMessage, check_message
from contracts.xdomea import ContainerEntry, Finding, Nachricht, Severity
from gateway.errors import GatewayError, UnusableInput

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class Verdict(StrEnum):
    """Outcome classes, mapped to the CLI's exit codes."""

    VALID = "valid"
    INVALID = "invalid"
    UNUSABLE = "unusable"

    @property
    def exit_code(self) -> int:
        """0 valid, 1 invalid, 2 unusable."""
        return {"valid": 0, "invalid": 1, "unusable": 2}[self.value]


@dataclass
class FileCheck:
    """The result of checking one path."""

    path: str
    verdict: Verdict
    kind: str | None = None
    checked: CheckedMessage | None = None
    container: ContainerReport | None = None
    error: GatewayError | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def nachricht(self) -> Nachricht | None:
        """The message view, when the message could be read."""
        return self.checked.read() if self.checked else None

    @property
    def entries(self) -> list[ContainerEntry]:
        """Container entries with SHA-256 (empty for bare XML)."""
        return self.container.entries if self.container else []


def check_file(path: Path, *, limits: ContainerLimits | None = None) -> FileCheck:
    """Classify ``path`` as a valid, invalid or unusable xdomea message or container."""
    limits = limits or ContainerLimits()
    where = str(path)
    try:
        if path.is_dir():
            raise UnusableInput(
                "is a directory; give a message XML or a ZIP container", where=where
            )
        with path.open("rb") as stream:
            head = stream.read(4)
        if head in _ZIP_MAGIC:
            return _container_check(read_container(path, limits=limits), where)
        size = path.stat().st_size
        if size > limits.max_message_bytes:
            raise UnusableInput(
                f"{size} bytes exceed the message size limit of {limits.max_message_bytes}",
                where=where,
            )
        return _message_check(check_message(path.read_bytes(), where=where), where)
    except GatewayError as exc:
        return FileCheck(path=where, verdict=Verdict.UNUSABLE, error=exc)
    except FileNotFoundError:
        return FileCheck(
            path=where, verdict=Verdict.UNUSABLE, error=UnusableInput("no such file", where=where)
        )
    except PermissionError:
        return FileCheck(
            path=where,
            verdict=Verdict.UNUSABLE,
            error=UnusableInput("permission denied", where=where),
        )


def check_bytes(
    data: bytes, *, limits: ContainerLimits | None = None, where: str = "the upload"
) -> FileCheck:
    """Classify content held in memory, as ``check_file`` classifies a file.

    Intake checks a small upload this way before anything is written: the same
    verdicts, without writing the bytes out and reading them back.

    Args:
        data: a bare message XML or a ZIP container.
        limits: container and message size limits; the defaults otherwise.
        where: what findings and errors call the content.
    """
    limits = limits or ContainerLimits()
    try:
        if data[:4] in _ZIP_MAGIC:
            report = read_container(io.BytesIO(data), limits=limits, where=where)
            return _container_check(report, where)
        if len(data) > limits.max_message_bytes:
            raise UnusableInput(
                f"{len(data)} bytes exceed the message size limit of {limits.max_message_bytes}",
                where=where,
            )
        return _message_check(check_message(data, where=where), where)
    except GatewayError as exc:
        return FileCheck(path=where, verdict=Verdict.UNUSABLE, error=exc)


def _container_check(report: ContainerReport, where: str) -> FileCheck:
    findings = report.all_findings
    return FileCheck(
        path=where,
        verdict=_verdict(findings),
        kind="container",
        checked=report.checked,
        container=report,
        findings=findings,
    )


def _message_check(checked: CheckedMessage, where: str) -> FileCheck:
    findings = list(checked.findings)
    return FileCheck(
        path=where, verdict=_verdict(findings), kind="message", checked=checked, findings=findings
    )


def _verdict(findings: list[Finding]) -> Verdict:
    if any(f.severity is Severity.ERROR for f in findings):
        return Verdict.INVALID
    return Verdict.VALID
