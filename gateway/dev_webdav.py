"""A WebDAV server on loopback for tests, the demo and ``ikz-gateway dev webdav-server``.

It shares one local folder as a collection below a mount path other than ``/``
(``http://127.0.0.1:<port>/dav/archiv/``, as an archive's share usually is), with
Basic authentication for one user, so the gateway's WebDAV client is exercised the
way it meets a real share. wsgidav serves the collection, cheroot (the WSGI server
wsgidav supports best) runs it in a background thread of the calling process.

Never for production: it listens on 127.0.0.1 only and keeps its single
password in memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: The server never listens beyond this machine.
HOST = "127.0.0.1"


@dataclass(frozen=True)
class WebDavServer:
    """A running server: where it is and how to log in."""

    #: The shared collection's URL, ending in ``/``.
    url: str
    port: int
    mount: str
    username: str
    password: str
    root: Path


@contextmanager
def webdav_server(
    root: Path,
    *,
    username: str = "gateway",
    password: str = "geheim",
    mount: str = "/dav/archiv",
    port: int = 0,
) -> Iterator[WebDavServer]:
    """Serve ``root`` over WebDAV on 127.0.0.1 while the block runs.

    Args:
        root: the folder to share (must exist).
        username: the one user Basic authentication accepts.
        password: that user's password.
        mount: the collection's path on the server; not ``/`` by default, because
            real shares rarely are the server's root.
        port: TCP port; 0 picks a free one.

    Raises:
        ValueError: ``root`` is not a folder or ``mount`` does not start with ``/``.
        OSError: the port cannot be bound.
    """
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; create it first")
    if not mount.startswith("/"):
        raise ValueError(f"mount path {mount!r} must start with '/'")
    mount = "/" + mount.strip("/")
    # wsgidav logs through the stdlib; keep its request chatter out of the gateway's logs.
    logging.getLogger("wsgidav").setLevel(logging.WARNING)
    app = WsgiDAVApp(_config(root, mount, username, password))
    server = wsgi.Server((HOST, port), app, numthreads=8)
    server.prepare()
    bound: Any = server.bind_addr
    actual_port = int(bound[1])
    thread = threading.Thread(target=server.serve, name="webdav-server", daemon=True)
    thread.start()
    try:
        yield WebDavServer(
            url=f"http://{HOST}:{actual_port}{quote(mount)}/",
            port=actual_port,
            mount=mount,
            username=username,
            password=password,
            root=root,
        )
    finally:
        server.stop()
        thread.join(timeout=10)


def _config(root: Path, mount: str, username: str, password: str) -> dict[str, Any]:
    return {
        "provider_mapping": {mount: str(root)},
        "simple_dc": {"user_mapping": {"*": {username: {"password": password}}}},
        "http_authenticator": {
            "domain_controller": None,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "verbose": 1,
        "logging": {"enable": False},
        "dir_browser": {"enable": False},
        "lock_storage": True,
        "property_manager": True,
        "suppress_version_info": True,
    }
