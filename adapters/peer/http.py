"""Delivery to a peer gateway's ``POST /v1/messages``.

The blob is streamed from disk with its ``Content-Length`` (never loaded whole)
and its SHA-256 is checked on the way; the last chunk is held back until the
digest matched, so a peer never receives a complete body of a corrupted blob.
``Idempotency-Key: <message id>`` makes a redelivery after a crash or a lost
answer count once at the peer. Over ``https://`` the connection uses the TLS
context the factory built from the destination's ``ca_file``, ``client_certificate``
and ``client_key`` (``gateway.tls.client_context``); the bearer token is sent
only when ``token_env`` is configured.

Answers and errors:

* 2xx (``202`` accepted, ``200`` already had it) → delivered;
* 408, 425, 429, 5xx, connection errors and timeouts → ``TransientDeliveryError``
  (a ``Retry-After`` hint is quoted in the error text);
* any other status → ``PermanentDeliveryError`` with the peer's problem+json
  ``title`` and ``detail``;
* the peer's server certificate not trusted (``ca_file``) or not naming the URL's
  host → ``PermanentDeliveryError``: retrying cannot fix a certificate;
* token environment variable unset, blob missing or corrupted →
  ``PermanentDeliveryError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import aiohttp

from contracts.config import HttpDestination
from contracts.delivery import Outbound
from gateway.errors import PermanentDeliveryError, TransientDeliveryError

_CHUNK = 256 * 1024
_TRANSIENT_STATUS = frozenset({408, 425, 429})
#: Longest text taken from a peer's answer into the journal's error column.
_MAX_DETAIL = 500


class PeerGateway:
    """Sends messages to one peer gateway over HTTP."""

    def __init__(
        self,
        name: str,
        config: HttpDestination,
        *,
        chunk_size: int = _CHUNK,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare (not open) the connection pool to the peer.

        Args:
            name: the destination's name in the configuration.
            config: its settings.
            chunk_size: bytes read from the blob per chunk.
            ssl_context: TLS context for ``https://`` (trust and client certificate);
                aiohttp's default verification without it.
        """
        self.name = name
        self.url = config.url
        self.token_env = config.token_env
        self._connections = config.concurrency
        self._chunk_size = chunk_size
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._client_certificate = config.client_certificate is not None
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, item: Outbound) -> None:
        """POST ``item`` to the peer.

        Raises:
            TransientDeliveryError: the peer is unreachable, busy or failing.
            PermanentDeliveryError: the peer refused the message, the token is not
                set, or the blob is missing or corrupted.
        """
        token = os.environ.get(self.token_env) if self.token_env is not None else None
        if self.token_env is not None and not token:
            raise PermanentDeliveryError(
                f"environment variable {self.token_env} with the bearer token for "
                f"destination {self.name!r} is not set; set it, restart, and replay"
            )
        if not item.blob_path.is_file():
            raise PermanentDeliveryError(
                f"blob {item.blob_sha256} is missing from the blob store; restore it and "
                "replay the message"
            )
        headers = {
            "Content-Type": "application/zip"
            if item.content_kind == "container"
            else "application/xml",
            "Content-Length": str(item.size),
            "Idempotency-Key": item.message_id,
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = _VerifiedBlob(item, self._chunk_size)
        chunks = body.chunks()
        try:
            async with self._client().post(
                self.url, data=chunks, headers=headers, allow_redirects=False
            ) as response:
                if body.corrupted is not None:
                    raise body.corrupted
                if 200 <= response.status < 300:
                    await response.read()  # drain, so the connection is reused
                    return
                raise await _refusal(response)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise PermanentDeliveryError(
                f"peer {self.url} presented a certificate this gateway does not trust: "
                f"{exc.certificate_error}; check destinations.{self.name}.ca_file (the CA "
                "that signs the peer's server certificate) and that the certificate names "
                "the URL's host, then replay"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            # aiohttp reports a failing body stream as a connection error.
            if body.corrupted is not None:
                raise body.corrupted from None
            text = f"peer {self.url} unreachable: {type(exc).__name__}: {exc}"
            if self._client_certificate and _dropped_after_connect(exc):
                # A TLS 1.3 server refuses a client certificate after the handshake looks
                # done to the client, which only sees the connection reset or closed.
                text += " (a peer that refuses our client certificate also resets the connection)"
            raise TransientDeliveryError(text) from exc
        finally:
            # A peer that drops the connection mid-body leaves the stream suspended at a
            # chunk; closing it closes the blob's file now instead of at garbage collection.
            if not getattr(chunks, "ag_running", False):  # not while another task reads it
                await chunks.aclose()

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession must be made inside the running loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl),
                # The worker bounds each attempt (asyncio.timeout); no second clock here.
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class _VerifiedBlob:
    """The blob as an async stream of chunks whose SHA-256 is checked on the way."""

    def __init__(self, item: Outbound, chunk_size: int) -> None:
        self.item = item
        self.chunk_size = chunk_size
        self.corrupted: PermanentDeliveryError | None = None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Yield the blob's bytes; the last chunk only once the digest matched."""
        digest = hashlib.sha256()
        size = 0
        held: bytes | None = None
        # Each chunk is read by offset with its own open and close: a stream abandoned
        # mid-body (the peer dropped the connection) holds no open file.
        path = self.item.blob_path
        while chunk := await asyncio.to_thread(_read_at, path, size, self.chunk_size):
            digest.update(chunk)
            size += len(chunk)
            if held is not None:
                yield held
            held = chunk
        if digest.hexdigest() != self.item.blob_sha256 or size != self.item.size:
            self.corrupted = PermanentDeliveryError(
                f"blob {self.item.blob_sha256} is corrupted (read {size} bytes with "
                f"SHA-256 {digest.hexdigest()}); nothing complete was sent; restore "
                "it from backup and replay the message"
            )
            raise self.corrupted
        if held is not None:
            yield held


def _read_at(path: Path, offset: int, size: int) -> bytes:
    """Up to ``size`` bytes of ``path`` from ``offset`` (empty at the end)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _dropped_after_connect(exc: BaseException) -> bool:
    """Whether the peer accepted the connection and then reset or closed it."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return False  # never connected (refused, no route): not about certificates
    return isinstance(exc, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError)


async def _refusal(response: aiohttp.ClientResponse) -> Exception:
    """The error for a non-2xx answer, with the peer's explanation."""
    status = response.status
    explanation = await _problem_text(response)
    text = f"peer answered {status} {response.reason or ''}".rstrip()
    if explanation:
        text += f": {explanation}"
    if status in _TRANSIENT_STATUS or status >= 500:
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            text += f" (peer asks to retry after {retry_after[:40]})"
        return TransientDeliveryError(text)
    if 300 <= status < 400:
        location = response.headers.get("Location", "")[:200]
        text += f"; redirect to {location!r} not followed, fix the destination url"
    return PermanentDeliveryError(text)


async def _problem_text(response: aiohttp.ClientResponse) -> str:
    """``title: detail`` of an RFC 9457 problem document, or ``""``."""
    if response.content_type not in ("application/problem+json", "application/json"):
        return ""
    try:
        problem: Any = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return ""
    if not isinstance(problem, dict):
        return ""
    parts = [str(problem[key]) for key in ("title", "detail") if problem.get(key)]
    return ": ".join(parts)[:_MAX_DETAIL]
