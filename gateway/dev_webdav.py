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
import ssl
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
    certificate: Path | None = None,
    private_key: Path | None = None,
    client_ca: Path | None = None,
) -> Iterator[WebDavServer]:
    """Serve ``root`` over WebDAV on 127.0.0.1 while the block runs.

    Args:
        root: the folder to share (must exist).
        username: the one user Basic authentication accepts.
        password: that user's password.
        mount: the collection's path on the server; not ``/`` by default, because
            real shares rarely are the server's root.
        port: TCP port; 0 picks a free one.
        certificate: serve HTTPS with this certificate (PEM, with ``private_key``).
        private_key: the certificate's key.
        client_ca: require a client certificate that chains to this CA (HTTPS only).

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
    if certificate is not None:
        server.ssl_adapter = _ssl_adapter(certificate, private_key, client_ca)
    server.prepare()
    bound: Any = server.bind_addr
    actual_port = int(bound[1])
    thread = threading.Thread(target=server.serve, name="webdav-server", daemon=True)
    thread.start()
    try:
        scheme = "https" if certificate is not None else "http"
        yield WebDavServer(
            url=f"{scheme}://{HOST}:{actual_port}{quote(mount)}/",
            port=actual_port,
            mount=mount,
            username=username,
            password=password,
            root=root,
        )
    finally:
        server.stop()
        thread.join(timeout=10)


def _ssl_adapter(certificate: Path, private_key: Path | None, client_ca: Path | None) -> Any:
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    if private_key is None:
        raise ValueError("an HTTPS WebDAV server needs the certificate's private key too")
    adapter = BuiltinSSLAdapter(str(certificate), str(private_key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, private_key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    adapter.context = context
    return adapter


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
