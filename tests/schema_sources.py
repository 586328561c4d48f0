"""Schema sources built at test time from ../shared/xdomea, in the layouts real sources use."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.conftest import SHARED_XDOMEA, VERSIONS


def shared_files(versions: Iterable[str] = VERSIONS) -> dict[str, bytes]:
    """The XSDs of ``versions`` plus the XÖV files, keyed ``<version>/<file>`` / ``xoev/<file>``."""
    files: dict[str, bytes] = {}
    for folder in [*versions, "xoev"]:
        for path in sorted((SHARED_XDOMEA / folder).glob("*.xsd")):
            files[f"{folder}/{path.name}"] = path.read_bytes()
    return files


def nested(files: Mapping[str, bytes], top: str = "xdomea-schemas/XSD") -> dict[str, bytes]:
    """The same files one or more folders deeper, as in a downloaded release archive."""
    return {f"{top}/{rel}": data for rel, data in files.items()}


def flat(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The same files without folders (only for one version: names repeat across versions)."""
    result = {rel.rsplit("/", 1)[1]: data for rel, data in files.items()}
    assert len(result) == len(files), "flat layout needs unique file names"
    return result


def tampered(files: Mapping[str, bytes], rel: str) -> dict[str, bytes]:
    """A copy of ``files`` in which one byte of ``rel`` differs."""
    data = bytearray(files[rel])
    data[len(data) // 2] ^= 0x01
    return {**files, rel: bytes(data)}


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """A ZIP archive holding ``files`` under their names."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_zip(path: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` as a ZIP archive to ``path``."""
    path.write_bytes(zip_bytes(files))
    return path
