"""The ``xta`` destination: forward messages to an upstream XTA 2 server with zeep.

Per message: ``createMessageId`` → ``sendMessage`` with ``MessageMetaData`` and
the blob as an MTOM attachment, streamed from disk (``adapters/xta/mtom.py``) →
``getTransportReport``. A report with status 3 (rot) is a permanent failure;
0, 1 and 2 count as handed over (the upstream server owns the message now).

zeep is synchronous: the client is built once from the WSDL (on first use) and
every call runs in a thread. Faults map to delivery errors: the WSDL's
``XTAWSTechnicalProblemException``, connection errors, timeouts and HTTP 5xx are
transient; every other exception element (permission, parameters, schema, …)
and HTTP 4xx are permanent. A redelivery gets a new MessageID but carries the
same bytes, which a gateway's journal recognises as the message it has.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import requests
import structlog
import zeep
import zeep.exceptions
from lxml import etree
from zeep.wsse.username import UsernameToken

from adapters.soap.session import tls_session
from adapters.xta import metadata
from adapters.xta.mtom import MtomTransport
from contracts.config import XtaDestination
from contracts.delivery import DeliveryResult, Outbound
from gateway.durable import file_sha256
from gateway.errors import PermanentDeliveryError, TransientDeliveryError

log = structlog.get_logger(__name__)

_SERVICE = "XTAService"
_BINDINGS = {
    "send": "{http://xoev.de/transport/xta/211}sendXTAHttpsBinding",
    "management": "{http://xoev.de/transport/xta/211}managementHttpsBinding",
}
_TRANSIENT_FAULTS = frozenset({"XTAWSTechnicalProblemException"})
_MAX_DETAIL = 500


class XtaClient:
    """Sends messages to one upstream XTA 2 server."""

    def __init__(self, name: str, config: XtaDestination, *, author: str) -> None:
        """Prepare (not connect) a client for ``config``; ``author`` is our identifier."""
        self.name = name
        self.config = config
        self.author = config.author or author
        self._lock = threading.Lock()
        self._built: tuple[MtomTransport, Any, Any] | None = None

    async def deliver(self, item: Outbound) -> DeliveryResult | None:
        """Send ``item`` upstream and check its transport report.

        Raises:
            TransientDeliveryError: the server is unreachable, failing or busy.
            PermanentDeliveryError: the server refused the message, or its blob is corrupt.
        """
        await asyncio.to_thread(self._send, item)
        return None

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        with self._lock:
            if self._built is not None:
                self._built[0].session.close()
                self._built = None

    # ------------------------------------------------------------------ in a thread

    def _send(self, item: Outbound) -> None:
        if not item.blob_path.is_file() or file_sha256(item.blob_path) != item.blob_sha256:
            raise PermanentDeliveryError(
                f"the blob of message {item.message_id} is missing or corrupted"
            )
        transport, send, management = self._services()
        with _translated(self.name):
            # zeep answers wsa:MessageID as an AttributedURIType object.
            created = management.createMessageId()
            xta_id = str(getattr(created, "_value_1", created))
            meta = metadata.build(
                metadata.MetaData(
                    message_id=xta_id,
                    author=self.author,
                    reader=self.config.reader,
                    nachrichtentyp=item.nachrichtentyp,
                    identifier_type=self.config.identifier_type,
                    size=item.size,
                )
            )
            payload = transport.attach(
                item.blob_path,
                content_type="application/zip"
                if item.content_kind == "container"
                else "application/xml",
            )
            message: dict[str, Any] = {
                "_value_1": payload,
                "contentType": payload.content_type,
                "size": item.size,
            }
            if item.file_name:
                message["filename"] = item.file_name
            try:
                send.sendMessage(ContentContainer={"Message": message}, _soapheaders=[meta])
            finally:
                transport.forget(payload)
            report = management.getTransportReport(xta_id)
        status = int(report.MessageStatus.Status)
        log.info(
            "xta_message_sent",
            destination=self.name,
            message_id=item.message_id,
            xta_message_id=xta_id,
            status=status,
        )
        if status == 3:
            raise PermanentDeliveryError(
                f"{self.name}: the XTA server reports transport {xta_id} as failed (status 3)"
            )

    def _services(self) -> tuple[MtomTransport, Any, Any]:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def _build(self) -> tuple[MtomTransport, Any, Any]:
        config = self.config
        session = tls_session(config.ca_file, config.client_certificate, config.client_key)
        transport = MtomTransport(
            session=session,
            timeout=config.connect_timeout_seconds,
            operation_timeout=(config.connect_timeout_seconds, config.read_timeout_seconds),
        )
        wsse = None
        if config.username is not None and config.password_env is not None:
            password = os.environ.get(config.password_env)
            if not password:
                raise PermanentDeliveryError(
                    f"{self.name}: environment variable {config.password_env} (the "
                    "UsernameToken password) is not set"
                )
            wsse = UsernameToken(config.username, password)  # type: ignore[no-untyped-call]
        try:
            client = zeep.Client(  # type: ignore[no-untyped-call]
                config.wsdl, transport=transport, wsse=wsse
            )
        except (OSError, requests.RequestException) as exc:
            raise TransientDeliveryError(
                f"{self.name}: cannot load the XTA WSDL {config.wsdl}: {exc}"
            ) from exc
        # zeep is only partly annotated.
        send = client.create_service(_BINDINGS["send"], config.endpoint)  # type: ignore[no-untyped-call]
        management = client.create_service(  # type: ignore[no-untyped-call]
            _BINDINGS["management"], config.endpoint
        )
        return transport, send, management


class _translated:
    """Translate zeep and requests errors of one delivery into delivery errors."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None:
            return
        if isinstance(exc, zeep.exceptions.Fault):
            exception = _exception_name(exc.detail)
            text = f"{self.name}: the XTA server answered {exception or 'a fault'}: {exc.message}"
            if exception in _TRANSIENT_FAULTS:
                raise TransientDeliveryError(text[:_MAX_DETAIL]) from exc
            raise PermanentDeliveryError(text[:_MAX_DETAIL]) from exc
        if isinstance(exc, zeep.exceptions.TransportError):
            text = f"{self.name}: the XTA server answered HTTP {exc.status_code}"
            if exc.status_code >= 500 or exc.status_code in (408, 429):
                raise TransientDeliveryError(text) from exc
            raise PermanentDeliveryError(text) from exc
        if isinstance(exc, requests.exceptions.SSLError):
            raise PermanentDeliveryError(
                f"{self.name}: TLS with the XTA server failed: {exc}"[:_MAX_DETAIL]
            ) from exc
        if isinstance(exc, requests.RequestException | OSError):
            raise TransientDeliveryError(
                f"{self.name}: the XTA server is unreachable: {exc}"[:_MAX_DETAIL]
            ) from exc


def _exception_name(detail: etree._Element | None) -> str | None:
    if detail is None:
        return None
    for child in detail:
        if isinstance(child.tag, str):
            return etree.QName(child).localname
    return None
