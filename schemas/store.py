"""Where installed xdomea schemas live, and how they get there.

A schema root is laid out as ``<version>/<file>.xsd`` plus ``xoev/<file>.xsd``
(the XÖV files the xdomea schemas import as ``../xoev/…``). The root is
``$IKZ_SCHEMA_DIR`` when set (used as is, never written to), otherwise the user
cache ``$IKZ_CACHE_DIR/schemas`` (default ``~/.cache/ikz-gateway/schemas``),
which ``import_source`` fills from a directory or ZIP.

Files are matched by their pinned SHA-256, not by their path, so a source may use
any layout (the official XRepository ZIPs, a checkout, a flat folder). A version
is installed only when every one of its files matched; nothing is ever installed
half.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gateway.errors import (
    SchemaError,
    SchemaIntegrityError,
    SchemaNotInstalled,
    SchemaSourceError,
)
from schemas import catalog

#: A schema source ZIP larger than this is refused; the official ones are < 5 MiB.
MAX_SOURCE_BYTES = 64 * 1024 * 1024
MAX_SOURCE_ENTRIES = 5000


def default_root() -> Path:
    """The schema root in effect: ``$IKZ_SCHEMA_DIR`` or the user cache."""
    explicit = os.environ.get("IKZ_SCHEMA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return cache_dir() / "schemas"


def cache_dir() -> Path:
    """The gateway's user cache directory."""
    explicit = os.environ.get("IKZ_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ikz-gateway"


@dataclass(frozen=True)
class VersionStatus:
    """Installation state of one version under one root."""

    version: str
    root: Path
    installed: bool
    verified: bool
    problems: tuple[str, ...] = ()


@dataclass
class ImportReport:
    """What ``import_source`` did."""

    source: str
    installed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SchemaStore:
    """Installed schema files under one root, checked against the catalog's pins."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_root()

    @property
    def writable(self) -> bool:
        """Whether imports may write here (never into an explicit ``IKZ_SCHEMA_DIR``)."""
        explicit = os.environ.get("IKZ_SCHEMA_DIR")
        # Compare resolved paths: "../shared/xdomea" and its absolute form are one folder.
        return not (explicit and Path(explicit).expanduser().resolve() == self.root.resolve())

    def status(self, version: str) -> VersionStatus:
        """Check presence and hashes of ``version``'s files."""
        entry = catalog.get(version)
        problems: list[str] = []
        present = 0
        own_present = 0
        for rel, pinned in sorted(entry.files.items()):
            path = self.root / rel
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                problems.append(f"{rel}: missing")
                continue
            except OSError as exc:
                problems.append(f"{rel}: unreadable ({exc.strerror})")
                continue
            present += 1
            if _is_own(version, rel):
                own_present += 1
            if _sha256(data) != pinned:
                problems.append(f"{rel}: SHA-256 differs from the pinned value")
        return VersionStatus(
            version=version,
            root=self.root,
            # Shared XÖV files come with any version; they do not make this one installed.
            installed=own_present > 0,
            verified=present == len(entry.files) and not problems,
            problems=tuple(problems),
        )

    def installed_versions(self) -> list[str]:
        """Versions whose files are all present and verified."""
        return [v for v in catalog.versions() if self.status(v).verified]

    def load(self, version: str) -> dict[str, bytes]:
        """Read every file of ``version``, verified against the pins.

        Returns:
            File contents keyed by path relative to the root.

        Raises:
            SchemaNotInstalled: no file of the version itself is present (shared XÖV
                files do not count).
            SchemaIntegrityError: a file is missing or differs from its pin.
        """
        entry = catalog.get(version)
        contents: dict[str, bytes] = {}
        missing: list[str] = []
        for rel, pinned in sorted(entry.files.items()):
            try:
                data = (self.root / rel).read_bytes()
            except FileNotFoundError:
                missing.append(rel)
                continue
            except OSError as exc:
                raise SchemaIntegrityError(
                    f"cannot read {rel} ({exc.strerror or exc}); fix the file's permissions or "
                    "re-install the schemas",
                    where=str(self.root / rel),
                ) from exc
            if _sha256(data) != pinned:
                raise SchemaIntegrityError(
                    f"SHA-256 of {rel} is {_sha256(data)}, pinned {pinned}; the file was "
                    "changed or is from another release. Re-install the schemas with "
                    "'ikz-gateway schemas import DIR|ZIP' or 'ikz-gateway schemas fetch "
                    f"{version}'",
                    where=str(self.root / rel),
                )
            contents[rel] = data
        if all(rel in missing for rel in entry.files if _is_own(version, rel)):
            raise SchemaNotInstalled(
                f"xdomea {version} schemas are not installed in {self.root}. Install them "
                "with 'ikz-gateway schemas import DIR|ZIP' or 'ikz-gateway schemas fetch "
                f"{version}', or point IKZ_SCHEMA_DIR at a folder holding them"
            )
        if missing:
            raise SchemaIntegrityError(
                f"xdomea {version} is installed incompletely in {self.root}: missing "
                + ", ".join(missing)
                + ". Re-install with 'ikz-gateway schemas import' or 'schemas fetch'"
            )
        return contents

    def import_source(self, source: Path) -> ImportReport:
        """Install every complete, hash-verified version found in a directory or ZIP.

        Raises:
            SchemaSourceError: the source is unreadable, holds no complete version, or
                the store is an explicit ``IKZ_SCHEMA_DIR`` (read-only by design).
        """
        if not self.writable:
            raise SchemaSourceError(
                f"IKZ_SCHEMA_DIR={self.root} is used as is and never written to; unset it "
                "to import into the user cache, or copy the schemas there yourself"
            )
        by_hash = _index_source(source)
        report = ImportReport(source=str(source))
        for version, entry in catalog.versions().items():
            found = {rel: by_hash.get(pinned) for rel, pinned in entry.files.items()}
            missing = sorted(rel for rel, data in found.items() if data is None)
            if missing:
                report.skipped[version] = _skip_reason(version, missing)
                continue
            try:
                self._install(
                    version, {rel: data for rel, data in found.items() if data is not None}
                )
            except OSError as exc:
                raise SchemaError(
                    f"cannot write xdomea {version} into {self.root} "
                    f"({exc.strerror or exc}); check the folder's permissions and free space",
                    where=exc.filename,
                ) from exc
            report.installed.append(version)
        if not report.installed:
            details = "; ".join(f"{v}: {why}" for v, why in report.skipped.items())
            raise SchemaSourceError(
                f"no complete xdomea version with the pinned SHA-256 values in {source} ({details})"
            )
        return report

    def _install(self, version: str, files: dict[str, bytes]) -> None:
        """Write one version's files so that readers never see a half-installed version."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{version}-", dir=self.root))
        try:
            for rel, data in files.items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            # Shared XÖV files are identical for every version (same pins), so
            # replacing them file by file is safe for readers of other versions.
            for rel in files:
                if rel.startswith("xoev/"):
                    (self.root / "xoev").mkdir(exist_ok=True)
                    os.replace(staging / rel, self.root / rel)
            final = self.root / version
            old = self.root / f".old-{version}"
            if final.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
            try:
                os.replace(staging / version, final)
            except OSError:
                # Put the previous installation back rather than leave none.
                if old.exists() and not final.exists():
                    os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _is_own(version: str, rel: str) -> bool:
    """Whether ``rel`` belongs to ``version`` alone rather than to the shared XÖV files."""
    return rel.startswith(f"{version}/")


def _skip_reason(version: str, missing: list[str]) -> str:
    """Why a version was not installed, without listing every file of an absent version."""
    if all(rel in missing for rel in catalog.get(version).files if _is_own(version, rel)):
        # Only shared XÖV files (if any) matched: the source simply lacks this version.
        return "not in the source"
    return "missing or different: " + ", ".join(missing)


def _index_source(source: Path) -> dict[str, bytes]:
    """SHA-256 → content of every ``.xsd`` file in a directory or ZIP."""
    try:
        if source.is_dir():
            return {_sha256(data): data for data in _iter_dir(source)}
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise SchemaSourceError(f"{source} is neither a directory nor a ZIP file")
            return {_sha256(data): data for data in _iter_zip(source)}
    except OSError as exc:
        raise SchemaSourceError(
            f"cannot read {exc.filename or source} ({exc.strerror or exc})"
        ) from exc
    raise SchemaSourceError(f"{source} does not exist")


def _iter_dir(source: Path) -> Iterator[bytes]:
    for path in sorted(source.rglob("*.xsd")):
        if path.is_file() and not path.is_symlink():
            yield path.read_bytes()


def _iter_zip(source: Path) -> Iterator[bytes]:
    try:
        with zipfile.ZipFile(source) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_SOURCE_ENTRIES:
                raise SchemaSourceError(f"{source} has {len(infos)} entries; refusing a bomb")
            total = 0
            for info in infos:
                if info.is_dir() or not PurePosixPath(info.filename).name.endswith(".xsd"):
                    continue
                total += info.file_size
                if total > MAX_SOURCE_BYTES:
                    raise SchemaSourceError(f"{source} unpacks to more than 64 MiB of XSD")
                with archive.open(info) as member:
                    data = member.read(MAX_SOURCE_BYTES + 1)
                if len(data) != info.file_size:
                    raise SchemaSourceError(f"{source}: entry {info.filename} is inconsistent")
                yield data
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        raise SchemaSourceError(f"{source} is not a readable ZIP file ({exc})") from exc
