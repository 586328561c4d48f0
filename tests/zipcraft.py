"""Hand-made ZIP files for tests: the odd and hostile shapes real-world input takes."""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SAMPLE_0503 = "xdomea-3.0.0/xx_Aussonderung.Aussonderung.0503.xml"
SAMPLE_DATEINAME = "e8b289cb-f8dd-492a-b3cf-560674eaa92b_PDF-A1b_CMYK_20150731.pdf"
SAMPLE_PROZESS_ID = "242f44e8-bebf-4503-a086-db252c6a4277"
MESSAGE_NAME = f"{SAMPLE_PROZESS_ID}_Aussonderung.Aussonderung.0503.xml"


class RawNameInfo(zipfile.ZipInfo):
    """A ZipInfo whose name is written as given bytes, without the UTF-8 flag (like Windows tools)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw.decode("cp437"), date_time=(2024, 1, 1, 0, 0, 0))
        self._raw = raw

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self._raw, self.flag_bits & ~0x800


@dataclass(frozen=True)
class Entry:
    """One entry to write: a name (str, or bytes for a raw non-UTF-8 name) and content."""

    name: str | bytes
    data: bytes = b""
    symlink: bool = False
    encrypted: bool = False
    compress: bool = True


def write_zip(path: Path, entries: Iterable[Entry]) -> Path:
    """Write entries exactly as given, duplicates and all."""
    entries_list = list(entries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names; that is the point
        with zipfile.ZipFile(path, "w") as archive:
            for entry in entries_list:
                info = (
                    RawNameInfo(entry.name)
                    if isinstance(entry.name, bytes)
                    else zipfile.ZipInfo(entry.name, date_time=(2024, 1, 1, 0, 0, 0))
                )
                info.compress_type = zipfile.ZIP_DEFLATED if entry.compress else zipfile.ZIP_STORED
                if entry.symlink:
                    info.create_system = 3
                    info.external_attr = 0o120777 << 16
                archive.writestr(info, entry.data)
    for entry in entries_list:
        if entry.encrypted:
            _set_encrypted_flag(path, entry.name)
    return path


def _set_encrypted_flag(path: Path, name: str | bytes) -> None:
    """Set the 'encrypted' bit in the local and central headers (zipfile resets it on write)."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8")
    data = bytearray(path.read_bytes())
    # (signature, offset of the flags, offset of the name length, offset of the name)
    headers = ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46))
    for signature, flag_offset, length_offset, name_offset in headers:
        start = 0
        while (start := data.find(signature, start)) != -1:
            length = int.from_bytes(
                data[start + length_offset : start + length_offset + 2], "little"
            )
            if bytes(data[start + name_offset : start + name_offset + length]) == raw:
                data[start + flag_offset] |= 0x1
            start += 4
    path.write_bytes(bytes(data))
