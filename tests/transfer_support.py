"""Shared pieces of the transfer-folder tests: a WebDAV server and folders of both kinds.

The WebDAV server is the real wsgidav app (``gateway.dev_webdav``) on loopback,
mounted below ``/dav/archiv`` with Basic authentication; each test gets its own
collection below that, so the folder's root is never the server's ``/``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from adapters.transfer.folders import open_folder
from contracts.transfer import LocalFolderConfig, TransferFolder, WebDavFolderConfig
from gateway.dev_webdav import WebDavServer, webdav_server

#: The environment variable the tests' WebDAV configurations name for the password.
PASSWORD_ENV = "IKZ_TEST_WEBDAV_PASSWORD"
KINDS = ("local", "webdav")

_cases = itertools.count()


@pytest.fixture(scope="module")
def dav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDavServer]:
    """One WebDAV server per test module, its password in ``PASSWORD_ENV`` meanwhile."""
    with (
        pytest.MonkeyPatch.context() as patch,
        webdav_server(tmp_path_factory.mktemp("dav")) as server,
    ):
        patch.setenv(PASSWORD_ENV, server.password)
        yield server


def webdav_config(server: WebDavServer, collection: str, **changes: object) -> WebDavFolderConfig:
    """A WebDAV folder configuration for ``collection`` below the server's share."""
    values: dict[str, object] = {
        "type": "webdav",
        "url": server.url + quote(collection) + "/",
        "username": server.username,
        "password_env": PASSWORD_ENV,
        "timeout_seconds": 10.0,
    }
    values.update(changes)
    return WebDavFolderConfig.model_validate(values)


@dataclass
class Share:
    """A transfer folder and the local directory that holds its files."""

    kind: str
    folder: TransferFolder
    #: Where the folder's files are on this machine (the WebDAV server's disk, for WebDAV).
    root: Path


@asynccontextmanager
async def share(
    kind: str, tmp_path: Path, server: WebDavServer | None, subfolders: tuple[str, ...] = ()
) -> AsyncIterator[Share]:
    """A fresh, empty transfer folder of ``kind`` with ``subfolders`` created, closed afterwards."""
    if kind == "local":
        root = tmp_path / "share"
        config: LocalFolderConfig | WebDavFolderConfig = LocalFolderConfig(type="local", path=root)
    else:
        assert server is not None
        collection = f"case-{next(_cases)}"
        root = server.root / collection
        config = webdav_config(server, collection)
    root.mkdir(parents=True)
    for sub in subfolders:
        (root / sub).mkdir(parents=True)
    folder = open_folder(config)
    try:
        yield Share(kind=kind, folder=folder, root=root)
    finally:
        await folder.close()
