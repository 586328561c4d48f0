"""A transfer directory on a WebDAV share (``contracts.transfer``), over aiohttp.

Archives' receiving systems (x-man and others) often offer their transfer
directories as a WebDAV share instead of a mounted folder. The root is any
collection (``https://archiv.example/dav/kommune-a/``), sub-folders are
collections below it; nothing is ever created on the server, for the same reason
the local folder creates nothing: a missing collection is a misconfiguration an
operator must see, not something to paper over.

The operations map to WebDAV methods (RFC 4918):

* ``list``: ``PROPFIND`` with ``Depth: 1`` on the collection; the multistatus is
  parsed safely (no DTDs, no entities, no network); names are URL-decoded;
  collections and temporary names (``adapters.transfer.local.is_temporary``) are
  left out; each file carries ``getcontentlength``, ``getlastmodified`` and
  ``getetag``.
* ``download``: ``GET`` streamed into a new local file, hashed while written,
  fsync'd; a partial file is removed on any failure.
* ``upload``: ``PUT`` of the streamed file to a hidden ``.<name>.<random>.part`` in
  the same collection, then ``MOVE`` to the final name with ``Overwrite: F``, so
  the other side never sees half a file under a name it reads and nothing is
  replaced. ``412`` means the name is taken: the same bytes (size, then SHA-256 of
  the server's copy) are a redelivery, different bytes wait (transient).
* ``remove``: ``DELETE``; ``404`` is fine.

Errors: connection failures, timeouts, ``5xx``, ``408``/``423``/``425``/``429`` and a
missing collection → ``TransientDeliveryError``; ``401``/``403`` and an untrusted
server certificate → ``PermanentDeliveryError`` naming the URL and what to check.
The password is read from the environment variable ``password_env`` when the
first request is made and never appears in a log line or an error text.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import ssl
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp
from lxml import etree
from yarl import URL

from adapters.transfer.local import is_temporary
from adapters.xdomea import xml
from contracts.transfer import FolderEntry, WebDavFolderConfig
from gateway.durable import create_exclusive, file_sha256
from gateway.errors import (
    ConfigError,
    MalformedXml,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnsafeXml,
)
from gateway.tls import MINIMUM_VERSION

_CHUNK = 1024 * 1024
_DAV = "DAV:"
_TRANSIENT_STATUS = frozenset({408, 409, 423, 425, 429})

_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/>"
    b"</D:prop></D:propfind>"
)


def _dav(local: str) -> str:
    return f"{{{_DAV}}}{local}"


class WebDavTransferFolder:
    """``TransferFolder`` over one WebDAV collection and the collections below it."""

    def __init__(self, config: WebDavFolderConfig) -> None:
        """Check the URL and TLS files; the connection pool is opened on first use.

        Raises:
            ConfigError: the URL is not ``http(s)://`` or carries credentials, or a
                TLS file cannot be loaded.
        """
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"WebDAV url {config.url!r} must be an http:// or https:// URL of a collection, "
                "e.g. https://archiv.example/dav/kommune-a/"
            )
        if parts.username or parts.password:
            raise ConfigError(
                "the WebDAV url must not contain a user name or password; set username and "
                "password_env instead"
            )
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        #: The root collection, always ending in ``/``, as configured (already encoded).
        self.url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self._root_path = unquote(path)
        self._config = config
        self._ssl = _ssl_context(config) if parts.scheme == "https" else None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ addresses

    def _collection(self, folder: str) -> str:
        parts = [p for p in folder.split("/") if p]
        if any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
            raise ValueError(f"sub-folder {folder!r} must not contain '.', '..' or '\\'")
        return self.url + "".join(quote(p, safe="") + "/" for p in parts)

    def _resource(self, folder: str, name: str) -> str:
        if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"{name!r} is not a plain file name")
        return self._collection(folder) + quote(name, safe="")

    # ------------------------------------------------------------------ operations

    async def list(self, folder: str) -> list[FolderEntry]:
        """The complete files in ``folder`` (``PROPFIND``, ``Depth: 1``), by name."""
        url = self._collection(folder)
        headers = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
        propfind = self._request("PROPFIND", url, headers=headers, data=_PROPFIND_BODY)
        async with _Guard("list", url), propfind as response:
            if response.status == 404:
                raise _missing_collection(url)
            self._raise_for(response, "list", url, expected=(207,))
            body = await response.read()
        return _parse_listing(body, urlsplit(url).path, url)

    async def download(self, folder: str, name: str, target: Path) -> str:
        """Stream one file into ``target`` (created, fsync'd); its SHA-256.

        Raises:
            FileNotFoundError: the server has no such file (``404``).
            TransientDeliveryError: the server cannot be reached or failed.
            PermanentDeliveryError: credentials or certificate refused.
        """
        url = self._resource(folder, name)
        sink = await asyncio.to_thread(create_exclusive, target)
        try:
            async with _Guard("download", url), self._request("GET", url) as response:
                if response.status == 404:
                    raise FileNotFoundError(f"{url} is gone from the WebDAV server")
                self._raise_for(response, "download", url, expected=(200,))
                digest = await _stream_to(response, sink)
            await asyncio.to_thread(_finish, sink)
        except BaseException:
            sink.close()
            target.unlink(missing_ok=True)
            raise
        return digest

    async def upload(self, folder: str, name: str, source: Path, sha256: str) -> None:
        """Publish ``source`` as ``folder/name``: ``PUT`` to a hidden name, then ``MOVE``.

        Raises:
            TransientDeliveryError: the server cannot be reached, failed, the collection
                is missing, or a different file of that name is still there.
            PermanentDeliveryError: credentials or certificate refused, or ``source``
                does not have the SHA-256 ``sha256`` (the local copy is damaged).
        """
        target = self._resource(folder, name)
        temp = self._resource(folder, f".{name}.{secrets.token_hex(4)}.part")
        size, actual = await asyncio.to_thread(_size_and_hash, source)
        if actual != sha256:
            raise PermanentDeliveryError(
                f"{source} has SHA-256 {actual}, expected {sha256}: the local copy is "
                "damaged; restore it and replay the message"
            )
        moved = False
        try:
            async with _Guard("upload", temp):
                headers = {
                    "Content-Length": str(size),
                    "Content-Type": "application/octet-stream",
                }
                async with self._request(
                    "PUT", temp, headers=headers, data=_file_chunks(source)
                ) as response:
                    if response.status in (404, 409):
                        raise _missing_collection(self._collection(folder))
                    self._raise_for(response, "upload", temp, expected=(200, 201, 204))
                async with self._request(
                    "MOVE",
                    temp,
                    headers={"Destination": target, "Overwrite": "F"},
                ) as response:
                    moved = response.status in (201, 204)
                    if response.status == 412:
                        await self._require_same(target, size, sha256)
                        return
                    self._raise_for(response, "upload", target, expected=(201, 204))
        finally:
            # Remove what a failed PUT or a refused MOVE left under the temporary name;
            # never let that hide the real error.
            if not moved:
                await self._delete_quietly(temp)

    async def remove(self, folder: str, name: str) -> None:
        """Delete one file (``DELETE``); a file already gone is fine."""
        url = self._resource(folder, name)
        async with _Guard("remove", url), self._request("DELETE", url) as response:
            if response.status == 404:
                return
            self._raise_for(response, "remove", url, expected=(200, 202, 204))

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ helpers

    async def _require_same(self, target: str, size: int, sha256: str) -> None:
        """The name is taken: a redelivery of the same bytes, or a file to wait for."""
        async with self._request("GET", target) as response:
            if response.status == 404:
                raise TransientDeliveryError(
                    f"{target} was taken away while this upload ran; it is tried again"
                )
            self._raise_for(response, "upload", target, expected=(200,))
            if response.content_length is not None and response.content_length != size:
                same = False
            else:
                digest = hashlib.sha256()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    digest.update(chunk)
                same = digest.hexdigest() == sha256
        if not same:
            raise TransientDeliveryError(
                f"{target} already holds a different file that has not been taken away yet; "
                "delivery waits until the other side has read it"
            )

    async def _delete_quietly(self, url: str) -> None:
        try:
            async with self._request("DELETE", url) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError, PermanentDeliveryError):
            return

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession must be made inside the running loop.
        if self._session is None or self._session.closed:
            timeout = self._config.timeout_seconds
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True),
                headers=self._auth_headers(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            )
        return self._session

    def _auth_headers(self) -> dict[str, str]:
        if self._config.username is None:
            return {}
        password = ""
        if self._config.password_env is not None:
            value = os.environ.get(self._config.password_env)
            if value is None:
                raise PermanentDeliveryError(
                    f"environment variable {self._config.password_env} with the password "
                    f"for WebDAV user {self._config.username!r} at {self.url} is not set; "
                    "set it and restart"
                )
            password = value
        # Basic credentials in UTF-8 (RFC 7617); aiohttp's BasicAuth helper is deprecated.
        token = base64.b64encode(f"{self._config.username}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | AsyncIterator[bytes] | None = None,
    ) -> aiohttp.client._RequestContextManager:
        # encoded=True: the path is percent-encoded here once and must reach the server as is.
        return self._client().request(
            method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
        )

    def _raise_for(
        self,
        response: aiohttp.ClientResponse,
        action: str,
        url: str,
        *,
        expected: tuple[int, ...],
    ) -> None:
        status = response.status
        if status in expected:
            return
        if status in (401, 403):
            who = (
                f"user {self._config.username!r}"
                if self._config.username is not None
                else "anonymous access (no username configured)"
            )
            secret = (
                f" and the password in ${self._config.password_env}"
                if self._config.password_env is not None
                else ""
            )
            raise PermanentDeliveryError(
                f"WebDAV server refused to {action} {url} for {who} ({status} "
                f"{response.reason}); check username{secret} and that the account may read "
                "and write this collection"
            )
        if status >= 500 or status in _TRANSIENT_STATUS:
            raise TransientDeliveryError(
                f"WebDAV server failed to {action} {url}: {status} {response.reason}"
            )
        if 300 <= status < 400:
            raise PermanentDeliveryError(
                f"WebDAV server redirects {url} to {response.headers.get('Location')!r} "
                f"({status}); configure the collection's final URL, ending in '/'"
            )
        raise PermanentDeliveryError(
            f"WebDAV server refused to {action} {url}: {status} {response.reason}"
        )


class _Guard:
    """Translates aiohttp's connection and TLS errors into delivery errors."""

    def __init__(self, action: str, url: str) -> None:
        self.action = action
        self.url = url

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            raise PermanentDeliveryError(
                f"WebDAV server {self.url} presented a certificate this gateway does not "
                f"trust: {exc.certificate_error}; check ca_file (the CA that signs the "
                "server's certificate) and that the certificate names the URL's host"
            ) from exc
        if isinstance(exc, aiohttp.ClientError | TimeoutError):
            raise TransientDeliveryError(
                f"WebDAV server unreachable ({self.action} {self.url}): {type(exc).__name__}: {exc}"
            ) from exc


def _missing_collection(url: str) -> TransientDeliveryError:
    return TransientDeliveryError(
        f"WebDAV collection {url} does not exist; check the url and the sub-folder names "
        "(collections are never created by the gateway)"
    )


def _ssl_context(config: WebDavFolderConfig) -> ssl.SSLContext:
    """Trust ``ca_file`` (else the system's CAs); present the client certificate if given."""
    try:
        context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None
        )
        context.minimum_version = MINIMUM_VERSION
        if config.client_certificate is not None:
            context.load_cert_chain(config.client_certificate, config.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS files of WebDAV folder {config.url} (ca_file, "
            f"client_certificate, client_key): {exc}; check that they exist and are PEM"
        ) from exc
    return context


def _parse_listing(body: bytes, collection_path: str, url: str) -> list[FolderEntry]:
    """The files of a ``Depth: 1`` multistatus, without the collection itself."""
    try:
        root = xml.parse(body, where=url).getroot()
    except (MalformedXml, UnsafeXml) as exc:
        raise TransientDeliveryError(
            f"WebDAV server answered PROPFIND {url} with unusable XML: {exc.message}"
        ) from exc
    if root.tag != _dav("multistatus"):
        raise TransientDeliveryError(
            f"WebDAV server answered PROPFIND {url} with {etree.QName(root).localname}, "
            "not a DAV multistatus"
        )
    own = unquote(collection_path).rstrip("/")
    entries = []
    for response in root.iterfind(_dav("response")):
        href = (response.findtext(_dav("href")) or "").strip()
        path = unquote(urlsplit(href).path)
        if not path or path.rstrip("/") == own:
            continue
        props = _ok_props(response)
        if props is None or props.find(f"{_dav('resourcetype')}/{_dav('collection')}") is not None:
            continue
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if not name or is_temporary(name):
            continue
        entries.append(
            FolderEntry(
                name=name,
                size=_int(props.findtext(_dav("getcontentlength"))),
                modified=_http_date(props.findtext(_dav("getlastmodified"))),
                etag=(props.findtext(_dav("getetag")) or "").strip() or None,
            )
        )
    return sorted(entries, key=lambda e: e.name)


def _ok_props(response: etree._Element) -> etree._Element | None:
    """The ``prop`` of the propstat with a 200 status (servers list missing props apart)."""
    for propstat in response.iterfind(_dav("propstat")):
        status = propstat.findtext(_dav("status")) or ""
        if " 200 " in f"{status} ":
            return propstat.find(_dav("prop"))
    return None


def _int(value: str | None) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        return 0


def _http_date(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        return parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None


async def _stream_to(response: aiohttp.ClientResponse, sink: IO[bytes]) -> str:
    """Write the body into ``sink`` chunk by chunk (the writes in a thread); its SHA-256."""
    digest = hashlib.sha256()
    pending = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        digest.update(chunk)
        pending += chunk
        if len(pending) >= _CHUNK:
            await asyncio.to_thread(sink.write, bytes(pending))
            pending.clear()
    if pending:
        await asyncio.to_thread(sink.write, bytes(pending))
    return digest.hexdigest()


def _finish(sink: IO[bytes]) -> None:
    sink.flush()
    os.fsync(sink.fileno())
    sink.close()


def _size_and_hash(source: Path) -> tuple[int, str]:
    return source.stat().st_size, file_sha256(source)


async def _file_chunks(source: Path) -> AsyncIterator[bytes]:
    """The file's bytes, each chunk read by offset in a thread (no file held open between)."""
    offset = 0
    while chunk := await asyncio.to_thread(_read_at, source, offset, _CHUNK):
        offset += len(chunk)
        yield chunk


def _read_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)
