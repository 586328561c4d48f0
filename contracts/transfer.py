"""Transfer directories: a folder two systems exchange xdomea files through.

Archives' receiving systems (x-man and others) and many DMS importers exchange
files through a directory: a local or mounted folder, or a WebDAV share. Each
direction usually has its own sub-folder (``to_archive``, ``from_archive``…).
``TransferFolder`` is the one interface the gateway uses for both kinds; the
implementations live in ``adapters/transfer/``.

Rules every implementation keeps:

* Writing is atomic: content goes to a hidden temporary name first and is moved to
  its final name only when complete, so the other side never reads half a file.
* Writing never replaces a different file: the final name holding the same bytes
  is a redelivery (fine); holding other bytes, the other side has not taken it yet
  (``TransientDeliveryError``).
* Listing shows final names only (no hidden or temporary names); whether a file
  the *other* side writes is complete is decided by the caller from two listings
  (size and modification time unchanged), since the other side may not write
  atomically.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class FolderEntry(BaseModel):
    """One file in a transfer folder as a listing shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    size: int
    modified: datetime | None = None
    #: WebDAV ETag (changes with the content); ``None`` for local folders.
    etag: str | None = None


class TransferFolder(Protocol):
    """A transfer directory with sub-folders, local or remote.

    ``folder`` arguments are paths relative to the configured root, ``""`` for the
    root itself, always with ``/`` as separator; names are plain file names.
    """

    async def list(self, folder: str) -> list[FolderEntry]:
        """The files (not sub-folders, not temporary names) in ``folder``.

        Raises:
            TransientDeliveryError: the folder cannot be reached or read.
        """
        ...

    async def download(self, folder: str, name: str, target: Path) -> str:
        """Stream one file into ``target`` (created, fsync'd); its SHA-256 (hex).

        Raises:
            FileNotFoundError: the file is gone (taken away meanwhile).
            TransientDeliveryError: the folder cannot be reached or read.
        """
        ...

    async def upload(self, folder: str, name: str, source: Path, sha256: str) -> None:
        """Publish ``source`` as ``folder/name`` atomically; ``sha256`` is its content's.

        Raises:
            TransientDeliveryError: unreachable, unwritable, or a different file of
                that name is still there.
        """
        ...

    async def remove(self, folder: str, name: str) -> None:
        """Delete ``folder/name``; a file already gone is fine.

        Raises:
            TransientDeliveryError: the folder cannot be reached or written.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class LocalFolderConfig(BaseModel):
    """A transfer directory on a local disk or a mounted share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["local"]
    path: Path


class WebDavFolderConfig(BaseModel):
    """A transfer directory on a WebDAV server (the root may be any collection, not only ``/``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["webdav"]
    #: Collection URL of the root, e.g. ``https://archiv.example/dav/kommune-a/``.
    url: str
    username: str | None = None
    #: Environment variable holding the password (never the password itself).
    password_env: str | None = None
    #: PEM bundle of the CA(s) the server's certificate must chain to; default: the system's.
    ca_file: Path | None = None
    client_certificate: Path | None = None
    client_key: Path | None = None
    timeout_seconds: float = 60.0


FolderConfig = Annotated[LocalFolderConfig | WebDavFolderConfig, Field(discriminator="type")]
