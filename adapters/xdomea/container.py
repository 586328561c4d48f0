"""Reading and writing xdomea ZIP containers: the message XML plus its primary documents.

Reading checks the central directory before any content is read (entry count,
declared sizes, compression ratio, encryption, symlinks, unsafe or duplicate
names), then streams every entry through SHA-256 with the limits enforced on the
bytes actually produced. Nothing is extracted to disk and no document is ever
held in memory whole; only the message XML is (bounded by ``max_message_bytes``).

Entry names without the ZIP UTF-8 flag are decoded the way the message expects:
Windows tools write CP437/CP850 (and some UTF-8 without the flag), so for each such
name the spelling that matches a referenced ``Dateiname`` wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO

from adapters.xdomea import naming
from adapters.xdomea.validation import CheckedMessage, check_message
from contracts.xdomea import ContainerEntry, Finding, Nachricht, Severity
from gateway.durable import fsync_dir
from gateway.errors import (
    ContainerError,
    ContainerLimitExceeded,
    IncompleteContainer,
    UnsafeContainer,
)
from schemas.loader import SchemaLoader

_CHUNK = 1024 * 1024
_UTF8_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
_COMPRESSED_SUFFIXES = frozenset(
    {
        ".pdf",
        ".zip",
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".docx",
        ".xlsx",
        ".pptx",
        ".odt",
        ".ods",
        ".mp3",
        ".mp4",
        ".gz",
        ".7z",
        ".tif",
        ".tiff",
    }
)


@dataclass(frozen=True)
class ContainerLimits:
    """Limits that keep a hostile container from exhausting memory, disk or time."""

    max_entries: int = 10_000
    max_total_bytes: int = 64 * 1024**3
    max_entry_bytes: int = 16 * 1024**3
    max_message_bytes: int = 256 * 1024**2
    #: Uncompressed/compressed ratio above which an entry counts as a bomb…
    max_ratio: float = 200.0
    #: …but only once it is this large; small, very repetitive files are harmless.
    ratio_floor_bytes: int = 8 * 1024**2


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    name: str
    raw_name: bytes | None


@dataclass
class ContainerReport:
    """Everything ``read_container`` found out about one container."""

    path: str
    checked: CheckedMessage
    message_entry: str
    entries: list[ContainerEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def nachricht(self) -> Nachricht:
        """The message view (Kopf and Schriftgutobjekt tree)."""
        return self.checked.read()

    @property
    def valid(self) -> bool:
        """Schema-valid message and complete container."""
        return not any(f.severity is Severity.ERROR for f in self.all_findings)

    @property
    def all_findings(self) -> list[Finding]:
        """Findings of the message and of the container."""
        return [*self.checked.findings, *self.findings]


class Container:
    """An open xdomea container whose structure has been checked.

    Use as a context manager; ``report()`` hashes every entry and checks completeness,
    ``open_document`` streams one primary document.
    """

    def __init__(
        self,
        path: Path | IO[bytes],
        *,
        limits: ContainerLimits | None = None,
        loader: SchemaLoader | None = None,
        where: str | None = None,
    ) -> None:
        """Open and check a container from a file or a seekable stream.

        Args:
            path: the container file, or a seekable binary stream holding it (intake
                reads a small upload from memory, ``io.BytesIO``).
            limits: the structural limits; the defaults otherwise.
            loader: the schema loader; the process's default otherwise.
            where: what messages call the container; the path by default.
        """
        source: Path | IO[bytes] = path if not isinstance(path, str) else Path(path)
        self.path = source if isinstance(source, Path) else Path(where or "<stream>")
        self.limits = limits or ContainerLimits()
        where = where or str(self.path)
        self._where = where
        try:
            self._zip = zipfile.ZipFile(source)
        except FileNotFoundError as exc:
            raise ContainerError(f"no such file: {self.path}") from exc
        except (zipfile.BadZipFile, OSError) as exc:
            raise ContainerError(
                f"not a readable ZIP container ({exc}); xdomea containers are ZIP files",
                where=where,
            ) from exc
        try:
            raw_entries = _preflight(self._zip, self.limits, where)
            self._message = _find_message_entry(raw_entries, where)
            xml_bytes = _read_bounded(
                self._zip, self._message.info, self.limits.max_message_bytes, where
            )
            self.checked = check_message(
                xml_bytes, loader=loader, where=f"{where}!{self._message.name}"
            )
            referenced = set(self.checked.read().dateinamen())
            self._entries = _decode_names(raw_entries, referenced, where)
            self._message = next(e for e in self._entries if e.info is self._message.info)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> Container:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying ZIP file."""
        self._zip.close()

    @property
    def message_entry(self) -> str:
        """Name of the message XML entry."""
        return self._message.name

    def document_names(self) -> list[str]:
        """Names of all non-message file entries."""
        return [e.name for e in self._entries if e is not self._message and not e.info.is_dir()]

    def open_document(self, name: str) -> IO[bytes]:
        """Stream one entry's content.

        Raises:
            ContainerError: no entry of that name.
        """
        for entry in self._entries:
            if entry.name == name and not entry.info.is_dir():
                return self._zip.open(entry.info)
        raise ContainerError(f"no entry named {name!r}", where=self._where)

    def report(self) -> ContainerReport:
        """Hash every entry and check that the documents match the message's references."""
        where = self._where
        message = self.checked.read()
        references = list(message.dateinamen())
        referenced = set(references)
        report = ContainerReport(path=where, checked=self.checked, message_entry=self._message.name)
        total = 0
        names = {e.name for e in self._entries}
        for entry in self._entries:
            if entry.info.is_dir():
                continue
            digest, size = _hash_entry(self._zip, entry, self.limits, where)
            total += size
            if total > self.limits.max_total_bytes:
                raise ContainerLimitExceeded(
                    f"the container unpacks to more than {self.limits.max_total_bytes} bytes",
                    where=where,
                )
            if entry is self._message:
                role = "message"
            elif entry.name in referenced:
                role = "primaerdokument"
            else:
                role = "unreferenced"
                report.findings.append(
                    Finding(
                        severity=Severity.WARNING,
                        message=f"{entry.name} is in the container but no Dateiname references it",
                        path=entry.name,
                        source="container",
                    )
                )
            report.entries.append(
                ContainerEntry(
                    name=entry.name,
                    size=size,
                    compressed_size=entry.info.compress_size,
                    sha256=digest,
                    role=role,
                )
            )
        lowered = {n.lower(): n for n in names}
        for name in sorted(referenced - names):
            near = lowered.get(name.lower())
            hint = f" (an entry differs only in case: {near})" if near else ""
            report.findings.append(
                Finding(
                    message=(
                        f"referenced Primaerdokument {name} is missing from the container{hint}"
                    ),
                    path=name,
                    source="container",
                )
            )
        for name in sorted({n for n in references if references.count(n) > 1}):
            report.findings.append(
                Finding(
                    severity=Severity.WARNING,
                    message=f"Dateiname {name} is referenced {references.count(name)} times",
                    path=name,
                    source="container",
                )
            )
        return report


def read_container(
    path: Path | IO[bytes],
    *,
    limits: ContainerLimits | None = None,
    loader: SchemaLoader | None = None,
    where: str | None = None,
) -> ContainerReport:
    """Open, check, hash and validate a container (a file or a seekable stream) in one go.

    Raises:
        UnusableInput: (subclasses) the container or its message cannot be evaluated.
    """
    with Container(path, limits=limits, loader=loader, where=where) as container:
        return container.report()


def _preflight(archive: zipfile.ZipFile, limits: ContainerLimits, where: str) -> list[_Entry]:
    """Structural checks on the central directory, before any content is read."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ContainerLimitExceeded(
            f"{len(infos)} entries exceed the limit of {limits.max_entries}", where=where
        )
    declared_total = 0
    seen: dict[str, str] = {}
    entries: list[_Entry] = []
    for info in infos:
        raw = None if info.flag_bits & _UTF8_FLAG else info.orig_filename.encode("cp437")
        name = _safe_name(info.orig_filename, where)
        if info.flag_bits & _ENCRYPTED_FLAG:
            raise UnsafeContainer(
                f"entry {name} is encrypted; xdomea containers must not be encrypted "
                "(use transport encryption instead)",
                where=where,
            )
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):
            raise UnsafeContainer(f"entry {name} is a symbolic link", where=where)
        folded = name.casefold()
        if folded in seen:
            raise UnsafeContainer(
                f"duplicate entry name {name} (also {seen[folded]}); each file may appear once",
                where=where,
            )
        seen[folded] = name
        if info.file_size > limits.max_entry_bytes:
            raise ContainerLimitExceeded(
                f"entry {name} declares {info.file_size} bytes, over the limit of "
                f"{limits.max_entry_bytes}",
                where=where,
            )
        _check_ratio(name, info.file_size, info.compress_size, limits, where)
        declared_total += info.file_size
        if declared_total > limits.max_total_bytes:
            raise ContainerLimitExceeded(
                f"the container declares more than {limits.max_total_bytes} bytes in total",
                where=where,
            )
        entries.append(_Entry(info=info, name=name, raw_name=raw))
    return entries


def _check_ratio(
    name: str, size: int, compressed: int, limits: ContainerLimits, where: str
) -> None:
    if size < limits.ratio_floor_bytes:
        return
    if size > limits.max_ratio * max(compressed, 1):
        raise ContainerLimitExceeded(
            f"entry {name} expands {size / max(compressed, 1):.0f}-fold, over the limit of "
            f"{limits.max_ratio:.0f}; refusing a possible ZIP bomb",
            where=where,
        )


def _safe_name(raw: str, where: str) -> str:
    """Normalise an entry name; refuse absolute paths, traversal and control characters."""
    if "\x00" in raw or any(ord(c) < 32 for c in raw):
        raise UnsafeContainer(f"entry name {raw!r} contains control characters", where=where)
    # Windows tools write backslashes; they are separators, not part of a name.
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeContainer(f"entry {raw!r} has an absolute path", where=where)
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeContainer(f"entry {raw!r} points outside the container (..)", where=where)
    if not parts:
        raise UnsafeContainer(f"entry {raw!r} has an empty name", where=where)
    return "/".join(parts) + ("/" if name.endswith("/") else "")


def _find_message_entry(entries: list[_Entry], where: str) -> _Entry:
    candidates = [
        e
        for e in entries
        if "/" not in e.name and (parsed := naming.parse_name(e.name)) and parsed.extension == "xml"
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ContainerError(
            "no xdomea message in the container: expected an entry named like "
            "<ProzessID>_Abgabe.Abgabe.0401.xml or <ProzessID>_0401_1.xml at the top level",
            where=where,
        )
    raise ContainerError(
        "more than one xdomea message in the container: " + ", ".join(e.name for e in candidates),
        where=where,
    )


def _decode_names(entries: list[_Entry], referenced: set[str], where: str) -> list[_Entry]:
    """Pick, for names without the UTF-8 flag, the code page that matches the message."""
    decoded: list[_Entry] = []
    seen: set[str] = set()
    for entry in entries:
        name = entry.name
        if entry.raw_name is not None and not entry.raw_name.isascii():
            candidates = []
            for codec in ("utf-8", "cp850", "cp437"):
                try:
                    candidates.append(_safe_name(entry.raw_name.decode(codec), where))
                except UnicodeDecodeError:
                    continue
            matching = [c for c in candidates if c in referenced]
            name = matching[0] if matching else candidates[0]
        if name.casefold() in seen:
            raise UnsafeContainer(f"duplicate entry name {name}", where=where)
        seen.add(name.casefold())
        decoded.append(_Entry(info=entry.info, name=name, raw_name=entry.raw_name))
    return decoded


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
    if info.file_size > limit:
        raise ContainerLimitExceeded(
            f"message {info.filename} is {info.file_size} bytes, over the limit of {limit}",
            where=where,
        )
    try:
        with archive.open(info) as stream:
            data = stream.read(limit + 1)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
        raise ContainerError(f"entry {info.filename} cannot be read ({exc})", where=where) from exc
    if len(data) > limit:
        raise ContainerLimitExceeded(f"message {info.filename} exceeds {limit} bytes", where=where)
    return data


def _hash_entry(
    archive: zipfile.ZipFile, entry: _Entry, limits: ContainerLimits, where: str
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with archive.open(entry.info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > entry.info.file_size or size > limits.max_entry_bytes:
                    raise ContainerLimitExceeded(
                        f"entry {entry.name} produces more bytes than it declares", where=where
                    )
                _check_ratio(entry.name, size, entry.info.compress_size, limits, where)
                digest.update(chunk)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
        raise ContainerError(
            f"entry {entry.name} is corrupt or uses an unsupported compression ({exc})",
            where=where,
        ) from exc
    return digest.hexdigest(), size


# --------------------------------------------------------------------------- writing


class ContainerWriter:
    """Writes a container to a temporary file and moves it into place only when complete.

    The message is added first; every document it references must then be added
    exactly once. ``close()`` checks completeness, fsyncs and renames atomically;
    on any error the temporary file is removed and the target is untouched.
    """

    def __init__(
        self,
        directory: Path,
        message_xml: bytes,
        *,
        style: naming.NamingStyle = naming.NamingStyle.LONG,
        file_name: str | None = None,
        loader: SchemaLoader | None = None,
    ) -> None:
        self.checked = check_message(message_xml, loader=loader, where="message")
        if not self.checked.valid:
            first = next(f for f in self.checked.findings if f.severity is Severity.ERROR)
            raise IncompleteContainer(
                f"refusing to write an invalid message: line {first.line}: {first.message}"
            )
        message = self.checked.read()
        self.directory = Path(directory)
        self.file_name = file_name or naming.container_name(
            message.kopf.prozess_id, message.typ, style
        )
        self._referenced = set(message.dateinamen())
        self._added: dict[str, ContainerEntry] = {}
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=self.directory)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "w+b")
        self._zip = zipfile.ZipFile(self._file, "w", allowZip64=True)
        self._closed = False
        entry_name = naming.message_name(message.kopf.prozess_id, message.typ, style)
        self._write(entry_name, iter([message_xml]), "message", compress=True)

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add_document(self, name: str, source: Path | IO[bytes]) -> ContainerEntry:
        """Stream one primary document into the container.

        Raises:
            IncompleteContainer: the message does not reference ``name`` or it was added.
        """
        if name not in self._referenced:
            raise IncompleteContainer(f"{name} is not referenced by the message")
        if name in self._added:
            raise IncompleteContainer(f"{name} was already added")
        _safe_name(name, where=self.file_name)
        compress = PurePosixPath(name).suffix.lower() not in _COMPRESSED_SUFFIXES
        if isinstance(source, Path):
            with source.open("rb") as stream:
                return self._write(name, _chunks(stream), "primaerdokument", compress=compress)
        return self._write(name, _chunks(source), "primaerdokument", compress=compress)

    def add_unreferenced(self, name: str, source: Path | IO[bytes]) -> ContainerEntry:
        """Stream a file the message names otherwise than by ``Primaerdokument/Dateiname``.

        An FVDaten 0630 answering a 0631 names the exported documents as its
        ``Ablageort``; readers list such entries as ``unreferenced`` (a warning).

        Raises:
            IncompleteContainer: the message references ``name`` (add it with
                ``add_document``) or it was added.
        """
        if name in self._referenced or name in self._added:
            raise IncompleteContainer(f"{name} is referenced by the message or was already added")
        _safe_name(name, where=self.file_name)
        compress = PurePosixPath(name).suffix.lower() not in _COMPRESSED_SUFFIXES
        if isinstance(source, Path):
            with source.open("rb") as stream:
                return self._write(name, _chunks(stream), "unreferenced", compress=compress)
        return self._write(name, _chunks(source), "unreferenced", compress=compress)

    def _write(
        self, name: str, chunks: Iterator[bytes], role: str, *, compress: bool
    ) -> ContainerEntry:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        digest = hashlib.sha256()
        size = 0
        with self._zip.open(info, "w", force_zip64=True) as target:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
        entry = ContainerEntry(
            name=name,
            size=size,
            compressed_size=info.compress_size,
            sha256=digest.hexdigest(),
            role=role,
        )
        self._added[name] = entry
        return entry

    @property
    def entries(self) -> list[ContainerEntry]:
        """Entries written so far, with their checksums."""
        return list(self._added.values())

    def close(self) -> Path:
        """Finish the container: check completeness, fsync, rename into place.

        Raises:
            IncompleteContainer: a referenced document was not added (nothing is written).
        """
        if self._closed:
            return self.directory / self.file_name
        missing = sorted(self._referenced - set(self._added))
        if missing:
            self.abort()
            raise IncompleteContainer(
                "referenced documents were not added: " + ", ".join(missing),
                where=self.file_name,
            )
        try:
            self._zip.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target = self.directory / self.file_name
            os.replace(self._tmp, target)
            fsync_dir(self.directory)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return target

    def abort(self) -> None:
        """Discard the unfinished container."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, ValueError, zipfile.BadZipFile):
            self._zip.close()
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def write_container(
    directory: Path,
    message_xml: bytes,
    documents: Mapping[str, Path | IO[bytes] | bytes],
    *,
    style: naming.NamingStyle = naming.NamingStyle.LONG,
    file_name: str | None = None,
    loader: SchemaLoader | None = None,
) -> tuple[Path, list[ContainerEntry]]:
    """Write a complete container in one call.

    Returns:
        The container path and its entries with SHA-256.
    """
    with ContainerWriter(
        directory, message_xml, style=style, file_name=file_name, loader=loader
    ) as writer:
        for name, source in documents.items():
            writer.add_document(name, io.BytesIO(source) if isinstance(source, bytes) else source)
        entries = writer.entries
    return directory / writer.file_name, entries


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk
