"""Open the transfer folder a configuration names: local or WebDAV (``contracts.transfer``)."""

from __future__ import annotations

from adapters.transfer.local import LocalTransferFolder
from adapters.transfer.webdav import WebDavTransferFolder
from contracts.transfer import FolderConfig, LocalFolderConfig, TransferFolder


def open_folder(config: FolderConfig) -> TransferFolder:
    """The ``TransferFolder`` for ``config``; close it with ``await folder.close()``.

    Nothing is contacted yet: a WebDAV folder connects on its first operation.

    Raises:
        ConfigError: a WebDAV URL or TLS file that cannot be used.
    """
    if isinstance(config, LocalFolderConfig):
        return LocalTransferFolder(config)
    return WebDavTransferFolder(config)
