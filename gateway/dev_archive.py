"""An archive on loopback in one call: WebDAV share + x-man-like simulator (tests, demo).

``webdav_archive`` creates the share's two sub-folders, serves it over WebDAV
(``gateway.dev_webdav``), runs the archive simulator (``adapters.archive.sim``)
on it through the same WebDAV client the gateway uses, and yields the folder
configuration the agency's gateway should use (``[archives.NAME.folder]``).
The password is put into the environment variable the configuration names, so
gateways started from this process (or given its environment) can log in.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from adapters.archive.sim import ArchiveSimConfig, ArchiveSimulator
from adapters.transfer.webdav import WebDavTransferFolder
from contracts.transfer import WebDavFolderConfig
from gateway.dev_webdav import WebDavServer, webdav_server


@dataclass(frozen=True)
class WebDavArchive:
    """A running archive: its share, how to reach it, and the simulator's record."""

    server: WebDavServer
    #: The transfer folder as the agency's gateway configures it.
    folder: WebDavFolderConfig
    simulator: ArchiveSimulator


@asynccontextmanager
async def webdav_archive(
    share: Path,
    store: Path,
    config: ArchiveSimConfig | None = None,
    *,
    password_env: str = "IKZ_ARCHIVE_WEBDAV_PASSWORD",
    mount: str = "/dav/archiv",
) -> AsyncIterator[WebDavArchive]:
    """Serve ``share`` over WebDAV with the archive simulator answering in it.

    Args:
        share: the share's folder on disk (created with the two sub-folders).
        store: the simulator's store (archived documents by SHA-256).
        config: the archive's behaviour; defaults value everything A.
        password_env: environment variable set to the share's password (a fresh
            random one) for the duration of the block.
        mount: the collection's path on the server.
    """
    config = config or ArchiveSimConfig()
    for sub in (config.to_archive, config.from_archive):
        (share / sub).mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    previous = os.environ.get(password_env)
    os.environ[password_env] = password
    try:
        with webdav_server(share, password=password, mount=mount) as server:
            folder_config = WebDavFolderConfig(
                type="webdav", url=server.url, username=server.username, password_env=password_env
            )
            folder = WebDavTransferFolder(folder_config)
            simulator = ArchiveSimulator(folder, config, store)
            try:
                async with simulator.running():
                    yield WebDavArchive(server=server, folder=folder_config, simulator=simulator)
            finally:
                await folder.close()
    finally:
        if previous is None:
            os.environ.pop(password_env, None)
        else:
            os.environ[password_env] = previous
